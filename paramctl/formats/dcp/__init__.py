"""torch.distributed.checkpoint directories: ``.metadata`` and the rank files, as one.

>>> FORMAT.name, FORMAT.holds.extras
('dcp', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.formats._format import FileSet, Format, Holds
from paramctl.formats.dcp.layout import METADATA, NAME, candidates

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class Dcp(Format):
    name = NAME
    title = "torch.distributed.checkpoint directory (.metadata and __R_N.distcp files)"
    holds = Holds(extras=True, nesting=True, ties=False, views=False, provenance=False)
    no_writer = "writes DCP directories only by editing one; choose another format with --to"

    def claims(self, path: Path) -> list[Path]:
        return candidates(path)

    def sniff(self, head: bytes) -> bool:
        return False  # a directory, claimed by its .metadata

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.dcp.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.dcp.edit import RankFileEditor

        return RankFileEditor

    def file_set(self, checkpoint: Checkpoint) -> FileSet:
        ranks = sorted({storage.file.name for storage in checkpoint.storages.values() if not storage.chunked})
        others = sorted(
            child.name
            for child in checkpoint.path.iterdir()
            if child.is_file() and child.name.endswith(".distcp") and child.name not in ranks
        )
        return FileSet(checkpoint.path, (*ranks, *others, METADATA), METADATA)


FORMAT = Dcp()
