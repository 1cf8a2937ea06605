"""Value statistics of tensors, streamed chunk by chunk with numpy.

Each tensor is read in chunks of at most :data:`paramctl.values.CHUNK_ELEMENTS` values, so
the working copies (an upcast of float16, a float64 copy of integers) stay small and a chunk
stays in the CPU cache while the few reductions run over it. Per chunk: numpy's minimum and
maximum reductions (whose NaN propagation doubles as the "all finite?" test), a pairwise
sum, one dot product of the deviations from the mean, and a count of zeros where the range
holds zero; the L2 norm follows from the mean and variance without another pass. Only a
chunk that holds NaN or Inf pays for counting them (that arithmetic is
:mod:`paramctl._accumulate`). Nothing here imports torch: a torch tensor given to
:func:`tensor_stats` is viewed as a numpy array.

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
- Tensors only torch can read: a sparse tensor is described by its stored values and its
  implicit zeros, a quantized one by its dequantized values; ``note`` says which.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, TensorEntry
from paramctl.inspect.listing import Listing

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    from paramctl._accumulate import Workspace
    from paramctl.torch_values import TorchValues
    from paramctl.values import ValueReader


Number = float | int | bool


@dataclass(frozen=True)
class TensorStats:
    """Statistics of one tensor's values (see the module docstring for the definitions).

    Every field may be ``None``: a report that measures only some (the mean and standard
    deviation before and after ``init``) leaves the others out.

    >>> TensorStats(2, 1.5, 0.5, 1.0, 2.0, 2.0, 2.2, 0.0, 0, 0).to_dict()["absmax"]
    2.0
    >>> TensorStats(mean=0.0, std=1.0).finite
    True
    """

    numel: int | None = None
    mean: float | None = None
    std: float | None = None
    min: Number | None = None
    max: Number | None = None
    absmax: Number | None = None
    norm: float | None = None
    zeros: float | None = None
    nan: int | None = None
    inf: int | None = None
    # What the statistics are of, when not the stored elements as such ("dequantized ...").
    note: str | None = None

    @property
    def finite(self) -> bool:
        """No NaN or Inf was counted."""
        return not self.nan and not self.inf

    @property
    def constant(self) -> bool:
        """Every value is the same finite number."""
        return self.finite and bool(self.numel) and self.min is not None and self.min == self.max

    def to_dict(self) -> dict[str, Any]:
        """Every statistic but ``numel`` (``note`` only when there is one)."""
        skip = {"numel"} | ({"note"} if self.note is None else set())
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


def _stats(
    chunks: Iterable[NDArray[Any]],
    numel: int,
    *,
    implicit_zeros: int = 0,
    note: str | None = None,
    workspace: Workspace | None = None,
) -> TensorStats:
    from paramctl._accumulate import Accumulator, Workspace

    acc = Accumulator(numel, workspace or Workspace())
    for chunk in chunks:
        acc.add(chunk)
    acc.add_zeros(implicit_zeros)
    return acc.result(note)


def tensor_stats(
    values: NDArray[Any] | torch.Tensor, max_elements: int | None = None, workspace: Workspace | None = None
) -> TensorStats:
    """Statistics of a numpy array of numbers or of a torch tensor, computed chunk by chunk.

    >>> import numpy as np
    >>> s = tensor_stats(np.array([1.0, -3.0, float("nan"), 0.0], dtype=np.float32))
    >>> s.mean, s.min, s.absmax, s.nan, s.zeros
    (-0.6666666666666666, -3.0, 3.0, 1, 0.25)
    """
    from paramctl.values import CHUNK_ELEMENTS, flat_chunks

    loaded = _numbers(values)
    return _stats(
        flat_chunks(loaded.numbers, max_elements or CHUNK_ELEMENTS),
        loaded.numel,
        implicit_zeros=loaded.implicit_zeros,
        note=loaded.note,
        workspace=workspace,
    )


def _numbers(values: NDArray[Any] | torch.Tensor) -> TorchValues:
    import numpy as np

    from paramctl.torch_values import TorchValues, from_torch

    return TorchValues(values, values.size) if isinstance(values, np.ndarray) else from_torch(values)


def entry_stats(
    reader: ValueReader, entry: TensorEntry, *, workspace: Workspace | None = None
) -> TensorStats:
    """Statistics of one entry, streamed through ``reader``."""
    return _stats(
        reader.chunks(entry),
        entry.numel,
        implicit_zeros=reader.implicit_zeros(entry),
        note=reader.note(entry),
        workspace=workspace,
    )


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
    """Statistics of ``entries``, in their order, reading each file front to back.

    Entries that view the same values (tied weights) are computed once. Big contiguous
    tensors are computed two at a time where there are two cores (``pread`` and numpy's
    reductions release the GIL), each thread with its own reader. ``on_progress`` hears
    the number of bytes done after each tensor.
    """
    order = sorted(range(len(entries)), key=lambda i: _file_position(checkpoint, entries[i]))
    distinct: dict[tuple[Any, ...], TensorEntry] = {}
    for index in order:
        distinct.setdefault(identity(entries[index]), entries[index])
    done = _scan(checkpoint, list(distinct.values()), reader, on_progress)
    return [done[identity(entry)] for entry in entries]


# Contiguous tensors at least this big go to the second thread: below it, handing one over
# costs more than it saves.
_THREAD_BYTES = 1 << 20


def _scan(
    checkpoint: Checkpoint,
    jobs: list[TensorEntry],
    reader: ValueReader | None,
    on_progress: Callable[[int], None] | None,
) -> dict[tuple[Any, ...], TensorStats]:
    from concurrent.futures import Future, ThreadPoolExecutor

    workers = _Workers(checkpoint, reader)
    threaded = [e for e in jobs if reader is None and _threadable(checkpoint, e)]
    threads = min(2, os.cpu_count() or 1) if len(threaded) > 1 else 0
    done: dict[tuple[Any, ...], TensorStats] = {}

    def finish(entry: TensorEntry, stats: TensorStats) -> None:
        done[identity(entry)] = stats
        if on_progress:
            on_progress(entry.nbytes)

    try:
        with ThreadPoolExecutor(max(threads, 1)) as pool:
            pending: list[tuple[TensorEntry, Future[TensorStats]]] = []
            if threads > 1:
                pending = [(entry, pool.submit(workers.stats, entry)) for entry in threaded]
            try:
                chosen = {identity(entry) for entry, _ in pending}
                for entry in jobs:
                    if identity(entry) not in chosen:
                        finish(entry, workers.stats(entry))
                for entry, future in pending:
                    finish(entry, future.result())
            except BaseException:
                for _, future in pending:  # a failure or an interrupt: start nothing more
                    future.cancel()
                raise
    finally:
        workers.close()
    return done


def _threadable(checkpoint: Checkpoint, entry: TensorEntry) -> bool:
    """Read with pread into the thread's own buffers: no pages of a map to hold."""
    strided = len(entry.stride) == len(entry.shape)
    in_file = checkpoint.fallback_tensors is None
    return in_file and strided and entry.nbytes >= _THREAD_BYTES and entry.is_contiguous


