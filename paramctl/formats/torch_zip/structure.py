"""One reading of a zip: the checks that every zip reader (:mod:`zipfile`, torch's miniz, a
streaming unzip) sees the same records with the same bytes.

:mod:`zipfile` reads the central directory and trusts it; torch's reader derives the
archive's folder from the first record and finds data through each local header. Where a
file lets them differ (two records of one name, a local header that says another name,
size or compression, records that overlap, a directory that is not where the end record
says, bytes after the end record), paramctl refuses it: such a file can show one pickle to
the audit and another to ``torch.load``. zipfile offers none of these checks, so they are
written here, on top of a parse of the directory: zipfile's for a whole file, the one of
:mod:`~paramctl.formats.torch_zip.window` for an archive inside a larger file. Bytes are
read through a :data:`Pread`, so the checks are the same wherever the archive lies.

>>> import os, tempfile, zipfile
>>> path = os.path.join(tempfile.mkdtemp(), "two.zip")
>>> import warnings
>>> with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
...     warnings.simplefilter("ignore")  # zipfile warns of the duplicate it is asked to write
...     archive.writestr("a/x", b"1")
...     archive.writestr("a/x", b"2")
>>> with open(path, "rb") as file, zipfile.ZipFile(file) as archive:
...     layout = Layout(os.path.getsize(path))
...     check_records(reader_of(file.fileno()), archive.infolist(), archive.start_dir, layout)
>>> [problem.message for problem in layout.problems]
['two records are named a/x: readers disagree on which one counts']
"""

from __future__ import annotations

import functools
import operator
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from paramctl.errors import CorruptCheckpoint, LimitExceeded
from paramctl.formats._limits import LIMITS, Limits

_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCAL = struct.Struct("<4s5H3L2H")
_END_SIGNATURE, _END64_SIGNATURE, _LOCATOR_SIGNATURE = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
_LOCAL_SIGNATURE = b"PK\x03\x04"
_ENCRYPTED, _DESCRIPTOR, _UTF8 = 0x1, 0x8, 0x800
_ZIP64_MARK = 0xFFFFFFFF
# Past any file (and past what pread takes).
_FAR = 1 << 62
# CRC and two sizes of 4 or 8 bytes, with or without the optional signature.
_DESCRIPTOR_SIZES = {12, 16, 20, 24}
# A compression ratio no real tensor reaches (weights deflate to about 1.1:1).
_BOMB_RATIO = 100
# torch's zip reader (miniz) inflates stored and deflated records only.
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}

Pread = Callable[[int, int], bytes]
"""``pread(size, offset)``: up to ``size`` bytes of the archive at ``offset`` (fewer where
it ends, none at an offset it does not reach)."""


class DirectoryEntry(Protocol):
    """One record as the central directory lists it (a :class:`zipfile.ZipInfo` is one)."""

    @property
    def filename(self) -> str: ...  # cut at a NUL byte, as zipfile cuts it
    @property
    def orig_filename(self) -> str: ...  # whole, as torch reads it
    @property
    def flag_bits(self) -> int: ...
    @property
    def compress_type(self) -> int: ...
    @property
    def CRC(self) -> int: ...  # zipfile's name
    @property
    def compress_size(self) -> int: ...
    @property
    def file_size(self) -> int: ...
    @property
    def header_offset(self) -> int: ...


@dataclass(frozen=True)
class Problem:
    """Something in the zip's structure: ``ambiguous`` when two readers would read the
    file differently; ``blocks`` when paramctl will not read it (else only check says it)."""

    name: str
    message: str
    ambiguous: bool = False
    blocks: bool = True
    severity: Literal["error", "warning"] = "error"


# The two records below are tuples: an archive inside a rank file is one of thousands, each
# read in a few dozen microseconds, of which a frozen dataclass's construction is a fair part.
class EndRecord(NamedTuple):
    """The end-of-central-directory record (and its zip64 extension), as written."""

    position: int
    entries: int
    directory_size: int
    directory_offset: int
    comment_length: int
    directory_end: int  # where the directory must end: the zip64 record or the end record
    zip64_problem: str = ""


