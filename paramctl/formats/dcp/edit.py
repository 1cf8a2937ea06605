"""Editing one rank file of a torch.distributed.checkpoint directory.

Every item in a rank file is a small ``torch.save`` archive; a chunk's bytes are rewritten
in place (same offsets and lengths, so ``.metadata`` stays as it is) and its archive's
CRC-32 follows: in the data descriptor after the bytes, and in the archive's central
directory.

>>> import os, tempfile, torch, zlib
>>> with tempfile.TemporaryFile() as file:
...     torch.save(torch.ones(2), file)
...     file.flush()
...     positions = crc_positions(file, f"__0_0.distcp@0+{file.tell()}")
...     stored = [int.from_bytes(os.pread(file.fileno(), 4, at), "little") for at in positions]
>>> stored == [zlib.crc32(torch.ones(2).numpy().tobytes())] * 2
True
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

from paramctl.checkpoint import Storage
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._editor import StorageEditor
from paramctl.formats._io import read_chunks, write_at
from paramctl.formats.dcp.read import parse_item_key
from paramctl.formats.torch_zip.window import CentralEntry, open_item

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
    archive = open_item(file, start, length, key)
    archive.refuse_problems()
    records = [entry for entry in archive.entries if "/data/" in entry.filename]
    if len(records) != 1:
        raise CorruptCheckpoint(f"{key}: the item's archive holds {len(records)} tensor records")
    (entry,) = records
    record = archive.layout.placed.get(id(entry))
    assert isinstance(entry, CentralEntry) and record is not None  # a window's, placed once checked
    local = entry.header_offset + _LOCAL_CRC
    if entry.flag_bits & _DATA_DESCRIPTOR_FLAG:
        signature = archive.pread(len(_DESCRIPTOR), record.end)
        local = record.end + (len(_DESCRIPTOR) if signature == _DESCRIPTOR else 0)
    return [start + local, start + entry.central_offset + _CENTRAL_CRC]


__all__ = ["RankFileEditor", "crc_positions"]
