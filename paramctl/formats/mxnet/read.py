"""Reading an MXNet NDArray file (layout in :mod:`paramctl.formats.mxnet.layout`).

Only the headers are read: each array's data is skipped over, so listing a file touches a
few bytes per array. Every count is checked against the bytes the file has left before
anything is allocated for it.

>>> import os, tempfile
>>> from paramctl.formats.mxnet.write import write_arrays
>>> path = os.path.join(tempfile.mkdtemp(), "m.params")
>>> with open(path, "wb") as out:
...     write_arrays(out, [("dense0_bias", (2,), "float32", bytes(8))])
>>> [(e.name, e.shape, e.dtype) for e in read(Path(path)).entries]
[('dense0_bias', (2,), 'float32')]
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import BinaryIO

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.dtypes import DTYPES
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._limits import LIMITS, check_count
from paramctl.formats._source import open_binary
from paramctl.formats.mxnet import layout as L
from paramctl.formats.mxnet.layout import NAME


class _Cursor:
    """Reads little-endian fields of a file, refusing to run past its end."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        self.file, self.path = file, path
        self.size = os.fstat(file.fileno()).st_size
        self.position = 0

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.position + count > self.size:
            raise CorruptCheckpoint(f"{self.path}: the file ends inside {what} at byte {self.position}")
        data = self.file.read(count)
        self.position += count
        return data

    def skip(self, count: int, what: str) -> int:
        start = self.position
        if self.position + count > self.size:
            raise CorruptCheckpoint(
                f"{self.path}: {what} needs {count} bytes at byte {start}, the file has {self.size - start}"
            )
        self.position += count
        self.file.seek(self.position)
        return start

    def count(self, what: str, smallest: int) -> int:
        (number,) = L.U64.unpack(self.take(L.U64.size, what))
        if number * smallest > self.size - self.position:
            raise CorruptCheckpoint(f"{self.path}: {what} says {number}, more than the file can hold")
        return int(number)


def read(path: Path) -> Checkpoint:
    with open_binary(path) as file:
        cursor = _Cursor(file, path)
        magic, reserved = L.HEADER.unpack(cursor.take(L.HEADER.size, "the header"))
        if magic != L.LIST_MAGIC or reserved:
            raise CorruptCheckpoint(f"{path}: not an MXNet NDArray file (magic {magic:#x})")
        count = cursor.count("the array count", L.ARRAY_START.size)
        check_count(f"{path}: the file", "arrays", count, LIMITS.tensors)
        arrays = [_array(cursor, index) for index in range(count)]
        names = _names(cursor, count)
        if cursor.position != cursor.size:
            raise CorruptCheckpoint(f"{path}: {cursor.size - cursor.position} bytes follow the names")
    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    notes: list[str] = []
    for index, (name, array) in enumerate(zip(names, arrays, strict=True)):
        if array is None:
            notes.append(f"{name}: an array with no shape and no data (MXNet's 'none' array) is not listed")
            continue
        shape, dtype, offset = array
        key = str(index)
        storages[key] = Storage(key, path, dtype, math.prod(shape) * DTYPES[dtype].itemsize, offset)
        entries.append(TensorEntry(name, (name,), shape, dtype, _contiguous(shape), key))
    return Checkpoint(path, NAME, entries, storages, notes=notes)


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _array(cursor: _Cursor, index: int) -> tuple[tuple[int, ...], str, int] | None:
    """One array's shape, dtype and data offset (``None`` for an array with no shape)."""
    what = f"array {index}"
    magic, storage_type = L.ARRAY_START.unpack(cursor.take(L.ARRAY_START.size, what))
    if magic not in (L.V2_MAGIC, L.V3_MAGIC):
        known = "an MXNet format older than 1.0" if magic == L.V1_MAGIC else "not an NDArray"
        raise CorruptCheckpoint(
            f"{cursor.path}: {what} has magic {magic:#x} ({known}); paramctl reads V2 and V3"
        )
    if storage_type != L.DENSE:
        kind = L.STORAGE_TYPES.get(storage_type, f"unknown storage type {storage_type}")
        raise CorruptCheckpoint(
            f"{cursor.path}: {what} is stored as {kind} (MXNet storage type {storage_type}); "
            "paramctl reads dense arrays only (convert it with .tostype('default') in MXNet)"
        )
    ndim_format = L.V2_NDIM if magic == L.V2_MAGIC else L.V3_NDIM
    (ndim,) = ndim_format.unpack(cursor.take(ndim_format.size, f"{what}'s shape"))
    if (magic == L.V2_MAGIC and ndim == 0) or ndim == -1:
        return None
    if not 0 <= ndim <= L.MAX_NDIM:
        raise CorruptCheckpoint(f"{cursor.path}: {what} claims {ndim} dimensions")
    raw = cursor.take(ndim * L.DIM.size, f"{what}'s shape")
    shape = tuple(L.DIM.unpack_from(raw, i * L.DIM.size)[0] for i in range(ndim))
    if any(size < 0 for size in shape):
        raise CorruptCheckpoint(f"{cursor.path}: {what} has an unknown size in shape {shape}")
    _, _, flag = L.CONTEXT_AND_TYPE.unpack(cursor.take(L.CONTEXT_AND_TYPE.size, f"{what}'s context"))
    if flag not in L.TYPE_FLAGS:
        raise CorruptCheckpoint(
            f"{cursor.path}: {what} has type flag {flag}, which MXNet 1.x does not define"
        )
    dtype = L.TYPE_FLAGS[flag]
    offset = cursor.skip(math.prod(shape) * DTYPES[dtype].itemsize, f"{what}'s data")
    return shape, dtype, offset


def _names(cursor: _Cursor, count: int) -> list[str]:
    """The arrays' names; a list saved without names is numbered from 0."""
    number = cursor.count("the name count", L.U64.size)
    if number == 0:
        return [str(index) for index in range(count)]
    if number != count:
        raise CorruptCheckpoint(f"{cursor.path}: {number} names for {count} arrays")
    names = []
    for index in range(number):
        length = cursor.count(f"name {index}'s length", 1)
        try:
            names.append(cursor.take(length, f"name {index}").decode())
        except UnicodeDecodeError as exc:
            raise CorruptCheckpoint(f"{cursor.path}: name {index} is not UTF-8") from exc
    if len(set(names)) != len(names):
        raise CorruptCheckpoint(f"{cursor.path}: two arrays have the same name")
    return names
