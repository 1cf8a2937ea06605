"""The columns several views share (a tensor's name, shape, dtype, size, statistics) and how
a person reads their values.

>>> human_int(1234567), human_bytes(4096), human_stat(0.123456), human_fraction(0.25)
('1,234,567', '4.00 KiB', '0.1235', '25.0%')
>>> human_shared(["1.weight", "2.weight"]), human_names(["a", "b", "c"])
('↔ 1.weight +1', 'a, b +1')
"""

from __future__ import annotations

from typing import Any

from paramctl.render.engine import Column, as_text, format_shape
from paramctl.units import format_bytes


def human_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else as_text(value)


def human_bytes(value: Any) -> str:
    return format_bytes(value) if isinstance(value, int) else as_text(value)


def human_stat(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else human_int(value)


def human_fraction(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, float) else as_text(value)


def human_shared(value: Any) -> str:
    """The first name sharing the storage, and how many more."""
    if not value:
        return ""
    more = f" +{len(value) - 1}" if len(value) > 1 else ""
    return f"↔ {value[0]}{more}"


def human_names(value: Any) -> str:
    """Two names, and how many more."""
    if not value:
        return ""
    return ", ".join(str(v) for v in value[:2]) + (f" +{len(value) - 2}" if len(value) > 2 else "")


NAME = Column("name", "name", style="bold")
SHAPE = Column("shape", "shape", plain=format_shape, human=format_shape)
DTYPE = Column("dtype", "dtype")
NUMEL = Column("numel", "numel", "right", human=human_int)
BYTES = Column("bytes", "bytes", "right", human=human_bytes)
SHARED = Column("shared_with", "shared", human=human_shared, style="magenta")
TENSOR_COLUMNS = [NAME, SHAPE, DTYPE, NUMEL, BYTES, SHARED]

# `list --stats` and `show` give these (see paramctl.stats for what each means).
STAT_COLUMNS = [
    Column("mean", "mean", "right", human=human_stat),
    Column("std", "std", "right", human=human_stat),
    Column("min", "min", "right", human=human_stat),
    Column("max", "max", "right", human=human_stat),
    Column("absmax", "max|x|", "right", human=human_stat),
    Column("norm", "L2 norm", "right", human=human_stat),
    Column("zeros", "zeros", "right", human=human_fraction),
    Column("nan", "NaN", "right", human=human_int),
    Column("inf", "Inf", "right", human=human_int),
]
