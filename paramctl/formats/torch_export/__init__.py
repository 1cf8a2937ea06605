"""torch.export archives (``torch.export.save``, ``.pt2``): weights and constants by name.

>>> FORMAT.name, FORMAT.sniff_zip(["m/archive_format", "m/models/model.json"])
('torch-export', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.formats._format import Format, Holds, Progress, Verification
from paramctl.formats.torch_export.layout import NAME, export_root
from paramctl.formats.torch_zip.layout import MAGIC

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class TorchExport(Format):
    name = NAME
    title = "torch.export archive (torch.export.save, .pt2)"
    suffixes = (".pt2",)
    holds = Holds(extras=False, nesting=False, ties=True, views=True, provenance=True)
    no_writer = (
        "does not write new torch.export archives (their graph comes from torch.export); "
        "edit one with init, or convert to another format with --to"
    )

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def sniff_zip(self, members: Sequence[str]) -> bool:
        return export_root(members) is not None

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.torch_export.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.torch_export.edit import ExportEditor

        return ExportEditor

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        from paramctl.formats.torch_zip.verify import verify_zip

        return verify_zip(path, checkpoint, on_progress, torch_rules=False)


FORMAT = TorchExport()
