"""Sharded Hugging Face checkpoints: an index JSON naming, for every tensor, its shard file.

``save_pretrained`` writes ``model-00001-of-00003.safetensors`` (or ``pytorch_model-…bin``)
beside ``model.safetensors.index.json``: ``{"metadata": {"total_size": N}, "weight_map":
{name: shard}}``. The shards are read by their own formats (safetensors headers, torch
pickles), so only metadata is read; their storages are renamed ``shard/key`` to keep keys
unique across the checkpoint.

>>> index = Index(Path("m/model.safetensors.index.json"), {"a": "s-2", "b": "s-1", "c": "s-2"}, None)
>>> index.shards, str(index.shard_path("s-1"))
(['s-1', 's-2'], 'm/s-1')
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.errors import CorruptCheckpoint, ExitCode, LimitExceeded
from paramctl.formats._json import load_json
from paramctl.formats._limits import LIMITS, Limits, check_count
from paramctl.formats.hf_sharded.layout import NAME, is_index

# An index beyond this is no index save_pretrained writes (100,000 names take about 8 MB).
MAX_INDEX_BYTES = 256 << 20


class UnsafeShardPath(CorruptCheckpoint):
    """An index names a shard outside its own directory (``../``, an absolute path)."""

    exit_code = ExitCode.UNSAFE


# Files beside the shards that are weights of some other checkpoint, not the model's own.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx")


def companions(directory: Path) -> list[str]:
    """The files that make a model directory whole beside its weights (``config.json``,
    the generation config, the tokenizer), which a new directory gets copies of."""
    return sorted(
        child.name
        for child in directory.iterdir()
        if child.is_file()
        and not child.name.startswith(".")
        and not is_index(child)
        and not child.name.endswith(_WEIGHT_SUFFIXES)
    )


@dataclass
class Index:
    """An index file, parsed: the weight map, its total size, what is wrong with it."""

    path: Path
    weight_map: dict[str, str]
    total_size: int | None
    problems: list[CorruptCheckpoint] = field(default_factory=list)
    unsafe: set[str] = field(default_factory=set)

    @property
    def shards(self) -> list[str]:
        return sorted(set(self.weight_map.values()))

    def shard_path(self, shard: str) -> Path:
        return self.path.parent / shard


def parse_index(path: Path, limits: Limits = LIMITS) -> Index:
    """The index at ``path``, parsed within paramctl's limits; problems in it (duplicate
    names, shard paths leaving the directory) are collected in :attr:`Index.problems`, not
    raised."""
    if path.stat().st_size > MAX_INDEX_BYTES:
        raise LimitExceeded(
            f"{path}: the index", "its size", f"paramctl reads at most {MAX_INDEX_BYTES:,} bytes"
        )
    duplicates: list[str] = []
    raw = load_json(path.read_bytes(), f"{path}: the index", limits, duplicates=duplicates)
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CorruptCheckpoint(
            f"{path}: not a sharded checkpoint index (weight_map must map names to shards)"
        )
    check_count(f"{path}: the index", "tensors", len(weight_map), limits.tensors)
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    index = Index(path, weight_map, _total_size(total))
    for name in duplicates:
        index.problems.append(CorruptCheckpoint(f"{path}: {name}: named twice in the weight map"))
    for shard in index.shards:
        if Path(shard).is_absolute() or ".." in Path(shard).parts or "/" in shard or "\\" in shard:
            index.unsafe.add(shard)
            index.problems.append(UnsafeShardPath(f"{path}: shard {shard!r} leaves the index's directory"))
    return index


def read_shards(index: Index) -> tuple[list[TensorEntry], dict[str, Storage]]:
    """Every shard's entries and storages (keys ``shard/key``), checked against the index;
    the problems found are added to ``index.problems``."""
    from paramctl.formats import locate

    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    holder: dict[str, str] = {}
    safe = [shard for shard in index.shards if shard not in index.unsafe]
    for shard in safe:
        path = index.shard_path(shard)
        if not path.is_file():
            index.problems.append(CorruptCheckpoint(f"{index.path}: shard {shard} does not exist"))
            continue
        part = locate(path)[1].read(path)
        for key, storage in part.storages.items():
            storages[f"{shard}/{key}"] = storage.renamed(f"{shard}/{key}")
        for entry in part.entries:
            if entry.name in holder:
                index.problems.append(
                    CorruptCheckpoint(
                        f"{index.path}: {entry.name}: in two shards, {holder[entry.name]} and {shard}"
                    )
                )
                continue
            holder[entry.name] = shard
            entries.append(entry.in_storage(f"{shard}/{entry.storage_key}"))
            if entry.name not in index.weight_map and not entry.recorded_alias:
                index.problems.append(
                    CorruptCheckpoint(f"{index.path}: {entry.name}: in {shard} but not in the index")
                )
    for name, shard in index.weight_map.items():
        if name not in holder and shard in safe and index.shard_path(shard).is_file():
            index.problems.append(
                CorruptCheckpoint(f"{index.path}: {name}: the index puts it in {shard}, which lacks it")
            )
        elif name in holder and holder[name] != shard:
            index.problems.append(
                CorruptCheckpoint(
                    f"{index.path}: {name}: the index puts it in {shard}, it is in {holder[name]}"
                )
            )
    return entries, storages


def _total_size(value: Any) -> int | None:
    """``metadata.total_size`` as writers spell it: an integer (or an integral float)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and value >= 0 else None


