"""Walking a pickle's opcodes without building anything: where it ends, and whether every
number it gives stays inside it and within :class:`~paramctl.formats._limits.Limits`.

The C unpickler trusts those numbers: ``LONG_BINPUT 2**31-1`` makes it allocate and clear
a memo table of 2**32 slots, and a ``BINBYTES8`` length is allocated before its bytes are
read. :func:`scan_pickle` checks each one first. It must be quick (a 100,000-tensor
``data.pkl`` has three million opcodes), so runs of fixed-size opcodes are matched by one
regular expression, strings are stepped over inline, and only the rare rest goes through
the general path. The opcode table comes from :mod:`pickletools`, which documents every
opcode of every protocol.

>>> import pickle
>>> data = pickle.dumps({"w": [1, 2, 3]}, protocol=2)
>>> scan_pickle(data) == len(data)
True
>>> scan_pickle(b"\\x80\\x02r\\xff\\xff\\xff\\x7f.")
Traceback (most recent call last):
paramctl.errors.LimitExceeded: the pickle is too large or too complex to read: memo index 2,147,483,647; ...
"""

from __future__ import annotations

import functools
import mmap
import pickle
import pickletools
import re
from collections.abc import Callable
from typing import Any

from paramctl.errors import CorruptCheckpoint, LimitExceeded, UnsafePickle
from paramctl.formats._limits import LIMITS, Limits

# What a pickle is read from: both find a byte without copying.
Buffer = bytes | mmap.mmap


def _size_of(opcode: pickletools.OpcodeInfo) -> int | str:
    """A fixed argument size in bytes, or how the size is found: ``line``, ``lines`` (two
    lines), ``len1``, ``len4``, ``len4s`` (signed) or ``len8`` (a length prefix)."""
    arg = opcode.arg
    if arg is None:
        return 0
    if arg.n >= 0:
        return int(arg.n)
    if arg.n == pickletools.UP_TO_NEWLINE:
        return "lines" if arg.name == "stringnl_noescape_pair" else "line"
    return {
        pickletools.TAKEN_FROM_ARGUMENT1: "len1",
        pickletools.TAKEN_FROM_ARGUMENT4: "len4s",
        pickletools.TAKEN_FROM_ARGUMENT4U: "len4",
        pickletools.TAKEN_FROM_ARGUMENT8U: "len8",
    }[arg.n]


SIZES: dict[int, int | str] = {ord(op.code): _size_of(op) for op in pickletools.opcodes}
NAMES: dict[int, str] = {ord(op.code): op.name for op in pickletools.opcodes}
_CODE = {name: code for code, name in NAMES.items()}
# Fixed-size opcodes that still need a look at their argument.
_WATCHED = {_CODE[name] for name in ("PROTO", "FRAME", "EXT1", "EXT2", "EXT4", "STOP", "LONG_BINPUT")}
_PREFIX = {"len1": 1, "len4": 4, "len4s": 4, "len8": 8}
# Strings and bytes with a 4-byte or a 1-byte length: most of what a checkpoint's pickle
# holds besides fixed-size opcodes, so they are stepped over without a function call.
_LENGTH4 = {code for code, size in SIZES.items() if size == "len4"}
_LENGTH1 = {code for code, size in SIZES.items() if size == "len1"} - {_CODE["LONG1"]}
_LONGS = {_CODE["LONG1"], _CODE["LONG4"]}
_PUTS = {_CODE["PUT"], _CODE["BINPUT"], _CODE["LONG_BINPUT"]}
_EXTENSIONS = {_CODE["EXT1"], _CODE["EXT2"], _CODE["EXT4"]}


def memo_index_bits(size: int, limits: Limits = LIMITS) -> int:
    """Memo indices of a ``size``-byte pickle stay below ``2**bits``: the power of two above
    its length (pickle numbers slots from 0), at least 2**16, and within the limit.

    >>> memo_index_bits(300), memo_index_bits(10_000_000), memo_index_bits(1 << 40)
    (16, 23, 23)
    """
    return min(max(size.bit_length(), 16), max((limits.memo_entries - 1).bit_length(), 16))


@functools.lru_cache(maxsize=16)
def _fixed_run(index_bits: int) -> Callable[..., Any]:
    """A regular expression matching a run of fixed-size opcodes, LONG_BINPUT included
    while its index stays below ``2**index_bits`` (16 to 24)."""
    by_size: dict[int, list[int]] = {}
    for code, size in SIZES.items():
        if isinstance(size, int) and code not in _WATCHED:
            by_size.setdefault(size, []).append(code)
    parts = [
        b"[" + b"".join(re.escape(bytes([code])) for code in codes) + b"]" + b"." * size
        for size, codes in sorted(by_size.items())
    ]
    high = b"\\x00" if index_bits <= 16 else b"[\\x00-\\x%02x]" % ((1 << (index_bits - 16)) - 1)
    parts.append(re.escape(bytes([_CODE["LONG_BINPUT"]])) + b".." + high + b"\\x00")
    return re.compile(b"(?:" + b"|".join(parts) + b")*", re.DOTALL).match


