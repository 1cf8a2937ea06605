"""One reader from a tensor entry to its values, numpy first.

A :class:`ValueReader` serves everything that reads values:

- :meth:`~ValueReader.chunks` streams an entry's values as 1-D numpy arrays, read with
  ``pread`` into one reused buffer: nothing of the file is mapped, so resident memory stays
  at a chunk or two however large the file, and no page fault is paid per page;
- :meth:`~ValueReader.array` gives them in the entry's shape, as a read-only view of a
  memory map where numpy has the dtype, so indexing it reads only the pages indexed;
- :meth:`~ValueReader.raw_chunks` streams an entry's bytes in element order (for digests);
- :meth:`~ValueReader.tensor` gives a torch tensor, for the code that needs torch's math.

Values come as *numbers*, what numpy computes with: bfloat16 and the float8 types become
float32 (by a shift and a 256-entry table), big-endian data is swapped to native order.
Checkpoints only torch could read (``checkpoint.fallback_tensors``) are handled here and
nowhere else: a quantized tensor's numbers are its dequantized values, a sparse tensor's
are the values it stores (:meth:`~ValueReader.implicit_zeros` counts the rest), and
:meth:`~ValueReader.note` says so.

>>> import torch, tempfile, os
>>> from paramctl import read_checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.arange(6.0).reshape(2, 3)}, path)
>>> ckpt = read_checkpoint(path)
>>> with ValueReader(ckpt) as values:
...     values.array(ckpt.entry("w"))[1], [c.tolist() for c in values.chunks(ckpt.entry("w"), 4)]
(array([3., 4., 5.], dtype=float32), [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]])
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paramctl import quantized
from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, join_path
from paramctl.chunked import split_array, split_chunks, split_raw_chunks, split_tensor
from paramctl.dtypes import DTYPES, FLOAT8, float8_values
from paramctl.errors import CorruptCheckpoint, ParamctlError, UsageError
from paramctl.formats import _source
from paramctl.formats._io import CHUNK, read_at
from paramctl.formats._limits import check_readable
from paramctl.torch_values import TorchValues, from_torch, torch_dtype

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    Array = NDArray[Any]

# One chunk: 4 MiB of float32, small enough to stay in cache across the reductions.
CHUNK_ELEMENTS = 1 << 20


def stored_dtype(name: str, byteorder: str = "little") -> np.dtype[Any]:
    """numpy's dtype for one stored element of torch dtype ``name`` (bfloat16 and float8 as
    their bits), in the file's byte order.

    >>> stored_dtype("bfloat16").str, stored_dtype("float32", "big").str
    ('<u2', '>f4')
    """
    code = DTYPES[name].array_code
    if code is None:
        raise CorruptCheckpoint(f"{name} values can only be read through torch")
    return np.dtype(code).newbyteorder("<" if byteorder == "little" else ">")


def decode(raw: Array, dtype: str, out: Array | None = None) -> Array:
    """``raw`` stored elements of torch dtype ``dtype`` as numbers numpy computes with.

    Types numpy has come back as they are (native byte order, no copy where already so);
    bfloat16 and float8 become float32, written to ``out`` (a float32 array of ``raw``'s
    shape) when given.

    >>> decode(np.array([0x3F80, 0xC040], dtype=np.uint16), "bfloat16")
    array([ 1., -3.], dtype=float32)
    """
    if not raw.dtype.isnative:
        raw = raw.astype(raw.dtype.newbyteorder("="))
    if dtype == "bfloat16":
        # bfloat16 is the upper half of a float32: shifting its bits up is the conversion.
        bits = np.empty(raw.shape, np.uint32) if out is None else out.view(np.uint32)
        return np.left_shift(raw, np.uint32(16), out=bits, dtype=np.uint32).view(np.float32)
    if dtype in FLOAT8:
        return np.take(_float8_table(dtype), raw, out=out)
    return raw


@cache
def _float8_table(name: str) -> Array:
    return np.array(float8_values(name), dtype=np.float32)


def flat_chunks(values: Array, max_elements: int = CHUNK_ELEMENTS) -> Iterator[Array]:
    """The elements of ``values`` as 1-D pieces of at most ``max_elements`` (about), in order.

    A contiguous array is sliced without copying; a strided one is cut along its first
    dimension and each piece flattened, so a copy never exceeds one piece.

    >>> [piece.tolist() for piece in flat_chunks(np.arange(6).reshape(2, 3).T, 2)]
    [[0, 3], [1, 4], [2, 5]]
    """
    if values.size == 0:
        return
    if values.ndim == 0 or values.flags.c_contiguous:
        flat = values.reshape(-1)
        for start in range(0, flat.size, max_elements):
            yield flat[start : start + max_elements]
        return
    rows = values.shape[0]
    per_row = values.size // rows
    if per_row > max_elements:
        for row in range(rows):
            yield from flat_chunks(values[row], max_elements)
        return
    step = max(1, max_elements // per_row)
    for start in range(0, rows, step):
        yield values[start : start + step].reshape(-1)


class ValueReader:
    """Reads the values of one checkpoint's entries, one entry at a time, from its files."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self._files: dict[Path, int] = {}
        self._maps: dict[Path, mmap.mmap] = {}
        self._buffers: dict[int, bytearray] = {}
        self._decoded = np.empty(0, np.float32)
        self._loaded: tuple[str, TorchValues] | None = None
        self._inflating: Storage | None = None

    def __enter__(self) -> ValueReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._maps.clear()  # arrays still viewing a map keep it alive until they go
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        self._loaded = None

    def fileno(self, path: Path) -> int:
        """A descriptor of one of the checkpoint's files, opened once."""
        if path not in self._files:
            self._files[path] = _source.open_descriptor(path)
        return self._files[path]

    # -- what every entry is ------------------------------------------------------------

    def _fallback(self, entry: TensorEntry, *, dense: bool = False) -> TorchValues | None:
        tensors = self.checkpoint.fallback_tensors
        if tensors is None:
            return None
        name = join_path(entry.path)
        if dense:
            return from_torch(tensors[name], dense=True)
        if self._loaded is None or self._loaded[0] != name:
            self._loaded = (name, from_torch(tensors[name]))
        return self._loaded[1]

    def _storage(self, entry: TensorEntry, error: type[ParamctlError] = CorruptCheckpoint) -> Storage:
        storage = self.checkpoint.storage_of(entry)
        if storage.member is not None and storage.inline is None:
            return self._inflated(storage)
        if storage.offset is None and storage.nbytes and storage.inline is None:
            raise error(f"{self.checkpoint.label}: storage {storage.key} is compressed; cannot read it")
        return storage

    def _inflated(self, storage: Storage) -> Storage:
        """A compressed member's storage with its bytes inflated (one at a time: memory stays
        at the largest tensor); exactly ``nbytes`` are read, however much the member claims."""
        if self._inflating is None or self._inflating.key != storage.key:
            import zipfile

            assert storage.member is not None
            name, start = storage.member
            with (
                _source.open_binary(storage.file) as file,
                zipfile.ZipFile(file) as archive,
                archive.open(name) as member,
            ):
                member.read(start)
                data = member.read(storage.nbytes)
            if len(data) != storage.nbytes:
                raise CorruptCheckpoint(
                    f"{self.checkpoint.label}: {name} inflates to fewer bytes than it holds"
                )
            self._inflating = dataclasses.replace(storage, inline=data)
        return self._inflating

    def _stored(self, entry: TensorEntry) -> np.dtype[Any]:
        return stored_dtype(entry.dtype, self.checkpoint.byteorder)

    def implicit_zeros(self, entry: TensorEntry) -> int:
        """How many of the entry's elements are zeros no piece holds (a sparse tensor's)."""
        fallback = self._fallback(entry)
        return fallback.implicit_zeros if fallback is not None else 0

    def note(self, entry: TensorEntry) -> str | None:
        """What the numbers are when not the stored elements (dequantized, sparse)."""
        fallback = self._fallback(entry)
        return fallback.note if fallback is not None else quantized.note(entry.dtype)

    # -- values -------------------------------------------------------------------------

    def chunks(self, entry: TensorEntry, max_elements: int = CHUNK_ELEMENTS) -> Iterator[Array]:
        """The entry's numbers as 1-D pieces of at most ``max_elements``, in element order;
        each valid until the next one is produced (they share one buffer)."""
        check_readable(self.checkpoint, entry)  # before anything is allocated for it
        if entry.chunks:  # a tensor split across storages
            yield from split_chunks(self, entry, max_elements)
            return
        fallback = self._fallback(entry)
        if fallback is not None:
            yield from flat_chunks(fallback.numbers, max_elements)
            return
        if DTYPES[entry.dtype].is_block_quantized:
            _source.fetch_entry(self._storage(entry), entry)
            yield from quantized.dequantized(self._storage(entry), entry, max_elements, self.fileno)
            return
        for raw in self._pieces(entry, max_elements):
            yield decode(raw, entry.dtype, self._decode_buffer(raw.size))

    def array(self, entry: TensorEntry, index: Any = None) -> Array:
        """The entry's numbers in its shape (or the ``index`` part of them, numpy's indexing).

        A read-only view of the mapped file where the stored elements are numpy's own
        (only the pages indexed are read); decoded types are a float32 copy of the part
        indexed. A sparse tensor is made dense.
        """
        check_readable(self.checkpoint, entry)  # before anything is allocated for it
        if entry.chunks:
            return split_array(self, entry, index)
        fallback = self._fallback(entry, dense=True)
        if fallback is not None:
            return np.asarray(fallback.numbers if index is None else fallback.numbers[index])
        if DTYPES[entry.dtype].is_block_quantized:
            _source.fetch_entry(self._storage(entry), entry)
            return quantized.array(self._storage(entry), entry, self.fileno, index)
        # An index reads a few pages: reading ahead around them would read what is not shown.
        advice = mmap.MADV_WILLNEED if index is None else mmap.MADV_RANDOM
        storage = self._storage(entry)
        view = self._view(entry, storage, advice, whole=index is None)
        part = view if index is None else view[index]
        if part is not view and storage.inline is None and storage.offset is not None:
            first = storage.offset + entry.storage_offset * view.itemsize
            _source.fetch_part(storage.file, first, view, part)  # of a remote file: only those rows
        return decode(np.asarray(part), entry.dtype)

    def raw_chunks(self, entry: TensorEntry, chunk_bytes: int = CHUNK) -> Iterator[memoryview]:
        """The entry's bytes in element order, as views of one reused buffer (each valid
        until the next). Entries read through torch give their numbers' bytes (a sparse
        tensor: its coordinates, then its values)."""
        check_readable(self.checkpoint, entry)  # before anything is allocated for it
        if entry.chunks:
            yield from split_raw_chunks(self, entry, chunk_bytes)
            return
        fallback = self._fallback(entry)
        if fallback is not None:
            for part in (fallback.indices, fallback.numbers):
                if part is not None:
                    yield from (np.ascontiguousarray(c).data.cast("B") for c in flat_chunks(part))
            return
        for raw in self._pieces(entry, max(1, chunk_bytes // entry.itemsize)):
            yield np.ascontiguousarray(raw).data.cast("B")

    def tensor(self, entry: TensorEntry, *, copy: bool = True) -> torch.Tensor:
        """The entry as a torch tensor with its dtype, shape and strides.

        With ``copy`` (the default) the tensor owns a copy of the bytes it views, so nothing
        of the file stays resident once it is dropped; without, it views a copy-on-write
        map of the file (writes to it stay private) that lives as long as the tensor.
        Entries read through torch are torch's own tensors.
        """
        import torch

        check_readable(self.checkpoint, entry)  # before anything is allocated for it
        tensors = self.checkpoint.fallback_tensors
        if tensors is not None:
            loaded: torch.Tensor = tensors[join_path(entry.path)]
            return loaded
        if entry.chunks:
            return split_tensor(self, entry)
        storage = self._storage(entry, UsageError)
        if storage.inline is not None or DTYPES[entry.dtype].is_block_quantized:
            return torch.from_numpy(np.array(self.array(entry)))
        start, end = entry.byte_span
        if end == start:
            raw = torch.empty(0, dtype=torch.uint8)
        elif not copy and self.checkpoint.byteorder == "little":
            assert storage.offset is not None
            mapped, offset = self._map(storage.file), storage.offset + start
            _source.fetch(storage.file, offset, offset + end - start)
            raw = torch.frombuffer(mapped, dtype=torch.uint8, count=end - start, offset=offset)
        else:
            block = bytearray(end - start)
            assert storage.offset is not None
            _source.fetch(storage.file, storage.offset + start, storage.offset + end)
            read_at(self.fileno(storage.file), memoryview(block), storage.offset + start)
            if self.checkpoint.byteorder != "little":
                np.frombuffer(block, self._stored(entry)).byteswap(inplace=True)
            raw = torch.frombuffer(block, dtype=torch.uint8)
        values = raw.view(torch_dtype(entry.dtype))
        return values.as_strided(entry.shape, entry.stride, entry.storage_offset - start // entry.itemsize)

    # -- the file -----------------------------------------------------------------------

    def _pieces(self, entry: TensorEntry, max_elements: int) -> Iterator[Array]:
        """The entry's stored elements as 1-D arrays in element order, each valid until the
        next: read with ``pread`` where they lie in order, else from the map."""
        storage = self._storage(entry)
        if entry.numel == 0:
            return
        stored = self._stored(entry)
        if entry.is_contiguous and storage.inline is None:  # inline bytes are viewed, not read
            for block in self._blocks(entry, storage, max_elements * stored.itemsize):
                yield np.frombuffer(block, stored)
            return
        view = self._view(entry, storage, mmap.MADV_WILLNEED)
        try:
            yield from flat_chunks(view, max_elements)
        finally:
            # Pages let go after use keep resident memory near one entry: the map is
            # copy-on-write and only read, so they come back from the file if needed.
            self._advise(storage, entry, mmap.MADV_DONTNEED)

    def _blocks(self, entry: TensorEntry, storage: Storage, chunk_bytes: int) -> Iterator[memoryview]:
        assert storage.offset is not None
        start = storage.offset + entry.byte_span[0]
        # read_chunks reads as much as the buffer holds: one buffer per chunk size, reused.
        buffer = self._buffers.get(chunk_bytes)
        if buffer is None:
            buffer = self._buffers[chunk_bytes] = bytearray(chunk_bytes)
        fd = self.fileno(storage.file)
        yield from _source.read_span(
            storage.file, fd, start, entry.nbytes, chunk_size=chunk_bytes, buffer=buffer
        )

    def _decode_buffer(self, size: int) -> Array:
        if self._decoded.size < size:
            self._decoded = np.empty(max(size, CHUNK_ELEMENTS), np.float32)
        return self._decoded[:size]

    def _map(self, path: Path) -> mmap.mmap:
        if path not in self._maps:
            self._maps[path] = mmap.mmap(self.fileno(path), 0, access=mmap.ACCESS_COPY)
        return self._maps[path]

    def _view(self, entry: TensorEntry, storage: Storage, advice: int, *, whole: bool = True) -> Array:
        """The entry's stored elements as an array viewing the mapped file (read-only), its
        pages advised with ``advice``; of a remote file, fetched first (but for a part indexed)."""
        stored = self._stored(entry)
        if entry.numel == 0:
            return np.empty(entry.shape, stored)
        assert storage.offset is not None or storage.inline is not None
        if whole:
            _source.fetch_entry(storage, entry)
        try:
            view = np.ndarray(
                entry.shape,
                stored,
                buffer=self._map(storage.file) if storage.inline is None else storage.inline,
                offset=(storage.offset or 0) + entry.storage_offset * stored.itemsize,
                strides=tuple(step * stored.itemsize for step in entry.stride),
            )
        except (TypeError, ValueError) as exc:
            message = f"{self.checkpoint.label}: the file is shorter than its storages say"
            raise CorruptCheckpoint(message) from exc
        view.flags.writeable = False
        self._advise(storage, entry, advice)
        return view

    def _advise(self, storage: Storage, entry: TensorEntry, advice: int) -> None:
        """Tell the kernel how an entry's mapped pages are used (``MADV_WILLNEED``: all,
        soon; ``MADV_RANDOM``: a few; ``MADV_DONTNEED``: done with them)."""
        mapped = self._maps.get(storage.file)
        if mapped is None or storage.offset is None:
            return
        start, end = entry.byte_span
        first = (storage.offset + start) // mmap.PAGESIZE * mmap.PAGESIZE
        last = min(storage.offset + end, len(mapped))
        if last > first:
            with contextlib.suppress(OSError, ValueError):
                mapped.madvise(advice, first, last - first)
