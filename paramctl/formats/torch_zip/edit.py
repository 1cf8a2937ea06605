"""Editing a torch zip in place of its copy: records keep their place and alignment, and the
changed ones get new CRC-32s in their local headers and the central directory.

>>> ZipEditor.__mro__[1].__name__
'StorageEditor'
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.errors import CheckpointIOError
from paramctl.formats._editor import StorageEditor
from paramctl.formats._io import CHUNK, write_at
from paramctl.formats._provenance import PROVENANCE_KEY
from paramctl.formats.torch_zip.read import find_root

_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_CRC_IN_LOCAL_HEADER = 14
_DATA_DESCRIPTOR_FLAG = 0x08


class ZipEditor(StorageEditor):
    """torch-zip: records keep their place and alignment; changed ones get new CRC-32s."""

    def __init__(self, checkpoint: Checkpoint, out: BinaryIO, **kwargs: Any) -> None:
        with open(checkpoint.path, "rb") as file, zipfile.ZipFile(file) as archive:
            self._infos = {info.filename: info for info in archive.infolist()}
        self._root = self._archive_root(list(self._infos))
        super().__init__(checkpoint, out, **kwargs)

    def _archive_root(self, names: list[str]) -> str:
        """The folder the records are under (zip formats other than torch.save's differ)."""
        return find_root(names)

    def _record(self, key: str) -> zipfile.ZipInfo:
        return self._infos[f"{self._root}data/{key}"]

    def _finish_format(self) -> None:
        crcs: dict[str, int] = {}
        whole = self.whole_crcs()
        for key in sorted(self._written):
            info, storage = self._record(key), self.checkpoint.storages[key]
            crc = whole.get(key) if info.file_size == storage.nbytes else None
            crcs[info.filename] = crc if crc is not None else self._record_crc(storage, info)
            self._patch_local_crc(storage, info, crcs[info.filename])
        # zipfile rewrites the central directory with the new CRCs and adds the record.
        with zipfile.ZipFile(self.out, "a") as archive:
            for info in archive.infolist():
                if info.filename in crcs:
                    info.CRC = crcs[info.filename]
            # zipfile writes the directory anew on close only once it added a record itself;
            # new CRCs alone must be written too.
            archive._didModify = bool(crcs)  # type: ignore[attr-defined]
            if self.provenance:
                record = zipfile.ZipInfo(self._provenance_name(archive), date_time=(1980, 1, 1, 0, 0, 0))
                record.compress_type = zipfile.ZIP_STORED
                archive.writestr(record, json.dumps(self.provenance, indent=1, sort_keys=True) + "\n")

    def _provenance_name(self, archive: zipfile.ZipFile) -> str:
        prefix = f"{self._root}{PROVENANCE_KEY}/"
        taken = {name for name in archive.namelist() if name.startswith(prefix)}
        number = len(taken) + 1
        while f"{prefix}{number}.json" in taken:
            number += 1
        return f"{prefix}{number}.json"

    def _record_start(self, storage: Storage) -> int:
        """Where the storage's record begins in the output (a storage is its whole record)."""
        return self._out_offset(storage)

    def _record_crc(self, storage: Storage, info: zipfile.ZipInfo) -> int:
        crc, position, remaining = 0, self._record_start(storage), info.file_size
        while remaining:
            chunk = os.pread(self._out_fd, min(remaining, CHUNK), position)
            if not chunk:
                raise CheckpointIOError("the output ended early while checksumming")
            crc = zlib.crc32(chunk, crc)
            position, remaining = position + len(chunk), remaining - len(chunk)
        return crc

    def _patch_local_crc(self, storage: Storage, info: zipfile.ZipInfo, crc: int) -> None:
        """The CRC also sits in the record's local header, or after its data (bit 3)."""
        packed = struct.pack("<L", crc)
        if info.flag_bits & _DATA_DESCRIPTOR_FLAG:
            end = self._record_start(storage) + info.compress_size
            signed = os.pread(self._out_fd, 4, end) == _DESCRIPTOR_SIGNATURE
            write_at(self._out_fd, packed, end + (4 if signed else 0))
        else:
            write_at(self._out_fd, packed, info.header_offset + _CRC_IN_LOCAL_HEADER)
