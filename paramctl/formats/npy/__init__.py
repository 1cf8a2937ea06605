"""NumPy files: ``.npy`` (one array) and ``.npz`` (a zip of them), read with numpy's own
header parser and never with ``allow_pickle``.

>>> NPY.sniff(b"\\x93NUMPY\\x01\\x00"), NPZ.sniff(b"PK\\x03\\x04" + bytes(60))
(True, False)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paramctl.formats._format import Format, Holds, Progress, Verification
from paramctl.formats.npy.layout import NPY as NPY_NAME
from paramctl.formats.npy.layout import NPZ as NPZ_NAME
from paramctl.formats.npy.layout import NUMPY_DTYPES, sniff_npy, sniff_npz

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor

# What numpy stores: no bfloat16 or float8.
_NUMPY_DTYPES = frozenset(NUMPY_DTYPES.values())


class Npy(Format):
    name = NPY_NAME
    title = "NumPy .npy"
    suffixes = (".npy",)
    holds = Holds(
        extras=False,
        nesting=False,
        ties=False,
        views=False,
        provenance=False,
        dtypes=_NUMPY_DTYPES,
        single_tensor=True,
    )
    no_writer = "does not write new .npy files (one holds one array); choose another format with --to"

    def sniff(self, head: bytes) -> bool:
        return sniff_npy(head)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.npy.read import read_npy

        return read_npy(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.npy.edit import NpyEditor

        return NpyEditor


class Npz(Format):
    name = NPZ_NAME
    title = "NumPy .npz"
    suffixes = (".npz",)
    holds = Holds(
        extras=False, nesting=False, ties=False, views=False, provenance=False, dtypes=_NUMPY_DTYPES
    )
    no_writer = "does not write new .npz files; choose another format with --to"

    def sniff(self, head: bytes) -> bool:
        return sniff_npz(head)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.npy.read import read_npz

        return read_npz(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.npy.edit import NpzEditor

        return NpzEditor

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        """The zip's structure read one way, then every member's CRC-32 (a bomb is a
        finding, never inflated)."""
        from paramctl.formats.torch_zip.verify import verify_zip

        return verify_zip(path, checkpoint, on_progress, torch_rules=False)


NPY = Npy()
NPZ = Npz()