class _Scan:
    """A walk over one pickle: where it is and what it must hold to."""

    def __init__(self, data: Buffer, start: int, limits: Limits, what: str) -> None:
        self.data, self.position, self.limits, self.what = data, start, limits, what
        # A pickle followed by other data (a legacy file's storages) is read no further
        # than the size limit allows.
        self.end = min(len(data), start + limits.pickle_bytes)
        self.memo_bound = 1 << memo_index_bits(self.end - start, limits)
        self.frame_end = -1

    def fail(self, problem: str) -> CorruptCheckpoint:
        if self.position >= self.end and self.end < len(self.data):
            found, limit = "no STOP in its first bytes", self.limits.pickle_bytes
            return LimitExceeded(self.what, found, f"paramctl reads pickles of at most {limit:,} bytes")
        return CorruptCheckpoint(f"{self.what} is damaged: {problem} at byte {self.position:,}")

    def skip(self, size: int) -> None:
        end = self.position + size
        if size < 0 or end > self.end:
            self.position = max(self.position, min(end, self.end))
            raise self.fail(f"an argument of {size:,} bytes runs past its end")
        self.position = end

    def number(self, size: int, *, signed: bool = False) -> int:
        start = self.position
        self.skip(size)
        return int.from_bytes(self.data[start : self.position], "little", signed=signed)

    def line(self) -> bytes:
        end = self.data.find(b"\n", self.position, self.end)
        if end < 0:
            self.position = self.end
            raise self.fail("a text argument has no end of line")
        text = self.data[self.position : end]
        self.position = end + 1
        return text

    def opcode(self, code: int) -> bool:
        """Step over one opcode's argument (the position is just past the opcode) and hold
        it to the limits; ``True`` when the pickle ends here."""
        size = SIZES.get(code)
        if size is None:
            self.position -= 1
            raise self.fail(f"unknown opcode {code:#04x}")
        if isinstance(size, int):
            argument: int | bytes = self.number(size) if size else 0
        elif size == "line":
            argument = self.line()
        elif size == "lines":
            argument = self.line() + b" " + self.line()
        else:
            length = self.number(_PREFIX[size], signed=size == "len4s")
            if code in _LONGS and length > self.limits.integer_bytes:
                found, limit = f"an integer of {length:,} bytes", self.limits.integer_bytes
                raise LimitExceeded(self.what, found, f"paramctl reads at most {limit:,}")
            self.skip(length)
            return False
        return self._check(code, argument)

    def _check(self, code: int, argument: int | bytes) -> bool:
        name = NAMES[code]
        if code in _PUTS:
            index = argument if isinstance(argument, int) else _decimal(self, argument)
            if index >= self.memo_bound:
                found, bound = f"memo index {index:,}", self.memo_bound
                raise LimitExceeded(self.what, found, f"a pickle of this size names at most {bound:,}")
        elif name == "PROTO" and isinstance(argument, int) and argument > pickle.HIGHEST_PROTOCOL:
            raise self.fail(f"pickle protocol {argument}, which no Python writes")
        elif name == "FRAME" and isinstance(argument, int):
            self.frame_end = self.position + argument
            if self.frame_end > self.end:
                raise self.fail(f"a frame of {argument:,} bytes runs past its end")
        elif code in _EXTENSIONS:
            raise UnsafePickle(
                f"copyreg extension {argument!r}", "paramctl does not follow the extension registry"
            )
        elif name == "STOP":
            if self.frame_end > self.position:
                raise self.fail("the pickle stops inside a frame that runs on")
            return True
        return False


def _decimal(scan: _Scan, argument: bytes) -> int:
    if not argument.strip().isdigit():
        raise scan.fail(f"a memo index {bytes(argument[:20])!r} is not a number")
    return int(argument)


def scan_pickle(data: Buffer, start: int = 0, *, limits: Limits = LIMITS, what: str = "the pickle") -> int:
    """Check one pickle starting at ``start`` without unpickling it; return where it ends.

    Raises :class:`CorruptCheckpoint` for a damaged pickle, :class:`LimitExceeded` for one
    beyond ``limits`` and :class:`UnsafePickle` for one naming a global through the copyreg
    extension registry (which depends on what the loading process registered).
    """
    scan = _Scan(data, start, limits, what)
    fixed_run = _fixed_run(scan.memo_bound.bit_length() - 1)
    end = scan.end
    while True:
        position = fixed_run(data, scan.position, end).end()
        if position >= end:
            scan.position = position
            raise scan.fail("the pickle ends before its STOP")
        code = data[position]
        if code in _LENGTH4:
            position += 5 + int.from_bytes(data[position + 1 : position + 5], "little")
        elif code in _LENGTH1 and position + 1 < end:
            position += 2 + data[position + 1]
        else:
            scan.position = position + 1
            if scan.opcode(code):
                return scan.position
            continue
        scan.position = position
        if position > end:
            scan.position = end
            raise scan.fail("a string runs past the end")
