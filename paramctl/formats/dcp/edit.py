"""Editing one rank file of a torch.distributed.checkpoint directory.

Every item in a rank file is a small ``torch.save`` archive; a chunk's bytes are rewritten
in place (same offsets and lengths, so ``.metadata`` stays as it is) and its archive's
CRC-32 follows: in the data descriptor after the bytes, and in the archive's central
directory.

>>> import struct
>>> struct.calcsize(CENTRAL_HEADER)
46
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import BinaryIO

from paramctl.checkpoint import Storage
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._editor import StorageEditor
from paramctl.formats._io import read_chunks, write_at
from paramctl.formats.dcp.read import _Window, parse_item_key

CENTRAL_HEADER = "<4s4B4HL2L5H2L"
_CENTRAL_CRC = 16
_LOCAL_CRC = 14
_DESCRIPTOR = b"PK\x07\x08"
_DATA_DESCRIPTOR_FLAG = 0x08


class RankFileEditor(StorageEditor):
    """A rank file with chunks replaced; each changed item's archive gets its new CRC-32."""

    records_provenance = False

    def _finish_format(self) -> None:
        whole = self.whole_crcs()
        for key in sorted(self.changed):
            storage = self.checkpoint.storages[key]
            crc = whole.get(key)
            if crc is None:
                crc = self._crc_of(storage)
            for position in crc_positions(self._in_file, key):
                write_at(self._out_fd, struct.pack("<L", crc), position)

    def _crc_of(self, storage: Storage) -> int:
        assert storage.offset is not None
        crc = 0
        for block in read_chunks(self._out_fd, storage.offset, storage.nbytes):
            crc = zlib.crc32(block, crc)
        return crc


def crc_positions(file: BinaryIO, key: str) -> list[int]:
    """Where the CRC-32 of an item's tensor record sits in the rank file: its local header
    or data descriptor, and its central-directory entry."""
    _, start, length = parse_item_key(key)
    window = io.BufferedReader(_Window(file, start, length))
    with zipfile.ZipFile(window) as archive:
        infos = archive.infolist()
        records = [info for info in infos if "/data/" in info.filename]
        if len(records) != 1:
            raise CorruptCheckpoint(f"{key}: the item's archive holds {len(records)} tensor records")
        (record,) = records
        central = archive.start_dir
    positions = [start + _local_crc(window, record)]
    for info in infos:
        if info is record:
            positions.append(start + central + _CENTRAL_CRC)
        central += (
            struct.calcsize(CENTRAL_HEADER)
            + len(info.orig_filename.encode())
            + len(info.extra)
            + len(info.comment)
        )
    return positions


def _local_crc(window: BinaryIO, record: zipfile.ZipInfo) -> int:
    from paramctl.formats.torch_zip.read import record_data_offset

    if not record.flag_bits & _DATA_DESCRIPTOR_FLAG:
        return record.header_offset + _LOCAL_CRC
    end = record_data_offset(window, record) + record.compress_size
    window.seek(end)
    signature = window.read(4)
    return end + (4 if signature == _DESCRIPTOR else 0)


__all__ = ["RankFileEditor", "crc_positions"]
