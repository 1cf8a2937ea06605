"""Sharded Hugging Face checkpoints: an index JSON and the shard files it names, as one.

>>> FORMAT.name, FORMAT.holds.extras
('hf-sharded', False)
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.formats._format import FileSet, Format, Holds, Progress, Verification
from paramctl.formats.hf_sharded.read import NAME, candidates, companions, parse_index, read

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class HfSharded(Format):
    name = NAME
    title = "sharded Hugging Face checkpoint (an *.index.json and its shards)"
    # Ties: save_pretrained keeps one name of tied tensors (the config says which).
    holds = Holds(extras=False, nesting=False, ties=False, views=False, provenance=True)
    no_writer = "writes sharded checkpoints only by editing one; choose another format with --to"

    def claims(self, path: Path) -> list[Path]:
        return candidates(path)

    def sniff(self, head: bytes) -> bool:
        return False  # an index is JSON like many files: it is claimed by its name

    def read(self, path: Path) -> Checkpoint:
        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.hf_sharded.edit import ShardEditor

        return ShardEditor

    def file_set(self, checkpoint: Checkpoint) -> FileSet:
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