# The output embedding that ``tie_word_embeddings`` ties, and the names input embeddings go by.
OUTPUT_EMBEDDING = "lm_head.weight"
INPUT_EMBEDDINGS = (
    "wte.weight",
    "embed_tokens.weight",
    "word_embeddings.weight",
    "tok_embeddings.weight",
    "embed_in.weight",
    "shared.weight",
)


def config_ties(directory: Path, by_name: dict[str, TensorEntry]) -> list[TensorEntry]:
    """The output embedding a ``config.json`` beside the shards ties to the input one
    (``tie_word_embeddings``), which ``save_pretrained`` stores once: it comes back as an
    alias on the embedding's storage, so ``shared`` and ``init`` see the tie."""
    try:
        config = load_json((directory / "config.json").read_bytes(), "config.json")
    except (OSError, CorruptCheckpoint):  # no config, or one that says nothing
        return []
    if not isinstance(config, dict) or config.get("tie_word_embeddings") is not True:
        return []
    if OUTPUT_EMBEDDING in by_name:
        return []
    tied = next((e for n, e in by_name.items() if n.endswith(INPUT_EMBEDDINGS) and len(e.shape) == 2), None)
    if tied is None:
        return []
    return [replace(tied, name=OUTPUT_EMBEDDING, path=(OUTPUT_EMBEDDING,), recorded_alias=True)]


def stored_size(storages: dict[str, Storage]) -> int:
    return sum(storage.nbytes for storage in storages.values())


def inspect(path: Path) -> tuple[Index, Checkpoint | None]:
    """The index and the checkpoint it describes, every problem found collected."""
    index = parse_index(path)
    entries, storages = read_shards(index)
    held = stored_size(storages)
    if index.total_size is not None and not index.problems and index.total_size != held:
        message = f"{path}: metadata.total_size is {index.total_size:,}, the shards hold {held:,} bytes"
        index.problems.append(CorruptCheckpoint(message))
    entries += config_ties(path.parent, {entry.name: entry for entry in entries})
    checkpoint = Checkpoint(path, NAME, entries, storages, payload=None)
    return index, checkpoint


def read(path: Path) -> Checkpoint:
    """The checkpoint an index describes; the first problem found is raised."""
    index, checkpoint = inspect(path)
    unsafe = [problem for problem in index.problems if isinstance(problem, UnsafeShardPath)]
    if unsafe or index.problems:
        raise (unsafe or index.problems)[0]
    assert checkpoint is not None
    return checkpoint
