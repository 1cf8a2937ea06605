"""Comparing the values of two tensors, streamed chunk by chunk from their files.

Two tensors of one dtype are read once, as bytes, chunk by chunk: chunks whose bytes are
the same need no arithmetic, the others are decoded from those bytes and compared as
numbers (tensors of two dtypes are read as numbers). Numbers are compared as
:func:`numpy.isclose` does (``|a - b| <= atol + rtol * |b|``; a NaN equals a NaN at the
same place), giving how many elements differ, the largest ``|a - b|`` and the relative L2
distance ``||a - b|| / ||b||``. Memory stays at a few chunks whatever the tensors' sizes.

>>> import numpy as np
>>> a, b = np.array([1.0, 2.0, np.nan, 4.0]), np.array([1.0, 2.5, np.nan, 4.0])
>>> totals = Totals()
>>> totals.add(a, b, Tolerance())
>>> totals.result(4)
ValueDiff(numel=4, differing=1, max_abs=0.5, rel_l2=0.10369516947304253, same_bytes=False)
>>> totals = Totals()
>>> totals.add(a, b, Tolerance(atol=0.5))
>>> totals.result(4).differing
0
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paramctl.dtypes import DTYPES
from paramctl.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from paramctl.checkpoint import TensorEntry
    from paramctl.values import ValueReader

    Array = NDArray[Any]


@dataclass(frozen=True)
class Tolerance:
    """When two numbers count as equal: ``|a - b| <= atol + rtol * |b|`` (0 and 0: exactly)."""

    atol: float = 0.0
    rtol: float = 0.0

    def __post_init__(self) -> None:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise UsageError(f"--atol and --rtol take numbers of 0 or more, not {self.atol}, {self.rtol}")


@dataclass(frozen=True)
class ValueDiff:
    """How two tensors of one shape differ in value (``same_bytes``: found equal by their bytes)."""

    numel: int
    differing: int
    max_abs: float
    rel_l2: float
    same_bytes: bool = False

    @property
    def equal(self) -> bool:
        return self.differing == 0


class Totals:
    """The running sums of a comparison, fed one aligned pair of chunks at a time."""

    def __init__(self) -> None:
        self.differing = 0
        self.max_abs = 0.0
        self.diff_squares = 0.0
        self.b_squares = 0.0
        self._scratch: dict[str, Array] = {}

    def add(self, a: Array, b: Array, tolerance: Tolerance) -> None:
        """Count one pair of equally long 1-D chunks."""
        import numpy as np

        work = _work_dtype(a.dtype, b.dtype)
        a, b = a.astype(work, copy=False), b.astype(work, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):
            if work.kind == "c":  # the gap of complex numbers is real
                gap = np.abs(a - b)
            else:
                gap = self._buffer(work, a.size)
                np.subtract(a, b, out=gap)
                np.abs(gap, out=gap)
            largest = float(gap.max()) if gap.size else 0.0
            if math.isnan(largest):
                # Equal infinities differ by NaN, and a NaN equals a NaN in the same place.
                same = (a == b) | (np.isnan(a) & np.isnan(b))
                gap[same] = 0
                b = np.where(same & np.isnan(b), 0, b)
                largest = float(gap.max())
            if tolerance.atol or tolerance.rtol:
                # rtol times an infinite b must not make an infinite gap close (isclose's rule).
                bound = tolerance.atol + tolerance.rtol * np.abs(b) if tolerance.rtol else tolerance.atol
                close = (gap <= bound) & (gap != np.inf)
                self.differing += int(close.size - np.count_nonzero(close))
            else:
                self.differing += int(np.count_nonzero(gap))  # a NaN left counts: it is not 0
            self._largest(largest)
            self.diff_squares += _squares(gap)
            self.b_squares += _squares(b)

    def same(self, b: Array) -> None:
        """Count one pair of chunks with equal bytes: only ``b``'s norm grows."""
        import numpy as np

        with np.errstate(invalid="ignore", over="ignore"):
            self.b_squares += _squares(b.astype(_work_dtype(b.dtype, b.dtype), copy=False))

    def _buffer(self, work: np.dtype[Any], size: int) -> Array:
        import numpy as np

        held = self._scratch.get(work.str)
        if held is None or held.size < size:
            held = self._scratch[work.str] = np.empty(size, work)
        return held[:size]

    def _largest(self, gap: float) -> None:
        # A NaN against a number makes the largest gap NaN, and it stays so.
        if not math.isnan(self.max_abs) and (math.isnan(gap) or gap > self.max_abs):
            self.max_abs = gap

    def result(self, numel: int, *, same_bytes: bool = False) -> ValueDiff:
        if same_bytes:
            return ValueDiff(numel, 0, 0.0, 0.0, same_bytes=True)
        norm = math.sqrt(self.b_squares)
        distance = math.sqrt(self.diff_squares)
        relative = distance / norm if norm else (0.0 if distance == 0 else math.inf)
        return ValueDiff(numel, self.differing, self.max_abs, relative)


