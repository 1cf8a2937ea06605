"""GGUF files (llama.cpp and everything built on it), read with the ``gguf`` package.

>>> FORMAT.sniff(b"GGUF" + bytes(4)), FORMAT.holds.ties
(True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.dtypes import BY_GGML_CODE
from paramctl.formats._format import Format, Holds, Progress, Verification, Writer
from paramctl.formats.gguf.layout import NAME, SHAPE_ORDER, sniff

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class GGUF(Format):
    name = NAME
    title = "GGUF (llama.cpp)"
    suffixes = (".gguf",)
    shape_order = SHAPE_ORDER
    holds = Holds(
        extras=True,
        nesting=False,
        ties=False,
        views=False,
        provenance=False,
        dtypes=frozenset(dtype.name for dtype in BY_GGML_CODE.values()),
    )

    def sniff(self, head: bytes) -> bool:
        return sniff(head)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.gguf.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.gguf.edit import GGUFEditor

        return GGUFEditor

    def writer(self) -> Writer:
        from paramctl.formats.gguf.write import write_gguf

        return write_gguf

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        from paramctl.formats.gguf.verify import verify_layout

        return verify_layout(path, checkpoint, on_progress)


FORMAT = GGUF()