class Record(NamedTuple):
    """One record as its local header places it."""

    info: DirectoryEntry
    data_offset: int
    end: int  # past its data
    # A data descriptor (12 to 24 bytes: CRC and sizes, after the data) follows it.
    descriptor: bool = False


_HEADER_OFFSET = operator.attrgetter("info.header_offset")


@dataclass
class Layout:
    """The records of a zip, by name (the first of each name), and what is wrong with it."""

    size: int
    records: dict[str, Record] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Every record placed, duplicates too, by the identity of its directory entry.
    placed: dict[int, Record] = field(default_factory=dict)

    def add(
        self,
        name: str,
        message: str,
        *,
        ambiguous: bool = False,
        blocks: bool = True,
        severity: Literal["error", "warning"] = "error",
    ) -> None:
        self.problems.append(Problem(name, message, ambiguous, blocks, severity))


# The end record and a comment of at most 64 KiB: where its signature is searched for.
END_SEARCH = _END.size + 0xFFFF


def pread_exact(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset``, or fewer where the file ends (none at an offset no
    file reaches: a zip's 64-bit fields may say anything)."""
    return os.pread(fd, size, offset) if 0 <= offset < _FAR and 0 <= size < _FAR else b""


def reader_of(fd: int) -> Pread:
    """The :data:`Pread` of a whole file."""
    return functools.partial(pread_exact, fd)


# Where the end record is first looked for: an archive without a long comment has it there.
NEAR_END = 2 << 10


def find_end_record(pread: Pread, size: int) -> EndRecord | None:
    """The end record zipfile and miniz both take: the last signature in the file's tail
    (looked for in its last KiB first: the last one there is the last one of all)."""
    tail_start = max(0, size - NEAR_END)
    tail = pread(size - tail_start, tail_start)
    position = tail.rfind(_END_SIGNATURE)
    if position < 0 and tail_start > 0:
        tail_start = max(0, size - END_SEARCH)
        tail = pread(size - tail_start, tail_start)
        position = tail.rfind(_END_SIGNATURE)
    if position < 0 or len(tail) - position < _END.size:
        return None
    fields = _END.unpack_from(tail, position)
    entries, directory_size, directory_offset, comment_length = fields[4], fields[5], fields[6], fields[7]
    absolute = tail_start + position
    directory_end, zip64 = absolute, ""
    locator = pread(_END64_LOCATOR.size, absolute - _END64_LOCATOR.size)
    if len(locator) == _END64_LOCATOR.size and locator[:4] == _LOCATOR_SIGNATURE:
        # zipfile looks for the zip64 record just before the locator, miniz where the
        # locator says: both must find it.
        _, disk, record_offset, disks = _END64_LOCATOR.unpack(locator)
        record = pread(_END64.size, record_offset)
        if disk != 0 or disks > 1:
            zip64 = "its zip64 locator says it spans several disks, which no reader takes"
        elif record_offset != absolute - _END64_LOCATOR.size - _END64.size or record[:4] != _END64_SIGNATURE:
            zip64 = f"its zip64 locator points at byte {record_offset:,}, where no zip64 end record is"
        else:
            entries, directory_size, directory_offset = _END64.unpack(record)[7:10]
            directory_end = record_offset
    return EndRecord(
        absolute, entries, directory_size, directory_offset, comment_length, directory_end, zip64
    )


def check_end(end: EndRecord, size: int, start_dir: int, count: int, layout: Layout) -> None:
    """The directory sits where the end record says, and nothing follows the end record;
    ``start_dir`` and ``count`` are where the directory's parse started and what it found."""
    if end.zip64_problem:
        layout.add("", end.zip64_problem, ambiguous=True)
    after = size - (end.position + _END.size + end.comment_length)
    if after > 0:
        layout.add("", f"{after:,} bytes follow the zip's end record", ambiguous=True)
    elif after < 0:
        layout.add("", "the zip's end record runs past the end of the file")
    if start_dir != end.directory_offset:
        shift = start_dir - end.directory_offset
        layout.add(
            "", f"the central directory is {shift:,} bytes from where the end record puts it", ambiguous=True
        )
    elif end.directory_offset + end.directory_size != end.directory_end:
        layout.add("", "the central directory does not end where the end record begins", ambiguous=True)
    if end.entries != count:
        message = f"the end record counts {end.entries:,} records, the directory holds {count:,}"
        layout.add("", message, ambiguous=True)


def _zip64_sizes(extra: bytes) -> tuple[int, int] | None:
    """(uncompressed, compressed) from a local header's zip64 extra field, if it has one."""
    position = 0
    while position + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, position)
        if kind == 1 and length >= 16:
            sizes: tuple[int, int] = struct.unpack_from("<QQ", extra, position + 4)
            return sizes
        position += 4 + length
    return None


def locate(pread: Pread, info: DirectoryEntry, layout: Layout, directory_start: int) -> Record | None:
    """Read a record's local header, compare it with the directory, place its bytes."""
    name, header_offset, whole_name = info.filename, info.header_offset, info.orig_filename
    # One read for the header, its name and (usually) its extra field.
    head = pread(_LOCAL.size + len(whole_name) * 4 + 256, header_offset)
    if len(head) < _LOCAL.size or head[:4] != _LOCAL_SIGNATURE:
        where = "outside the file" if header_offset + _LOCAL.size > layout.size else "at no local header"
        layout.add(name, f"the directory places it {where} (offset {header_offset:,})")
        return None
    _, _, flags, method, _, _, crc, packed, unpacked, name_length, extra_length = _LOCAL.unpack_from(head)
    name_end = _LOCAL.size + name_length
    if len(head) < name_end + extra_length:
        head = head[: _LOCAL.size] + pread(name_length + extra_length, header_offset + _LOCAL.size)
    local_name = head[_LOCAL.size : name_end].decode("utf-8" if flags & _UTF8 else "cp437", "replace")
    if local_name != whole_name:
        layout.add(name, f"its local header names it {local_name!r}", ambiguous=True)
    if method != info.compress_type or (flags ^ info.flag_bits) & (_ENCRYPTED | _DESCRIPTOR | _UTF8):
        layout.add(name, "its local header gives another compression or flags", ambiguous=True)
    if _ZIP64_MARK in (unpacked, packed):
        unpacked, packed = _zip64_sizes(head[name_end : name_end + extra_length]) or (unpacked, packed)
    descriptor = flags & _DESCRIPTOR
    if not descriptor and (crc != info.CRC or unpacked != info.file_size or packed != info.compress_size):
        layout.add(name, "its local header gives other sizes or checksum than the directory", ambiguous=True)
    data_offset = header_offset + name_end + extra_length
    end = data_offset + info.compress_size
    if end > directory_start:
        past = "past the end of the file" if end > layout.size else "into the central directory"
        layout.add(name, f"its bytes run {past}")
        return None
    return Record(info, data_offset, end, bool(descriptor))


def check_records(
    pread: Pread, entries: Sequence[DirectoryEntry], start_dir: int, layout: Layout, limits: Limits = LIMITS
) -> None:
    """Names, compression and local headers of every record, and that none overlap."""
    placed: list[Record] = []
    for info in entries:
        name = info.filename
        if info.orig_filename != name:
            layout.add(name, "its name holds a NUL byte, which zipfile cuts and torch keeps", ambiguous=True)
        if name in layout.records:
            layout.add(
                name, f"two records are named {name}: readers disagree on which one counts", ambiguous=True
            )
        if info.flag_bits & _ENCRYPTED:
            layout.add(name, "it is encrypted")
        elif info.compress_type not in READABLE_METHODS:
            layout.add(
                name, f"it is compressed with method {info.compress_type}, which torch.load cannot read"
            )
        elif info.compress_type != zipfile.ZIP_STORED and info.file_size > limits.inflated_bytes:
            _large_compressed(info, layout)
        record = locate(pread, info, layout, start_dir)
        if record is not None:
            placed.append(record)
            layout.records.setdefault(name, record)
            layout.placed[id(info)] = record
    _check_overlaps(placed, layout)


def _large_compressed(info: DirectoryEntry, layout: Layout) -> None:
    """A compressed record beyond what ``check`` inflates: a bomb when it claims far more
    than DEFLATE gives real tensors (about 1.1:1), else only left unchecked."""
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > _BOMB_RATIO:
        layout.add(info.filename, f"it inflates {ratio:,.0f}:1 to {info.file_size:,} bytes: a zip bomb")
    else:
        message = f"it inflates to {info.file_size:,} bytes, more than check inflates"
        layout.add(info.filename, message, blocks=False, severity="warning")


def _check_overlaps(placed: list[Record], layout: Layout) -> None:
    placed.sort(key=_HEADER_OFFSET)
    position, previous, descriptor = 0, "", False
    for record in placed:
        start = record.info.header_offset
        if start == position or (descriptor and start - position in _DESCRIPTOR_SIZES):
            pass  # the next record follows the last one's data (and its data descriptor)
        elif start < position:
            layout.add(record.info.filename, f"it overlaps {previous}", ambiguous=True)
        else:
            where = f"after {previous}" if previous else "before the first record"
            layout.add(
                "",
                f"{start - position:,} bytes {where} belong to no record",
                blocks=False,
                severity="warning",
            )
        if record.end > position:
            position = record.end
        previous, descriptor = record.info.filename, record.descriptor


def read_member(pread: Pread, record: Record, limit: int, what: str) -> bytes:
    """A record's bytes, inflated at most to its declared size and never past ``limit``,
    its CRC-32 compared."""
    info = record.info
    if info.file_size > limit:
        raise LimitExceeded(what, f"{info.file_size:,} bytes", f"paramctl reads at most {limit:,}")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size == info.file_size:
        data = pread(info.file_size, record.data_offset)  # a small record: one read
        if len(data) != info.file_size:
            raise CorruptCheckpoint(f"{what} runs past the end of the file")
    else:
        data = b"".join(member_chunks(pread, record, what))
    if zlib.crc32(data) != info.CRC:
        raise CorruptCheckpoint(f"{what} fails its CRC-32: its bytes changed after writing")
    return data


def member_chunks(pread: Pread, record: Record, what: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    """A record's bytes in pieces, inflated (DEFLATE) with the output bounded by its
    declared size: a record that inflates past what it declares stops at once."""
    info = record.info
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise CorruptCheckpoint(f"{what} is stored, yet its two sizes differ")
    inflater = None if info.compress_type == zipfile.ZIP_STORED else zlib.decompressobj(-zlib.MAX_WBITS)
    position, left, produced = record.data_offset, info.compress_size, 0
    try:
        while produced <= info.file_size:
            data = inflater.unconsumed_tail if inflater is not None else b""
            if not data:
                if not left or (inflater is not None and inflater.eof):
                    break
                data = pread(min(left, chunk), position)
                if not data:
                    raise CorruptCheckpoint(f"{what} runs past the end of the file")
                position, left = position + len(data), left - len(data)
            if inflater is not None:
                # One byte past the declared size is enough to know it lies.
                data = inflater.decompress(data, info.file_size + 1 - produced)
            produced += len(data)
            yield data
    except zlib.error as exc:
        raise CorruptCheckpoint(f"{what} does not inflate ({exc})") from exc
    if produced != info.file_size:
        raise CorruptCheckpoint(
            f"{what} inflates to {produced:,} bytes, not the {info.file_size:,} it declares"
        )