def _work_dtype(first: np.dtype[Any], second: np.dtype[Any]) -> np.dtype[Any]:
    """The type the arithmetic runs in: float32 for float32 and narrower floats (so the
    common case stays at 4 bytes an element), complex for complex, float64 otherwise."""
    import numpy as np

    kinds = {first.kind, second.kind}
    if "c" in kinds:
        return np.dtype(np.complex128)
    if kinds == {"f"} and max(first.itemsize, second.itemsize) <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _squares(values: Array) -> float:
    """The sum of squares of one chunk, by BLAS (a chunk's float32 sum is exact to about
    1e-6, plenty for a relative distance; chunks add up in float64)."""
    import numpy as np

    return float(np.vdot(values, values).real)


def paired(first: Iterator[Array], second: Iterator[Array]) -> Iterator[tuple[Array, Array]]:
    """Two streams of 1-D chunks of one length in all, as pairs of equally long pieces.

    Each stream's chunk is used up before the next is asked for (chunks may share a buffer).

    >>> import numpy as np
    >>> pairs = paired(iter([np.arange(3), np.arange(3, 5)]), iter([np.arange(2), np.arange(2, 5)]))
    >>> [(a.tolist(), b.tolist()) for a, b in pairs]
    [([0, 1], [0, 1]), ([2], [2]), ([3, 4], [3, 4])]
    """
    a: Array | None = None
    b: Array | None = None
    while True:
        if a is None or not a.size:
            a = next(first, None)
        if b is None or not b.size:
            b = next(second, None)
        if a is None or b is None:
            return
        size = min(a.size, b.size)
        if size:
            yield a[:size], b[:size]
        a, b = a[size:], b[size:]


def byte_comparable(reader_a: ValueReader, a: TensorEntry, reader_b: ValueReader, b: TensorEntry) -> bool:
    """Whether equal bytes mean equal values: one dtype numpy reads, one shape, one byte order."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and DTYPES[a.dtype].array_code is not None
        and not DTYPES[a.dtype].is_block_quantized
        and reader_a.checkpoint.byteorder == reader_b.checkpoint.byteorder
        and reader_a.checkpoint.fallback_tensors is None
        and reader_b.checkpoint.fallback_tensors is None
    )


def compare_values(
    reader_a: ValueReader, a: TensorEntry, reader_b: ValueReader, b: TensorEntry, tolerance: Tolerance
) -> ValueDiff:
    """How tensors ``a`` and ``b`` (one shape) differ, read chunk by chunk, once.

    Tensors of one dtype are read as bytes: a pair of chunks with equal bytes needs no
    arithmetic (only B's norm grows), the others are decoded from the same bytes.
    """
    totals = Totals()
    if not byte_comparable(reader_a, a, reader_b, b):
        for piece_a, piece_b in paired(reader_a.chunks(a), reader_b.chunks(b)):
            totals.add(piece_a, piece_b, tolerance)
        return totals.result(a.numel)
    from paramctl.values import decode, stored_dtype

    stored = stored_dtype(a.dtype, reader_a.checkpoint.byteorder)
    identical = True
    for raw_a, raw_b in paired(_bytes(reader_a, a), _bytes(reader_b, b)):
        numbers_b = decode(raw_b.view(stored), b.dtype)
        if _equal_bytes(raw_a, raw_b):
            totals.same(numbers_b)
        else:
            identical = False
            totals.add(decode(raw_a.view(stored), a.dtype), numbers_b, tolerance)
    return totals.result(a.numel, same_bytes=identical)


def _equal_bytes(a: Array, b: Array) -> bool:
    # Compared as 8-byte words: ten times faster than comparing bytes objects.
    import numpy as np

    whole = a.size // 8 * 8
    return bool(
        np.array_equal(a[:whole].view(np.uint64), b[:whole].view(np.uint64))
        and np.array_equal(a[whole:], b[whole:])
    )


def _bytes(reader: ValueReader, entry: TensorEntry) -> Iterator[Array]:
    import numpy as np

    # The chunk size of ValueReader.chunks: one buffer per reader serves both.
    from paramctl.values import CHUNK_ELEMENTS

    for chunk in reader.raw_chunks(entry, CHUNK_ELEMENTS * entry.itemsize):
        yield np.frombuffer(chunk, np.uint8)