class _Workers:
    """A reader and a workspace for each thread (their buffers serve one thread at a time);
    ``reader``, when given, is the calling thread's and stays open."""

    def __init__(self, checkpoint: Checkpoint, reader: ValueReader | None) -> None:
        import threading

        from paramctl._accumulate import Workspace

        self.checkpoint = checkpoint
        self.own: list[ValueReader] = []
        self.local = threading.local()
        if reader is not None:
            self.local.state = (reader, Workspace())

    def stats(self, entry: TensorEntry) -> TensorStats:
        from paramctl._accumulate import Workspace
        from paramctl.values import ValueReader

        state = getattr(self.local, "state", None)
        if state is None:
            state = self.local.state = (ValueReader(self.checkpoint), Workspace())
            self.own.append(state[0])
        return entry_stats(state[0], entry, workspace=state[1])

    def close(self) -> None:
        for reader in self.own:
            reader.close()


def _file_position(checkpoint: Checkpoint, entry: TensorEntry) -> tuple[str, int, int]:
    storage = checkpoint.storages.get(entry.storage_key)
    if storage is None or storage.offset is None:
        return ("", 0, entry.storage_offset)
    return (str(storage.file), storage.offset, entry.storage_offset)


@dataclass(frozen=True)
class Histogram:
    """Counts of finite values in equal-width bins from ``edges[i]`` to ``edges[i + 1]``.

    The last bin includes its upper edge. A constant tensor gets one bin of zero width.
    """

    edges: list[float]
    counts: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges, "counts": self.counts}


def histogram(values: NDArray[Any] | torch.Tensor, stats: TensorStats, bins: int = 20) -> Histogram:
    """Bin the finite values of ``values`` between their minimum and maximum, chunk by chunk.

    Integer and bool tensors whose range is narrower than ``bins`` get one bin per value.

    >>> import numpy as np
    >>> values = np.array([0.0, 0.25, 1.0])
    >>> histogram(values, tensor_stats(values), bins=2).counts
    [2, 1]
    """
    import numpy as np

    from paramctl.values import flat_chunks

    if bins < 1:
        raise ValueError("bins must be at least 1")
    low, high = stats.min, stats.max
    if stats.mean is None or low is None or high is None:
        if stats.absmax is None:
            return Histogram([], [])
        low, high = 0.0, stats.absmax  # complex: bin the magnitudes
    low, high = float(low), float(high)
    if low == high:
        return Histogram([low, high], [(stats.numel or 0) - (stats.nan or 0) - (stats.inf or 0)])
    loaded = _numbers(values)
    if loaded.numbers.dtype.kind in "biu" and high - low + 1 <= bins:
        bins = int(high - low) + 1
        low, high = low - 0.5, high + 0.5
    counts = np.zeros(bins, np.int64)
    for chunk in flat_chunks(loaded.numbers):
        wide = np.abs(chunk) if chunk.dtype.kind == "c" else chunk
        wide = wide.astype(np.float64)
        if stats.nan or stats.inf:
            wide = wide[np.isfinite(wide)]
        counts += np.histogram(wide, bins=bins, range=(low, high))[0]
    if loaded.implicit_zeros:
        counts += np.histogram(np.zeros(1), bins=bins, range=(low, high))[0] * loaded.implicit_zeros
    step = (high - low) / bins
    edges = [low + i * step for i in range(bins)] + [high]
    return Histogram(edges, [int(c) for c in counts])


def with_stats(
    listing: Listing, checkpoint: Checkpoint, *, on_progress: Callable[[int], None] | None = None
) -> Listing:
    """``listing`` with each row's statistics filled in (``paramctl list --stats``)."""
    entries = [row.entry for row in listing.rows]
    all_stats = checkpoint_stats(checkpoint, entries, on_progress=on_progress)
    rows = [replace(row, stats=stats.to_dict()) for row, stats in zip(listing.rows, all_stats, strict=True)]
    return replace(listing, rows=rows)
