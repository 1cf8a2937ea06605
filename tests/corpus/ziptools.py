"""A zip writer that can lie: every field of local headers, the central directory and the
end record is set by the caller, so the corpus can build zips no honest writer makes.

``build_zip(members)`` writes the members in order (local header, name, data) and then the
central directory and end record; each :class:`Member` may override what its local header
or its directory entry says, and :class:`Layout` overrides the directory's order, the end
record and what comes before and after the archive.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

STORED, DEFLATED = 0, 8
_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR = struct.Struct("<4sLQL")


@dataclass
class Member:
    name: str
    data: bytes
    method: int = STORED
    # Overrides: the compressed bytes, what the local header says, what the directory says.
    packed: bytes | None = None
    local_name: str | None = None
    local_method: int | None = None
    local_sizes: tuple[int, int] | None = None  # (compressed, uncompressed)
    crc: int | None = None
    flags: int = 0
    declared_size: int | None = None  # the uncompressed size both headers claim
    raw_name: bytes | None = None  # the name's bytes in both headers (NUL bytes...)
    extract_version: int = 20
    # Point the directory entry at another member's local header (by index).
    header_of: int | None = None


@dataclass
class Layout:
    before: bytes = b""
    after: bytes = b""
    comment: bytes = b""
    order: list[int] | None = None  # directory order, as member indices
    entries: int | None = None  # what the end record counts
    directory_offset: int | None = None
    directory_size: int | None = None
    extra_entries: list[int] = field(default_factory=list)  # members listed twice


def _packed(member: Member) -> bytes:
    if member.packed is not None:
        return member.packed
    if member.method == DEFLATED:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        return compressor.compress(member.data) + compressor.flush()
    return member.data


def build_zip(members: list[Member], layout: Layout | None = None) -> bytes:
    layout = layout or Layout()
    out = bytearray(layout.before)
    offsets, central = [], []
    for member in members:
        packed = _packed(member)
        name = member.raw_name if member.raw_name is not None else member.name.encode()
        local_name = member.local_name.encode() if member.local_name is not None else name
        crc = member.crc if member.crc is not None else zlib.crc32(member.data)
        size = member.declared_size if member.declared_size is not None else len(member.data)
        local_packed, local_size = member.local_sizes or (len(packed), size)
        offsets.append(len(out) - len(layout.before))
        method = member.local_method if member.local_method is not None else member.method
        out += _LOCAL.pack(
            b"PK\x03\x04",
            member.extract_version,
            member.flags,
            method,
            0,
            0x21,
            crc,
            local_packed,
            local_size,
            len(local_name),
            0,
        )
        out += local_name + packed
        central.append((member, name, crc, len(packed), size))
    directory_start = len(out)
    order = layout.order if layout.order is not None else list(range(len(members)))
    for index in order + layout.extra_entries:
        member, name, crc, packed_size, size = central[index]
        target = offsets[member.header_of if member.header_of is not None else index]
        out += _CENTRAL.pack(
            b"PK\x01\x02",
            20,
            member.extract_version,
            member.flags,
            member.method,
            0,
            0x21,
            crc,
            packed_size,
            size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            target,
        )
        out += name
    directory_size = len(out) - directory_start
    count = layout.entries if layout.entries is not None else len(order) + len(layout.extra_entries)
    size = layout.directory_size if layout.directory_size is not None else directory_size
    offset = directory_start - len(layout.before)
    offset = layout.directory_offset if layout.directory_offset is not None else offset
    if count > 0xFFFF:  # the zip64 end record and its locator carry the count
        record = len(out) - len(layout.before)
        out += _END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)
        out += _LOCATOR.pack(b"PK\x06\x07", 0, record, 1)
        count = 0xFFFF
    out += _END.pack(b"PK\x05\x06", 0, 0, count, count, size, offset, len(layout.comment))
    out += layout.comment + layout.after
    return bytes(out)


def deflate_bomb(size: int) -> bytes:
    """A raw DEFLATE stream inflating to ``size`` zero bytes (to within 258), built without
    compressing anything: one fixed-Huffman block of a literal and back-references of the
    longest length at distance 1, 13 bits each, a 13-byte pattern repeated."""
    # Bits: BFINAL=1, BTYPE=01 (fixed), literal 0 (00110000), then one reference: length
    # code 285 (11000101) and distance code 0 (00000): 3 + 8 + 13 = 24 bits, byte aligned.
    bits = [1, 1, 0] + [0, 0, 1, 1, 0, 0, 0, 0] + [1, 1, 0, 0, 0, 1, 0, 1] + [0] * 5
    reference = [1, 1, 0, 0, 0, 1, 0, 1] + [0] * 5
    head = _pack_bits(bits)
    pattern = _pack_bits(reference * 8)
    repeats = max(0, (size - 1 - 258) // (258 * 8))
    tail = _pack_bits([0] * 7 + [0])  # end of block (code 256 = 0000000), padding
    return head + pattern * repeats + tail


def _pack_bits(bits: list[int]) -> bytes:
    """Bits in DEFLATE order: Huffman codes are written most significant bit first, packed
    from each byte's least significant bit."""
    out = bytearray((len(bits) + 7) // 8)
    for index, bit in enumerate(bits):
        if bit:
            out[index // 8] |= 1 << (index % 8)
    return bytes(out)


def bomb_size(size: int) -> int:
    """What :func:`deflate_bomb` of ``size`` inflates to exactly."""
    return 1 + 258 + 258 * 8 * max(0, (size - 1 - 258) // (258 * 8))
