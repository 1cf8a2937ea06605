"""Constant fills without torch: ``zeros``, ``ones``, ``constant(val=X)`` and ``--set X``.

Writing one value everywhere needs no random numbers and no torch math: the value's bytes
in the tensor's dtype are computed once, as torch would round them, and repeated over the
tensor's bytes. :func:`apply_plan` in :mod:`paramctl.change.fill` comes here when every
tensor of a plan is such a fill (no copies, no ``--scale``/``--add``, no views with gaps
between their elements), so ``paramctl init -s zeros`` never pays for importing torch.

>>> element_bytes(1.0, "bfloat16").hex(), element_bytes(-2.5, "float16", "big").hex()
('803f', 'c100')
>>> element_bytes(1.5, "int64") is None  # torch truncates; that is left to torch
True
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from paramctl.change.plan import Plan, PlannedTensor
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.storage import fills_span

if TYPE_CHECKING:
    from paramctl.change.fill import ChangedTensor
    from paramctl.formats._editor import StorageEditor
    from paramctl.stats import TensorStats

_FLOAT32_MAX = 3.4028234663852886e38


def element_bytes(value: float, dtype: str, byteorder: str = "little") -> bytes | None:
    """One element of ``dtype`` holding ``value`` as torch's ``constant_`` stores it, or
    ``None`` where that takes torch (a non-integral value in an integer type, float8, a
    value beyond float32's range, NaN in a 16-bit float).

    Low-precision floats get the float32 value rounded to nearest even, as torch fills
    them in float32 and casts back.
    """
    info = lookup_dtype(dtype)
    if value == 0 and math.copysign(1.0, value) > 0 and info.array_code and info.block_size == 1:
        return bytes(info.itemsize)  # +0 is all zero bits in every type
    import numpy as np

    from paramctl.values import stored_dtype

    order = "<" if byteorder == "little" else ">"
    if dtype != "float64" and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        return None  # torch refuses to fill a float32 with it: its error is the answer
    if dtype in ("float16", "bfloat16") and math.isnan(value):
        return None  # which NaN a cast gives differs between torch's vector and scalar code
    if dtype == "bfloat16":
        return struct.pack(f"{order}H", _bfloat16_bits(value))
    if dtype in ("float16", "float32", "float64"):
        with np.errstate(over="ignore"):
            wide = np.float32(value) if dtype == "float16" else value
            return np.array(wide, stored_dtype(dtype, byteorder)).tobytes()
    if info.array_code and not info.is_floating and not info.is_complex and value == int(value):
        numbers = np.dtype(info.array_code)
        if numbers.kind == "b":
            return bytes([int(value)]) if value in (0, 1) else None
        limits = np.iinfo(numbers)
        if limits.min <= value <= limits.max:
            return np.array(int(value), stored_dtype(dtype, byteorder)).tobytes()
    return None


def _bfloat16_bits(value: float) -> int:
    import numpy as np

    with np.errstate(over="ignore"):
        bits = int(np.array(value, np.float32).view(np.uint32))
    # Round to nearest, ties to even, as torch's float-to-bfloat16 cast does (infinities and
    # values beyond bfloat16's range come out infinite).
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


def constant_element(planned: PlannedTensor, byteorder: str = "little") -> bytes | None:
    """The element a planned tensor is filled with when that needs no torch, else ``None``."""
    value = getattr(planned.scheme, "fill_value", None)
    entry = planned.entry
    if value is None or planned.source is not None or planned.edit is not None or entry.chunks:
        return None
    if not fills_span(entry):
        return None
    return element_bytes(value, entry.dtype, byteorder)


def fills_without_torch(plan: Plan) -> bool:
    """Whether every tensor of ``plan`` is a constant fill that needs no torch."""
    order = plan.checkpoint.byteorder
    return bool(plan.tensors) and all(constant_element(t, order) is not None for t in plan.tensors)


def apply_constants(
    plan: Plan,
    editor: StorageEditor,
    *,
    stats: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> list[ChangedTensor]:
    """:func:`~paramctl.change.fill.apply_plan` for a plan :func:`fills_without_torch`.

    Each tensor fills its byte span exactly, so the element repeated over the span is the
    tensor filled, whatever its strides; mean and std before are measured over the span,
    after they are the value's.
    """
    import numpy as np

    from paramctl.change.fill import ChangedTensor
    from paramctl.formats._limits import check_readable

    order = plan.checkpoint.byteorder
    changed = []
    for planned in plan.tensors:
        entry = planned.entry
        check_readable(plan.checkpoint, entry, writing=True)  # as the torch path does, first
        element = constant_element(planned, order)
        assert element is not None, "apply_constants needs a plan that fills_without_torch"
        start, end = entry.byte_span
        with editor.span_bytes(entry.storage_key, start, end, read=stats) as raw:
            before = span_mean_std(raw, entry.dtype, order) if stats else None
            np.frombuffer(raw, np.uint8).reshape(-1, len(element))[:] = np.frombuffer(element, np.uint8)
        after = constant_stats(element, entry.dtype, order, entry.numel) if stats else None
        changed.append(ChangedTensor(planned, before, after))
        if on_progress:
            on_progress(entry.nbytes)
    return changed


def constant_stats(element: bytes, dtype: str, byteorder: str, count: int) -> TensorStats:
    """Mean and std of ``count`` elements all equal to ``element``: the value and 0."""
    import numpy as np

    from paramctl.change.fill import unmeasured_stats
    from paramctl.values import decode, stored_dtype

    if not count or lookup_dtype(dtype).is_complex:
        return unmeasured_stats(count, None, None)
    value = float(decode(np.frombuffer(element, stored_dtype(dtype, byteorder)), dtype)[0])
    return unmeasured_stats(count, value, 0.0 if count > 1 and math.isfinite(value) else None)


def span_mean_std(raw: memoryview, dtype: str, byteorder: str) -> TensorStats:
    """Mean and std of the elements in ``raw``, as :func:`~paramctl.change.fill.mean_std`
    measures a tensor (float32 sums, one pass of dot products)."""
    import numpy as np

    from paramctl.change.fill import combine_mean_std, unmeasured_stats
    from paramctl.values import decode, stored_dtype

    info = lookup_dtype(dtype)
    values = np.frombuffer(raw, stored_dtype(dtype, byteorder))
    if not values.size or info.is_complex:
        return unmeasured_stats(values.size, None, None)
    numbers = decode(values, dtype)
    wide = numbers if numbers.dtype in (np.float32, np.float64) else numbers.astype(np.float32)
    # The mean in the values' own precision, as torch's ``sum() / count`` gives it.
    mean = float(wide.sum(dtype=wide.dtype) / wide.dtype.type(wide.size))
    squares = float(np.dot(wide, wide))
    return combine_mean_std(wide.size, mean, squares, lambda mean: float(np.dot(wide - mean, wide - mean)))
