"""What names a sharded Hugging Face checkpoint: its index file (``*.safetensors.index.json``)
or, in a directory without one, the conventional single file; kept apart from the reader so
that detecting one costs no imports.

>>> is_index(Path("diffusion_pytorch_model.safetensors.index.json")), is_index(Path("a.json"))
(True, False)
"""

from __future__ import annotations

from pathlib import Path

NAME = "hf-sharded"
INDEX_SUFFIXES = (".safetensors.index.json", ".bin.index.json")
# A directory holding one of these (and no index) is that one file.
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")


def is_index(path: Path) -> bool:
    return path.name.endswith(INDEX_SUFFIXES)


def candidates(path: Path) -> list[Path]:
    """The checkpoints at ``path``: itself when it is an index file; in a directory, each
    index file, else each single-file checkpoint by its conventional name."""
    if path.is_file():
        return [path] if is_index(path) else []
    if not path.is_dir():
        return []
    indexes = sorted(child for child in path.iterdir() if is_index(child) and child.is_file())
    if indexes:
        return indexes
    return [path / name for name in SINGLE_FILES if (path / name).is_file()]
