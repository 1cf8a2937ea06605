"""Sharded Hugging Face checkpoints: an index JSON and the shard files it names, as one.

>>> FORMAT.name, FORMAT.holds.extras
('hf-sharded', False)
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.formats._format import FileSet, Format, Holds, Progress, SetWriter, Verification
from paramctl.formats.hf_sharded.layout import NAME, candidates

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class HfSharded(Format):
    name = NAME
    title = "sharded Hugging Face checkpoint (an *.index.json and its shards)"
    # Ties: save_pretrained keeps one name of tied tensors (the config says which).
    holds = Holds(extras=False, nesting=False, ties=False, views=False, provenance=True)
    index_name = "model.safetensors.index.json"

    def claims(self, path: Path) -> list[Path]:
        return candidates(path)

    def sniff(self, head: bytes) -> bool:
        return False  # an index is JSON like many files: it is claimed by its name

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.hf_sharded.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.hf_sharded.edit import ShardEditor

        return ShardEditor

    def set_writer(self) -> SetWriter:
        from paramctl.formats.hf_sharded.write import write_hf_sharded

        return write_hf_sharded

    def file_set(self, checkpoint: Checkpoint) -> FileSet:
        from paramctl.formats.hf_sharded.read import companions, parse_index

        index = parse_index(checkpoint.path)
        members = (*index.shards, *companions(checkpoint.path.parent), checkpoint.path.name)
        return FileSet(checkpoint.path.parent, members, checkpoint.path.name)

    def new_index(self, checkpoint: Checkpoint, changed: Collection[Path]) -> bytes | None:
        # Shards keep their names and tensors their sizes: the weight map and total stand.
        return None

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        from paramctl.formats.hf_sharded.verify import verify_index

        return verify_index(path)


FORMAT = HfSharded()
