"""Value statistics of tensors, read one tensor at a time from the mapped file.

Each tensor is walked in chunks of at most :data:`CHUNK_ELEMENTS` values, so the working
copies (an upcast of float16, a float64 copy of integers) stay small and a chunk stays in
the CPU cache while the few reductions run over it. Per chunk: ``torch.aminmax`` (whose
NaN propagation doubles as the "all finite?" test), ``mean``, one ``dot`` of the
deviations from the mean, and ``count_nonzero``; the L2 norm follows from the mean and
variance without another pass. Only a chunk that holds NaN or Inf pays for counting them.

What the numbers mean:

- ``mean``, ``std``, ``min``, ``max``, ``absmax`` (max |x|) and ``norm`` (L2) are taken
  over the finite values only; ``nan`` and ``inf`` count the others.
- ``std`` is torch's default, the sample standard deviation (``correction=1``); it is
  ``None`` with fewer than two finite values, like every statistic of an empty tensor.
- ``zeros`` is the fraction of all values that equal zero.
- float16, bfloat16 and float8 values are computed in float32, float64 in float64.
- Integers: ``min``, ``max``, ``absmax`` and the counts are exact and ``mean`` is the exact
  sum divided by the count; ``std`` and ``norm`` are computed in float64. bool counts:
  ``mean`` is the fraction of ``True``.
- Complex values are described by their magnitudes: ``absmax``, ``norm``, ``zeros`` and the
  counts; ``mean``, ``std``, ``min`` and ``max`` are ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.inspect.listing import Listing

if TYPE_CHECKING:
    import torch

    from paramctl.values import ValueReader

# One chunk: 4 MiB of float32, small enough to stay in cache across the reductions.
CHUNK_ELEMENTS = 1 << 20
# Integer chunks are summed in int64; this bound keeps a chunk's sum from overflowing.
_INT64_LIMIT = 1 << 63

Number = float | int | bool


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one tensor's values (see the module docstring for the definitions).

    >>> TensorStats(2, 1.5, 0.5, 1.0, 2.0, 2.0, 2.2, 0.0, 0, 0).to_dict()["absmax"]
    2.0
    """

    numel: int
    mean: float | None
    std: float | None
    min: Number | None
    max: Number | None
    absmax: Number | None
    norm: float | None
    zeros: float | None
    nan: int
    inf: int

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0

    @property
    def constant(self) -> bool:
        """Every value is the same finite number."""
        return self.finite and self.numel > 0 and self.min is not None and self.min == self.max

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "numel"}


STAT_KEYS = tuple(f.name for f in fields(TensorStats) if f.name != "numel")


