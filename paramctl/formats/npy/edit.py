"""Editing ``.npy`` files and ``.npz`` archives: a copy with some arrays' elements replaced.

A ``.npy`` keeps its header; an ``.npz`` keeps every member where it was, and the changed
members get new CRC-32s (which cover a member's ``.npy`` header too). Deflated members
(``np.savez_compressed``) have no elements at a fixed offset: editing one is refused. No
provenance is recorded: a new member would be one more array to ``np.load``.

>>> NpzEditor.records_provenance, NpyEditor.records_provenance
(False, False)
"""

from __future__ import annotations

import zipfile
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.errors import UsageError
from paramctl.formats._editor import StorageEditor
from paramctl.formats.npy.read import read_array_header
from paramctl.formats.torch_zip.edit import ZipEditor


class NpyEditor(StorageEditor):
    """``.npy``: the elements rewritten where they are, the header kept."""

    records_provenance = False


class NpzEditor(ZipEditor):
    """``.npz``: members rewritten in place, their CRC-32s renewed."""

    records_provenance = False

    def __init__(self, checkpoint: Checkpoint, out: BinaryIO, **kwargs: Any) -> None:
        compressed = [key for key, storage in checkpoint.storages.items() if storage.offset is None]
        if compressed and set(compressed) & set(kwargs.get("fresh", ())):
            raise _compressed(checkpoint, compressed)
        with open(checkpoint.path, "rb") as file, zipfile.ZipFile(file) as archive:
            self._infos = {info.filename: info for info in archive.infolist()}
            self._header_bytes = {}
            for name, info in self._infos.items():
                with archive.open(info) as member:
                    self._header_bytes[name] = read_array_header(member, name).header_bytes
        self._root = ""
        kwargs["provenance"] = None
        StorageEditor.__init__(self, checkpoint, out, **kwargs)

    def _check_plain(self, storage: Storage) -> None:
        if storage.offset is None and storage.nbytes:
            raise _compressed(self.checkpoint, [storage.key])

    def _record(self, key: str) -> zipfile.ZipInfo:
        return self._infos[f"{key}.npy"]

    def _record_start(self, storage: Storage) -> int:
        return self._out_offset(storage) - self._header_bytes[f"{storage.key}.npy"]


def _compressed(checkpoint: Checkpoint, keys: list[str]) -> UsageError:
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return UsageError(
        f"{checkpoint.label}: {shown} deflated (np.savez_compressed): paramctl rewrites only stored "
        "members in place; save the arrays with np.savez to edit them"
    )
