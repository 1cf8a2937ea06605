"""A ``torch.save`` archive inside a larger file (each item of a DCP rank file), opened with
the checks of a whole one.

torch reads such an archive as a file of its own (``torch.load`` on a view of bytes
``[start, start + length)``), so its offsets count from its first byte. Its structure is
checked as a whole file's is (:mod:`~paramctl.formats.torch_zip.structure`), and so are
the rules of :mod:`~paramctl.formats.torch_zip.archive`.

The central directory is parsed here rather than by :mod:`zipfile`: a DCP checkpoint holds
thousands of these small archives, and zipfile's parse through a file object (a seek and a
read per field, a twenty-field ``ZipInfo`` per record) cost more than all the rest of
reading one, while the structure checks, which zipfile does not make, must read the same
bytes anyway. The parse takes the fields those checks and torch's reader use, as zipfile
takes them (its start of the directory, names cut at a NUL byte, zip64 sizes), and refuses
what zipfile refuses; it is strict where zipfile is lenient (a name or extra field that
runs past the directory).

>>> import io, tempfile, torch
>>> with tempfile.TemporaryFile() as file:
...     _ = file.write(b"rank file: ")
...     torch.save(torch.ones(2), file)
...     file.flush()
...     archive = open_item(file, 11, file.tell() - 11, "item")
...     archive.root, [entry.filename for entry in archive.entries][:2], archive.layout.problems
('archive/', ['archive/data.pkl', 'archive/.format_version'], [])
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, NamedTuple

from paramctl.errors import CorruptCheckpoint
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._source import read_part
from paramctl.formats.torch_zip.archive import (
    TorchArchive,
    check_structure,
    check_torch_rules,
    end_record,
    root_of,
)
from paramctl.formats.torch_zip.structure import NEAR_END, EndRecord, Pread

_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_UTF8 = 0x800
_ZIP64_EXTRA = 0x0001
_ZIP64_MARK = 0xFFFFFFFF
# The newest "version needed to extract" zipfile reads (its MAX_EXTRACT_VERSION).
_NEWEST_EXTRACT = 63


class WindowBytes:
    """The :data:`~paramctl.formats.torch_zip.structure.Pread` of bytes ``[start, start +
    length)`` of an open file. Reading a ``torch.save`` archive touches only its first and
    last KiB or so (local headers and the pickle; the last records, the directory and the
    end record): both are read once, in one ``pread`` each; any other read goes to the file."""

    # The end record is first looked for in the last NEAR_END bytes: the tail holds them.
    EDGE = NEAR_END

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        self.file, self.start, self.length = file, start, length
        self._fd = None if getattr(file, "remote", None) is not None else file.fileno()
        self.head = self._read(min(length, self.EDGE), start)
        self.tail_start = max(len(self.head), length - self.EDGE)
        self.tail = self._read(length - self.tail_start, start + self.tail_start)

    def _read(self, size: int, offset: int) -> bytes:
        """One ``pread`` of a local file; :func:`read_part` reads a remote one, or the rest
        of a short read."""
        if self._fd is not None:
            data = os.pread(self._fd, size, offset)
            if len(data) == size:
                return data
        return read_part(self.file, size, offset)

    def __call__(self, size: int, offset: int) -> bytes:
        end = offset + size
        if end > self.length:
            end = self.length
        if offset < 0 or end <= offset:
            return b""
        head = self.head
        if end <= len(head):
            return head[offset:end]
        tail_start = self.tail_start
        if offset >= tail_start:
            return self.tail[offset - tail_start : end - tail_start]
        return self._read(end - offset, self.start + offset)


class CentralEntry(NamedTuple):
    """One record as the central directory lists it: the fields of a ``zipfile.ZipInfo``
    the structure checks read, and where the entry itself is (the editor rewrites its CRC)."""

    filename: str  # cut at a NUL byte, as zipfile cuts it
    orig_filename: str
    flag_bits: int
    compress_type: int
    CRC: int
    compress_size: int
    file_size: int
    header_offset: int
    central_offset: int


class _Damaged(Exception):
    """What zipfile would raise (or, strict, what this parse refuses)."""


def read_directory(pread: Pread, end: EndRecord) -> tuple[int, list[CentralEntry]]:
    """Where the directory starts and its entries, read as zipfile reads them: from where the
    end record sits less the directory's size (a prefix before the archive shifts every
    offset; :func:`~paramctl.formats.torch_zip.structure.check_end` refuses it)."""
    start = end.directory_end - end.directory_size
    if start < 0:
        raise _Damaged("Bad offset for central directory")
    shift = start - end.directory_offset
    data = pread(end.directory_size, start)
    size_of_directory = len(data)
    if size_of_directory != end.directory_size:
        raise _Damaged("Truncated central directory")
    entries, position, unpack = [], 0, _CENTRAL.unpack_from
    while position < size_of_directory:
        if size_of_directory - position < _CENTRAL.size:
            raise _Damaged("Truncated central directory")
        (
            signature, _, _, extract, _, flags, method, _, _, crc, packed, size,
            name_length, extra_length, comment_length, _, _, _, offset,
        ) = unpack(data, position)  # fmt: skip
        if signature != _CENTRAL_SIGNATURE:
            raise _Damaged("Bad magic number for central directory")
        if extract > _NEWEST_EXTRACT:
            raise _Damaged(f"zip file version {extract / 10:.1f}")
        name_start = position + _CENTRAL.size
        extra_start = name_start + name_length
        following = extra_start + extra_length + comment_length
        if following > size_of_directory:
            raise _Damaged("a directory entry runs past the directory")
        # zipfile raises UnicodeDecodeError here for a name flagged UTF-8 that is not.
        name = data[name_start:extra_start].decode("utf-8" if flags & _UTF8 else "cp437")
        if extra_length:  # zipfile checks every extra field, and takes zip64 sizes from one
            extra = data[extra_start : extra_start + extra_length]
            size, packed, offset = _zip64(extra, size, packed, offset)
        cut = name.partition("\0")[0] if "\0" in name else name
        where = start + position
        entries.append(CentralEntry(cut, name, flags, method, crc, packed, size, offset + shift, where))
        position = following
    return start, entries


def _zip64(extra: bytes, size: int, packed: int, offset: int) -> tuple[int, int, int]:
    """The sizes and offset a zip64 extra field gives for those marked 0xFFFFFFFF, as
    zipfile's ``ZipInfo._decodeExtra`` reads them (every block's length checked)."""
    position = 0
    while len(extra) - position >= 4:
        kind, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        if len(body) < length:
            raise _Damaged(f"Corrupt extra field {kind:04x} (size={length})")
        if kind == _ZIP64_EXTRA:
            values = [int.from_bytes(body[i : i + 8], "little") for i in range(0, len(body) - 7, 8)]
            wanted = (size in (0xFFFFFFFFFFFFFFFF, _ZIP64_MARK), packed == _ZIP64_MARK, offset == _ZIP64_MARK)
            if sum(wanted) > len(values):
                raise _Damaged("Corrupt zip64 extra field")
            if wanted[0]:
                size = values.pop(0)
            if wanted[1]:
                packed = values.pop(0)
            if wanted[2]:
                offset = values.pop(0)
        position += 4 + length
    return size, packed, offset


def open_item(file: BinaryIO, start: int, length: int, where: str, limits: Limits = LIMITS) -> TorchArchive:
    """The archive at bytes ``[start, start + length)`` of ``file``, its structure and
    torch's rules checked; problems are listed, not raised (``where`` names it)."""
    pread = WindowBytes(file, start, length)
    end = end_record(pread, length, where, limits)
    try:
        start_dir, entries = read_directory(pread, end)
    except (_Damaged, UnicodeDecodeError) as exc:
        raise CorruptCheckpoint(f"{where}: damaged or truncated zip archive ({exc})") from exc
    layout = check_structure(pread, length, end, start_dir, entries, limits)
    archive = TorchArchive(where, entries, layout, root_of(entries), limits, pread)
    check_torch_rules(archive)
    return archive