class _Moments:
    """Running count, mean and sum of squared deviations, merged chunk by chunk.

    Hand-written because torch reduces one tensor at a time and offers no way to combine
    partial results; the merge is Chan et al.'s parallel update, in Python floats (double).
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, count: int, mean: float, m2: float) -> None:
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total


class _Accumulator:
    """Everything the chunks of one tensor add up to."""

    def __init__(self, numel: int, kind: str) -> None:
        self.numel = numel
        self.kind = kind  # "float", "int", "bool" or "complex"
        self.moments = _Moments()
        self.low: Number | None = None
        self.high: Number | None = None
        self.zeros = 0
        self.nan = 0
        self.inf = 0
        self.int_sum: int | None = 0 if kind in ("int", "bool") else None

    def extremes(self, low: Number, high: Number) -> None:
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def result(self) -> TensorStats:
        count = self.moments.count
        if count == 0:
            zeros = self._zero_fraction()
            return TensorStats(self.numel, None, None, None, None, None, None, zeros, self.nan, self.inf)
        mean = self.moments.mean
        if self.int_sum is not None:
            mean = self.int_sum / count  # exact sum over an exact count, rounded once
        std = math.sqrt(max(self.moments.m2, 0.0) / (count - 1)) if count > 1 else None
        # sum of squares = m2 + n * mean^2: both terms non-negative, so nothing cancels.
        norm = math.sqrt(max(self.moments.m2, 0.0) + count * self.moments.mean**2)
        assert self.low is not None and self.high is not None
        absmax: Number = max(abs(self.low), abs(self.high))
        low, high = self.low, self.high
        if self.kind == "int":
            low, high, absmax = int(low), int(high), int(absmax)
        if self.kind == "bool":
            low, high, absmax = bool(low), bool(high), int(absmax)
        if self.kind == "complex":
            # The chunks held magnitudes: their maximum is max |z|; the rest has no order.
            return TensorStats(
                self.numel, None, None, None, None, high, norm, self._zero_fraction(), self.nan, self.inf
            )
        return TensorStats(
            self.numel, mean, std, low, high, absmax, norm, self._zero_fraction(), self.nan, self.inf
        )

    def _zero_fraction(self) -> float | None:
        return self.zeros / self.numel if self.numel else None


def _kind(dtype: torch.dtype) -> str:
    import torch

    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "float"
    return "int"


def flat_chunks(tensor: torch.Tensor, max_elements: int = CHUNK_ELEMENTS) -> Iterator[torch.Tensor]:
    """The values of ``tensor`` as 1-D pieces of at most ``max_elements`` (about), in order.

    A contiguous tensor is sliced without copying; a strided one is cut along its first
    dimension and each piece flattened, so a copy never exceeds one piece.
    """
    if tensor.numel() == 0:
        return
    if tensor.dim() == 0:
        yield tensor.reshape(1)
    elif tensor.is_contiguous():
        flat = tensor.view(-1)
        for start in range(0, flat.numel(), max_elements):
            yield flat[start : start + max_elements]
    else:
        rows = tensor.shape[0]
        per_row = tensor.numel() // rows
        if per_row > max_elements:
            for row in range(rows):
                yield from flat_chunks(tensor[row], max_elements)
            return
        step = max(1, max_elements // per_row)
        for start in range(0, rows, step):
            yield tensor[start : start + step].reshape(-1)


def _working_chunk(chunk: torch.Tensor, kind: str) -> torch.Tensor:
    """The chunk in a dtype whose reductions torch implements exactly enough."""
    import torch

    if kind == "complex":
        return chunk.abs()
    if kind == "bool":
        return chunk.view(torch.uint8)
    if kind == "float":
        return chunk if chunk.dtype in (torch.float32, torch.float64) else chunk.to(torch.float32)
    if chunk.dtype in (torch.uint16, torch.uint32):
        return chunk.to(torch.int64)
    if chunk.dtype == torch.uint64:
        # torch has few kernels for uint64; float64 is exact below 2**53.
        return chunk.to(torch.float64)
    return chunk


class Workspace:
    """Scratch buffers reused from chunk to chunk and tensor to tensor.

    A fresh 4 MiB allocation per chunk would cost page faults on every one; one buffer per
    dtype, kept for the whole scan, costs them once.
    """

    def __init__(self) -> None:
        self._buffers: dict[torch.dtype, torch.Tensor] = {}

    def like(self, values: torch.Tensor) -> torch.Tensor:
        import torch

        buffer = self._buffers.get(values.dtype)
        if buffer is None or buffer.numel() < values.numel():
            buffer = torch.empty(max(values.numel(), CHUNK_ELEMENTS), dtype=values.dtype)
            self._buffers[values.dtype] = buffer
        return buffer[: values.numel()]


def _squared_deviations(values: torch.Tensor, mean: float, workspace: Workspace) -> float:
    """Sum of (x - mean)^2 over a 1-D chunk.

    Subtracting first and then one ``dot`` is a fraction of the cost of ``torch.var`` (which
    converts every value to double) and, as the mean is removed before squaring, loses no
    precision to cancellation: the relative error stays near 1e-6 for float32 chunks.
    """
    import torch

    if values.numel() < 2:
        return 0.0
    deviations = workspace.like(values)
    torch.sub(values, mean, out=deviations)
    return float(torch.dot(deviations, deviations).item())


def _add_float_chunk(acc: _Accumulator, chunk: torch.Tensor, workspace: Workspace) -> None:
    import torch

    low_t, high_t = torch.aminmax(chunk)
    low, high = low_t.item(), high_t.item()
    finite = chunk
    if not (math.isfinite(low) and math.isfinite(high)):
        # NaN propagates through aminmax and Inf is an extreme: only now count them.
        nan = int(torch.isnan(chunk).sum())
        inf = int(torch.isinf(chunk).sum())
        acc.nan += nan
        acc.inf += inf
        finite = chunk[torch.isfinite(chunk)]
        if finite.numel():
            low_t, high_t = torch.aminmax(finite)
            low, high = low_t.item(), high_t.item()
    acc.zeros += chunk.numel() - int(torch.count_nonzero(chunk))
    count = finite.numel()
    if count == 0:
        return
    acc.extremes(low, high)
    mean = finite.mean().item()
    acc.moments.add(count, mean, _squared_deviations(finite, mean, workspace))


def _add_int_chunk(acc: _Accumulator, chunk: torch.Tensor, workspace: Workspace) -> None:
    import torch

    low_t, high_t = torch.aminmax(chunk)
    low, high = int(low_t.item()), int(high_t.item())
    acc.extremes(low, high)
    count = chunk.numel()
    acc.zeros += count - int(torch.count_nonzero(chunk))
    as_float = chunk.to(torch.float64)
    if acc.int_sum is not None:
        if max(abs(low), abs(high)) * count < _INT64_LIMIT:
            acc.int_sum += int(chunk.sum(dtype=torch.int64).item())
        else:
            acc.int_sum = None  # would overflow int64: fall back to the float64 mean
    mean = as_float.mean().item()
    acc.moments.add(count, mean, _squared_deviations(as_float, mean, workspace))


def tensor_stats(
    tensor: torch.Tensor, max_elements: int = CHUNK_ELEMENTS, workspace: Workspace | None = None
) -> TensorStats:
    """Statistics of one tensor, computed chunk by chunk.

    >>> import torch
    >>> s = tensor_stats(torch.tensor([1.0, -3.0, float("nan"), 0.0]))
    >>> s.mean, s.min, s.absmax, s.nan, s.zeros
    (-0.6666666865348816, -3.0, 3.0, 1, 0.25)
    """
    kind = _kind(tensor.dtype)
    acc = _Accumulator(tensor.numel(), kind)
    workspace = workspace or Workspace()
    for raw in flat_chunks(tensor, max_elements):
        chunk = _working_chunk(raw, kind)
        if chunk.dtype.is_floating_point:
            if kind == "int":
                acc.int_sum = None  # uint64 goes through float64: no exact sum
            _add_float_chunk(acc, chunk, workspace)
        else:
            _add_int_chunk(acc, chunk, workspace)
    return acc.result()


def work_bytes(entries: Sequence[TensorEntry]) -> int:
    """Bytes :func:`checkpoint_stats` reads for ``entries`` (tied tensors once)."""
    return sum({identity(entry): entry.nbytes for entry in entries}.values())


def identity(entry: TensorEntry) -> tuple[Any, ...]:
    """What makes two entries the same values: same bytes, same view of them."""
    return (entry.storage_key, entry.storage_offset, entry.shape, entry.stride, entry.dtype)


def checkpoint_stats(
    checkpoint: Checkpoint,
    entries: Sequence[TensorEntry],
    *,
    on_progress: Callable[[int], None] | None = None,
    reader: ValueReader | None = None,
) -> list[TensorStats]:
    """Statistics of ``entries``, in their order, reading the file once front to back.

    Entries that view the same values (tied weights) are computed once. Pages are let go
    once their tensors are done, and big storages are prefetched one ahead.
    ``on_progress`` hears the number of bytes done after each tensor.
    """
    from paramctl.values import ValueReader

    values = reader or ValueReader(checkpoint)
    pages = _Pages(values, checkpoint)
    order = sorted(range(len(entries)), key=lambda i: _file_position(checkpoint, entries[i]))
    done: dict[tuple[Any, ...], TensorStats] = {}
    workspace = Workspace()
    results: list[TensorStats | None] = [None] * len(entries)
    try:
        for position, index in enumerate(order):
            entry = entries[index]
            key = identity(entry)
            upcoming = entries[order[position + 1]] if position + 1 < len(order) else None
            if key not in done:
                if upcoming is not None and upcoming.storage_key != entry.storage_key:
                    pages.prefetch(upcoming)
                done[key] = tensor_stats(values.tensor(entry), workspace=workspace)
                if on_progress:
                    on_progress(entry.nbytes)
            if upcoming is None or upcoming.storage_key != entry.storage_key:
                pages.done(entry)
            results[index] = done[key]
    finally:
        pages.flush()
        if reader is None:
            values.close()
    return [stats for stats in results if stats is not None]


def _file_position(checkpoint: Checkpoint, entry: TensorEntry) -> tuple[int, int]:
    storage = checkpoint.storages.get(entry.storage_key)
    offset = storage.offset if storage is not None and storage.offset is not None else 0
    return (offset, entry.storage_offset)


class _Pages:
    """Which pages of the map to read ahead and which to let go, in few system calls.

    Storages are visited in file order, so the ones done form a run of the file; the run
    is handed back once it reaches :attr:`BATCH` bytes (and at the end), which keeps
    resident memory near one tensor plus a batch without a call per small tensor.
    """

    BATCH = 4 << 20
    PREFETCH_MIN = 1 << 20

    def __init__(self, values: ValueReader, checkpoint: Checkpoint) -> None:
        self.values = values
        self.checkpoint = checkpoint
        self.active = checkpoint.fallback_tensors is None
        self.start: int | None = None
        self.end = 0

    def prefetch(self, entry: TensorEntry) -> None:
        storage = self.checkpoint.storages.get(entry.storage_key)
        if self.active and storage is not None and storage.nbytes >= self.PREFETCH_MIN:
            self.values.prefetch(storage)

    def done(self, entry: TensorEntry) -> None:
        storage = self.checkpoint.storages.get(entry.storage_key)
        if not self.active or storage is None or storage.offset is None:
            return
        if self.start is None:
            self.start = storage.offset
        self.end = max(self.end, storage.offset + storage.nbytes)
        if self.end - self.start >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.start is not None:
            self.values.release(Storage("", self.checkpoint.path, "uint8", self.end - self.start, self.start))
            self.start = None


@dataclass(frozen=True)
class Histogram:
    """Counts of finite values in equal-width bins from ``edges[i]`` to ``edges[i + 1]``.

    The last bin includes its upper edge. A constant tensor gets one bin of zero width.
    """

    edges: list[float]
    counts: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges, "counts": self.counts}


def histogram(tensor: torch.Tensor, stats: TensorStats, bins: int = 20) -> Histogram:
    """Bin the finite values of ``tensor`` between its minimum and maximum, chunk by chunk.

    Integer and bool tensors whose range is narrower than ``bins`` get one bin per value.
    """
    import torch

    if bins < 1:
        raise ValueError("bins must be at least 1")
    low, high = stats.min, stats.max
    if stats.mean is None or low is None or high is None:
        if stats.absmax is None:
            return Histogram([], [])
        low, high = 0.0, stats.absmax  # complex: bin the magnitudes
    low, high = float(low), float(high)
    kind = _kind(tensor.dtype)
    if low == high:
        count = stats.numel - stats.nan - stats.inf
        return Histogram([low, high], [count])
    if kind in ("int", "bool") and high - low + 1 <= bins:
        bins = int(high - low) + 1
        low, high = low - 0.5, high + 0.5
    counts = torch.zeros(bins, dtype=torch.float64)
    for raw in flat_chunks(tensor):
        chunk = _working_chunk(raw, kind).to(torch.float64)
        if stats.nan or stats.inf:
            chunk = chunk[torch.isfinite(chunk)]
        counts += torch.histc(chunk, bins=bins, min=low, max=high)
    step = (high - low) / bins
    edges = [low + i * step for i in range(bins)] + [high]
    return Histogram(edges, [int(c) for c in counts.tolist()])


def with_stats(
    listing: Listing, checkpoint: Checkpoint, *, on_progress: Callable[[int], None] | None = None
) -> Listing:
    """``listing`` with each row's statistics filled in (``paramctl list --stats``)."""
    entries = [row.entry for row in listing.rows]
    all_stats = checkpoint_stats(checkpoint, entries, on_progress=on_progress)
    rows = [replace(row, stats=stats.to_dict()) for row, stats in zip(listing.rows, all_stats, strict=True)]
    return replace(listing, rows=rows)
