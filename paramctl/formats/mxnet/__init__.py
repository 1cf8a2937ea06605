"""MXNet NDArray files: Gluon ``.params``, ``save_checkpoint``'s ``arg:``/``aux:`` files and
``mx.nd.save`` of a dict or a list (layout in :mod:`paramctl.formats.mxnet.layout`).

>>> FORMAT.name, FORMAT.sniff(bytes.fromhex("1201000000000000") + bytes(8))
('mxnet', True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.formats._format import Format, Holds, Writer
from paramctl.formats.mxnet.layout import NAME, WRITTEN, sniff

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class MXNet(Format):
    name = NAME
    title = "MXNet NDArray file (Gluon .params, mx.nd.save)"
    suffixes = (".params", ".nd")
    holds = Holds(extras=False, nesting=False, ties=False, views=False, provenance=False, dtypes=WRITTEN)

    def sniff(self, head: bytes) -> bool:
        return sniff(head)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.mxnet.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.mxnet.edit import NDArrayEditor

        return NDArrayEditor

    def writer(self) -> Writer:
        from paramctl.formats.mxnet.write import write_mxnet

        return write_mxnet


FORMAT = MXNet()
