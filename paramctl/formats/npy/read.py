"""NumPy ``.npy`` files and ``.npz`` archives (``np.save``, ``np.savez``; JAX and Flax too).

A ``.npy`` is a magic string, a version, a header (a Python literal: dtype, Fortran order,
shape) and the raw elements. The header is parsed by numpy's own
``numpy.lib.format.read_array_header_1_0``/``_2_0``, which evaluates the literal safely;
nothing is ever unpickled (numpy would need ``allow_pickle`` for that), and an array of
Python objects, whose elements are pickles, is refused as unsafe.

An ``.npz`` is a zip of ``.npy`` members named ``<key>.npy``. Stored (``np.savez``)
members keep their elements at a fixed offset in the archive; deflated ones
(``np.savez_compressed``) are listed from their decompressed headers and their values are
read by inflating the member (``Storage.member``), one array at a time.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "w.npy")
>>> np.save(path, np.zeros((2, 3), np.float16))
>>> [(e.name, e.shape, e.dtype) for e in read_npy(Path(path)).entries]
[('w', (2, 3), 'float16')]
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, contiguous_stride
from paramctl.errors import CorruptCheckpoint, ExitCode, ParamctlError
from paramctl.formats._limits import LIMITS, check_count
from paramctl.formats._source import open_binary
from paramctl.formats.npy.layout import NPY, NPZ, NUMPY_DTYPES
from paramctl.formats.torch_zip.read import read_zip, record_data_offset

if TYPE_CHECKING:
    import numpy as np

# numpy's own limit on a header it parses without allow_pickle-like trust.
MAX_HEADER_BYTES = 10_000


class UnsafeArray(ParamctlError):
    """An array of Python objects: its elements are pickles, which paramctl never runs."""

    exit_code = ExitCode.UNSAFE


@dataclass(frozen=True)
class ArrayHeader:
    """What a ``.npy`` header says, and how many bytes it took."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: str
    byteorder: str
    header_bytes: int


def read_array_header(file: IO[bytes], where: str) -> ArrayHeader:
    """Parse a ``.npy`` header with numpy's own reader, refusing object and record arrays."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(file)
        if version == (1, 0):
            shape, fortran, dt = npy_format.read_array_header_1_0(file, max_header_size=MAX_HEADER_BYTES)
        elif version in ((2, 0), (3, 0)):
            # 3.0 differs from 2.0 only in a UTF-8 header, for non-ASCII field names of
            # record arrays (refused below): numpy has no public reader for it, and 2.0's
            # reads every header of an array of numbers the same.
            shape, fortran, dt = npy_format.read_array_header_2_0(file, max_header_size=MAX_HEADER_BYTES)
        else:
            raise CorruptCheckpoint(f"{where}: .npy format version {version} is not one numpy writes")
    # numpy's parser evaluates only literals; whatever it raises (ValueError, SyntaxError,
    # tokenize's TokenError, RecursionError...) is a damaged header.
    except Exception as exc:
        raise CorruptCheckpoint(f"{where}: not a readable .npy header ({type(exc).__name__}: {exc})") from exc
    # numpy takes any integers (True, -2) for sizes; np.load then fails or reads nothing.
    if len(shape) > 64 or not all(type(size) is int and size >= 0 for size in shape):
        raise CorruptCheckpoint(f"{where}: the header's shape {shape!r:.60} is not a list of sizes")
    return ArrayHeader(tuple(shape), bool(fortran), _dtype_name(dt, where), _byteorder(dt), file.tell())


def _dtype_name(dt: np.dtype[Any], where: str) -> str:
    if dt.hasobject:
        raise UnsafeArray(
            f"{where}: refusing to read an array of Python objects ({dt}): its elements are "
            "pickles, and paramctl never unpickles (numpy itself needs allow_pickle=True)"
        )
    name = NUMPY_DTYPES.get(f"{dt.kind}{dt.itemsize}") if dt.fields is None and not dt.subdtype else None
    if name is None:
        raise CorruptCheckpoint(f"{where}: arrays of dtype {dt} are not tensors paramctl reads")
    return name


def _byteorder(dt: np.dtype[Any]) -> str:
    import sys

    order = dt.byteorder
    if order in ("=", "|"):
        return sys.byteorder
    return "big" if order == ">" else "little"


def _entry(name: str, header: ArrayHeader) -> TensorEntry:
    shape = header.shape
    stride = contiguous_stride(shape)
    if header.fortran_order:
        stride = tuple(reversed(contiguous_stride(tuple(reversed(shape)))))
    return TensorEntry(name, (name,), shape, header.dtype, stride, name)


def read_npy(path: Path) -> Checkpoint:
    with open_binary(path) as file:
        header = read_array_header(file, str(path))
        size = file.seek(0, 2)
    name = path.stem or "array"
    entry = _entry(name, header)
    if header.header_bytes + entry.nbytes > size:
        raise CorruptCheckpoint(f"{path}: the array needs {entry.nbytes} bytes, the file holds fewer")
    storage = Storage(name, path, entry.dtype, entry.nbytes, header.header_bytes)
    return Checkpoint(path, NPY, [entry], {name: storage}, payload=None, byteorder=header.byteorder)


def read_npz(path: Path) -> Checkpoint:
    # The zip's structure is read one way first (no duplicate names, no bombs, ...).
    return read_zip(path, _read_npz)


def _read_npz(path: Path, file: IO[bytes], archive: zipfile.ZipFile) -> Checkpoint:
    entries, storages, orders = [], {}, set()
    check_count(f"{path}: the archive", "arrays", len(archive.infolist()), LIMITS.tensors)
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise CorruptCheckpoint(f"{path}: member {info.filename!r} is not a .npy array")
        name = info.filename[: -len(".npy")]
        with archive.open(info) as member:
            header = read_array_header(member, f"{path}:{info.filename}")
        entry = _entry(name, header)
        if header.header_bytes + entry.nbytes > info.file_size:
            raise CorruptCheckpoint(f"{path}: {info.filename} is shorter than its array")
        offset, inflated = None, None
        if info.compress_type == zipfile.ZIP_STORED:
            offset = record_data_offset(file, info) + header.header_bytes  # type: ignore[arg-type]
        else:
            inflated = (info.filename, header.header_bytes)
        entries.append(entry)
        storages[name] = Storage(name, path, entry.dtype, entry.nbytes, offset, member=inflated)
        if entry.itemsize > 1:
            orders.add(header.byteorder)
    if len(orders) > 1:
        raise CorruptCheckpoint(f"{path}: its arrays mix byte orders, which paramctl does not model")
    byteorder = orders.pop() if orders else "little"
    return Checkpoint(path, NPZ, entries, storages, payload=None, byteorder=byteorder)
