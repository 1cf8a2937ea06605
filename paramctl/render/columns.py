"""The columns several views share (a tensor's name, shape, dtype, size, statistics) and how
a person reads their values.

>>> human_int(1234567), compact_int(1234567), compact_int(4096), compact_int(999), human_bytes(4096)
('1,234,567', '1.23M', '4.10K', '999', '4.00 KiB')
>>> human_stat(0.123456), human_stat(-1.5e-05), human_stat(3.0e12)
('0.1235', '-1.5e-5', '3e12')
>>> human_shared(["1.weight", "2.weight"]), human_names(["a", "b", "c"])
('↔ 1.weight +1', 'a, b +1')
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from paramctl.render.engine import Column, as_text, format_shape
from paramctl.units import format_bytes

_EXPONENT = re.compile(r"e([+-])0*(\d)")
_MAGNITUDES = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


def human_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else as_text(value)


def compact_int(value: Any) -> str:
    """A count in three significant figures and a unit: ``12.3K``, ``1.23M`` (exact below 1,000)."""
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) < 1000:
        return human_int(value)
    size, unit = next((size, unit) for size, unit in _MAGNITUDES if abs(value) >= size)
    scaled = value / size
    # Three significant figures, trailing zeros kept: 4.10K, 12.3K, 123K.
    decimals = max(0, 2 - int(math.log10(abs(scaled)))) if abs(scaled) < 1000 else 0
    return f"{scaled:,.{decimals}f}{unit}"


def human_bytes(value: Any) -> str:
    return format_bytes(value) if isinstance(value, int) else as_text(value)


def human_stat(value: Any) -> str:
    """Four significant figures; an exponent without its padding (``1.5e-5``)."""
    if isinstance(value, float):
        return _EXPONENT.sub(lambda m: ("e-" if m.group(1) == "-" else "e") + m.group(2), f"{value:.4g}")
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


def ranked(columns: Iterable[Column], ranks: Mapping[str, int]) -> list[Column]:
    """``columns`` with the drop ranks a view gives them (see :mod:`paramctl.render.table`)."""
    return [replace(c, drop_rank=ranks[c.key]) if c.key in ranks else c for c in columns]


NAME = Column("name", "name", style="bold", fold="name")
SHAPE = Column("shape", "shape", plain=format_shape, human=format_shape)
DTYPE = Column("dtype", "dtype", drop_rank=3)
NUMEL = Column("numel", "numel", "right", human=human_int, compact=compact_int, drop_rank=4)
BYTES = Column("bytes", "bytes", "right", human=human_bytes, drop_rank=2)
SHARED = Column("shared_with", "shared", human=human_shared, style="magenta", fold="name", drop_rank=1)
TENSOR_COLUMNS = [NAME, SHAPE, DTYPE, NUMEL, BYTES, SHARED]


def _stat(key: str, header: str, rank: int, human: Any = human_stat) -> Column:
    return Column(key, header, "right", human=human, drop_rank=rank, group="stats")


def _count(key: str, header: str, rank: int) -> Column:
    return Column(key, header, "right", human=human_int, compact=compact_int, drop_rank=rank, group="stats")


# `list --stats` and `show` give these (see paramctl.stats for what each means). The ranks
# say what a narrow terminal hides first: the counts that are usually zero, then min/max
# (max|x| tells most of it), then the rest.
STAT_COLUMNS = [
    _stat("mean", "mean", 1),
    _stat("std", "std", 1),
    _stat("min", "min", 6),
    _stat("max", "max", 6),
    _stat("absmax", "max|x|", 3),
    _stat("norm", "L2 norm", 3),
    _stat("zeros", "zeros", 8, human_fraction),
    _count("nan", "NaN", 9),
    _count("inf", "Inf", 9),
]
# Beside statistics, the size columns matter less than the numbers asked for; mean and std
# are what was asked for: rather than lose them, a narrow terminal gets a block per tensor.
WITH_STATS_RANKS = {"dtype": 5, "numel": 7, "bytes": 7, "shared_with": 4, "mean": 0, "std": 0}
