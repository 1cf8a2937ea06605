"""Filling values: a plan's new values, one tensor at a time, into a storage editor.

:func:`apply_plan` runs a :class:`~paramctl.change.plan.Plan` through a
:class:`~paramctl.formats._editor.StorageEditor` in file order, with one ``torch.Generator``
shared across the tensors. :func:`fill_` and :func:`edit_` are the two in-place steps it
applies to each tensor, and what live modules use too. :func:`draw_seed` and
:func:`generator_for` are the one way from a seed to random numbers.

With ``generator=torch.Generator().manual_seed(N)`` the values equal, byte for byte,
calling the same ``torch.nn.init`` functions with that generator on the selected tensors in
file order; low-precision floats are filled in float32 and cast back.

>>> import torch
>>> from paramctl.schemes.catalog import make_scheme
>>> values = torch.zeros(3, dtype=torch.bfloat16)
>>> edit_(fill_(values, make_scheme("constant", val=2.0), None), Edit(scale=3.0, add=1.0))
tensor([7., 7., 7.], dtype=torch.bfloat16)
>>> mean_std(values).mean
7.0
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeAlias

from paramctl.change.plan import Plan, PlannedTensor
from paramctl.change.vocabulary import Edit
from paramctl.errors import UsageError
from paramctl.schemes.catalog import InitScheme
from paramctl.storage import fills_span

if TYPE_CHECKING:
    import torch

    from paramctl.formats._editor import StorageEditor
    from paramctl.stats import TensorStats

# What draws a plan's random numbers: a generator, a seed to make one from, or nothing.
Randomness: TypeAlias = "torch.Generator | int | None"
_SEED_LIMIT = 2**64


def draw_seed(seed: int | None = None) -> int:
    """``seed`` checked, or a fresh random one (reported so that a run can be repeated).

    >>> draw_seed(7)
    7
    >>> 0 <= draw_seed() < 2**32
    True
    """
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**32)
    if not 0 <= seed < _SEED_LIMIT:
        raise UsageError(f"--seed {seed}: a seed is a whole number from 0 to 2**64-1")
    return seed


def generator_for(randomness: Randomness) -> torch.Generator | None:
    """The CPU generator ``randomness`` stands for: itself, one seeded with it, or ``None``.

    >>> generator_for(3).initial_seed(), generator_for(None)
    (3, None)
    """
    if not isinstance(randomness, int):
        return randomness
    import torch

    return torch.Generator().manual_seed(draw_seed(randomness))


@dataclass(frozen=True)
class ChangedTensor:
    """A tensor after :func:`apply_plan`: the plan for it and its values before and after."""

    planned: PlannedTensor
    before: TensorStats | None = None
    after: TensorStats | None = None

    @property
    def name(self) -> str:
        return self.planned.name

    def to_dict(self) -> dict[str, Any]:
        row = self.planned.to_dict()
        for label, stats in (("before", self.before), ("after", self.after)):
            row[f"mean_{label}"] = stats.mean if stats else None
            row[f"std_{label}"] = stats.std if stats else None
        return row


def mean_std(values: torch.Tensor) -> TensorStats:
    """Mean and (unbiased) standard deviation, in float32 or wider, as
    :class:`~paramctl.stats.TensorStats` whose other statistics are not measured (``None``);
    ``None`` too where undefined (an empty or complex tensor, the std of one value)."""
    import torch

    if values.numel() == 0 or values.is_complex():
        return unmeasured_stats(values.numel(), None, None)
    # These reductions are memory-bound: a second thread gains little, and where the other
    # core is busy, torch's thread pool waiting for it can cost a hundred times more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _dot_mean_std(values)
    finally:
        torch.set_num_threads(threads)


def _dot_mean_std(values: torch.Tensor) -> TensorStats:
    import torch

    wide = values if values.dtype in (torch.float32, torch.float64) else values.to(torch.float32)
    flat = wide.reshape(-1)
    return combine_mean_std(
        flat.numel(),
        float(flat.sum() / flat.numel()),
        float(torch.dot(flat, flat)),
        lambda mean: float(torch.dot(flat - mean, flat - mean)),
    )


def combine_mean_std(
    count: int, mean: float, squares: float, deviations: Callable[[float], float]
) -> TensorStats:
    """Mean and unbiased std of ``count`` numbers from their mean and sum of squares (one
    pass of BLAS dot products, several times faster than ``torch.std_mean`` on CPU);
    ``deviations(mean)``, the sum of squared deviations, takes over where subtracting
    squares would lose the digits.

    >>> stats = combine_mean_std(3, 2.0, 14.0, lambda mean: 2.0)
    >>> stats.mean, stats.std
    (2.0, 1.0)
    """
    if count == 1:
        return unmeasured_stats(count, mean, None)
    variance = (squares - count * mean * mean) / (count - 1)
    if not variance > 1e-3 * mean * mean:
        variance = deviations(mean) / (count - 1)
    std = math.sqrt(variance) if math.isfinite(variance) else None
    return unmeasured_stats(count, mean, std)


def unmeasured_stats(numel: int, mean: float | None, std: float | None) -> TensorStats:
    """:class:`~paramctl.stats.TensorStats` with only mean and std measured."""
    from paramctl.stats import TensorStats

    # Init reports only mean and std, the two it can afford per tensor; the rest are unknown.
    unmeasured: dict[str, Any] = {
        f.name: None for f in fields(TensorStats) if f.name not in ("numel", "mean", "std")
    }
    return TensorStats(numel=numel, mean=mean, std=std, **unmeasured)


def apply_plan(
    plan: Plan,
    editor: StorageEditor,
    *,
    generator: torch.Generator | None = None,
    stats: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> list[ChangedTensor]:
    """Write the plan's new values through ``editor``, one tensor at a time, in file order.

    One ``generator`` serves every random tensor in turn; a storage shared by several
    selected names is filled once. With ``stats``, mean/std before and after are measured.
    ``on_progress`` hears each tensor's bytes once it is written. A plan of constant
    fills only is written without torch (:mod:`paramctl.change.constants`).
    """
    from paramctl.change.constants import apply_constants, fills_without_torch

    if fills_without_torch(plan):
        return apply_constants(plan, editor, stats=stats, on_progress=on_progress)
    import torch

    from paramctl.formats._limits import check_readable
    from paramctl.torch_values import torch_dtype
    from paramctl.values import ValueReader

    copy = plan.change.copy
    reader = ValueReader(copy.checkpoint) if copy is not None else None
    changed = []
    # torch.nn.init.sparse_ (and many custom functions) also draw from torch's global
    # generator, which generator= does not reach: seed it alike, and restore it after.
    closing = contextlib.closing(reader) if reader is not None else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), closing:
        if generator is not None:
            torch.manual_seed(generator.initial_seed())
        for planned in plan.tensors:
            entry = planned.entry
            check_readable(plan.checkpoint, entry, writing=True)  # before anything is allocated for it
            start, end = entry.byte_span
            fills = planned.scheme is not None or planned.source is not None
            read = stats or not fills or not fills_span(entry)
            with editor.span(entry.storage_key, start, end, read=read) as raw:
                values = raw.view(torch_dtype(entry.dtype)).as_strided(
                    entry.shape, entry.stride, entry.storage_offset - start // entry.itemsize
                )
                before = mean_std(values) if stats else None
                if planned.scheme is not None:
                    fill_(values, planned.scheme, generator)
                elif planned.source is not None and reader is not None:
                    values.copy_(reader.tensor(planned.source))
                if planned.edit is not None:
                    edit_(values, planned.edit)
                after = mean_std(values) if stats else None
            changed.append(ChangedTensor(planned, before, after))
            if on_progress:
                on_progress(entry.nbytes)
    return changed


def fill_(values: torch.Tensor, scheme: InitScheme, generator: torch.Generator | None) -> torch.Tensor:
    """Fill ``values`` in place from ``scheme``, drawing from ``generator``; returns them.

    float16, bfloat16 and float8 are filled in float32 and cast back, so that they get the
    numbers a float32 tensor would, rounded.
    """
    import torch

    with torch.no_grad():
        if (
            values.dtype in (torch.float32, torch.float64)
            or values.is_complex()
            or not values.is_floating_point()
        ):
            scheme.apply(values, generator)
        else:
            work = torch.empty(values.shape, dtype=torch.float32)
            scheme.apply(work, generator)
            values.copy_(work)
    return values


def edit_(values: torch.Tensor, edit: Edit) -> torch.Tensor:
    """``values * scale + add`` in place (low-precision floats computed in float32); returns them."""
    import torch

    with torch.no_grad():
        if not values.is_floating_point() and not values.is_complex():
            if edit.scale is not None:
                values.mul_(int(edit.scale))
            if edit.add is not None:
                values.add_(int(edit.add))
            return values
        wide = values.dtype in (torch.float32, torch.float64) or values.is_complex()
        work = values if wide else values.float()
        if edit.scale is not None:
            work.mul_(edit.scale)
        if edit.add is not None:
            work.add_(edit.add)
        if work is not values:
            values.copy_(work)
    return values
