"""safetensors files: an 8-byte header length, a JSON header, then the tensor bytes.

>>> FORMAT.holds.extras, FORMAT.suffixes
(False, ('.safetensors',))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.dtypes import BY_SAFETENSORS_CODE
from paramctl.formats._format import Format, Holds, Progress, Verification, Writer
from paramctl.formats.safetensors.layout import NAME, sniff

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class Safetensors(Format):
    name = NAME
    title = "safetensors"
    suffixes = (".safetensors",)
    holds = Holds(
        extras=False,
        nesting=False,
        ties=True,
        views=False,
        provenance=True,
        dtypes=frozenset(dtype.name for dtype in BY_SAFETENSORS_CODE.values()),
    )

    def sniff(self, head: bytes) -> bool:
        return sniff(head)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.safetensors.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.safetensors.edit import SafetensorsEditor

        return SafetensorsEditor

    def writer(self) -> Writer:
        from paramctl.formats.safetensors.write import write_safetensors

        return write_safetensors

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        from paramctl.formats.safetensors.verify import verify_layout

        return verify_layout(path, checkpoint, on_progress)


FORMAT = Safetensors()
