"""The text torch prints for a tensor (``repr``), produced from numpy numbers.

``paramctl show`` previews values as torch would print them, without importing torch: the
``tensor(`` prefix, one width for every element, ``4.`` for floats that are all integral,
scientific notation when the magnitudes span more than a thousand (or leave
``[1e-4, 1e8]``), the edges and ``...`` for more than ``threshold`` elements, lines wrapped
at ``linewidth``, and the ``dtype=``/``size=`` suffixes where torch adds them. It follows
``torch/_tensor_str.py`` step by step; numbers arrive decoded (bfloat16 and float8 as
float32), which prints the same since the values are exact.

>>> import numpy as np
>>> tensor_repr(np.array([4.0, 5.0], dtype=np.float32), "float32")
'tensor([4., 5.])'
>>> tensor_repr(np.array([[1500.0, 0.25]], dtype=np.float16), "float16")
'tensor([[1.5000e+03, 2.5000e-01]], dtype=torch.float16)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray

EDGE_ITEMS = 3
# Dtypes torch prints without a dtype= suffix (float32 being the default dtype).
_IMPLIED = ("float32", "complex64", "int64", "bool")


@dataclass(frozen=True)
class _Options:
    precision: int
    threshold: float
    linewidth: int
    edgeitems: int = EDGE_ITEMS


def tensor_repr(
    values: NDArray[Any],
    dtype: str,
    *,
    precision: int = 4,
    threshold: float = 1000,
    linewidth: int = 80,
    edgeitems: int = EDGE_ITEMS,
) -> str:
    """What ``repr(tensor)`` prints under ``torch.set_printoptions(precision=, threshold=,
    linewidth=, edgeitems=)`` for a CPU tensor of torch dtype ``dtype`` holding ``values``."""
    options = _Options(precision, threshold, linewidth, edgeitems)
    prefix = "tensor("
    suffixes = []
    if values.size == 0:
        if values.ndim != 1:
            suffixes.append(f"size={tuple(values.shape)}")
        if dtype != "float32":
            suffixes.append(f"dtype=torch.{dtype}")
        body = "[]"
    else:
        if dtype not in _IMPLIED:
            suffixes.append(f"dtype=torch.{dtype}")
        body = _tensor_str(values, len(prefix), options)
    return _add_suffixes(prefix + body, suffixes, len(prefix), options.linewidth)


class _Formatter:
    """One element format for a whole tensor, chosen from its (summarised) values."""

    def __init__(self, values: NDArray[Any], options: _Options) -> None:
        import numpy as np

        self.precision = options.precision
        self.floating = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        if not self.floating:
            self.width = max((len(f"{value}") for value in values.reshape(-1).tolist()), default=1)
            return
        flat = values.reshape(-1)
        shown = flat[np.isfinite(flat) & (flat != 0)]
        if shown.size == 0:
            return
        magnitudes = np.abs(shown).astype(np.float64)
        smallest, largest = float(magnitudes.min()), float(magnitudes.max())
        self.int_mode = bool(np.all(shown == np.ceil(shown)))
        self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
        numbers = shown.tolist()
        if self.sci_mode:
            self.width = max(len(f"{value:.{self.precision}e}") for value in numbers)
        elif self.int_mode:
            self.width = max(len(f"{value:.0f}") + 1 for value in numbers)
        else:
            self.width = max(len(f"{value:.{self.precision}f}") for value in numbers)

    def format(self, value: Any) -> str:
        if not self.floating:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.width}.{self.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{self.precision}f}"
        return (self.width - len(text)) * " " + text


@dataclass(frozen=True)
class _Formatters:
    real: _Formatter
    imag: _Formatter | None = None

    def format(self, value: Any) -> str:
        if self.imag is None:
            return self.real.format(value)
        real = self.real.format(value.real)
        imag = (self.imag.format(value.imag) + "j").lstrip()
        return real + imag if imag[0] in "+-" else real + "+" + imag

    @property
    def element_length(self) -> int:
        """An element's width plus the comma and space between elements."""
        return self.real.width + 2 + (self.imag.width + 1 if self.imag is not None else 0)


def _tensor_str(values: NDArray[Any], indent: int, options: _Options) -> str:
    summarize = values.size > options.threshold
    shown = _summarized(values, options.edgeitems) if summarize else values
    if values.dtype.kind == "c":
        formatters = _Formatters(_Formatter(shown.real, options), _Formatter(shown.imag, options))
    else:
        formatters = _Formatters(_Formatter(shown, options))
    return _nested_str(values, indent, summarize, formatters, options)


def _summarized(values: NDArray[Any], edges: int) -> NDArray[Any]:
    """The elements a summarised print shows: the first and last few along each dimension."""
    import numpy as np

    if values.ndim == 0:
        return values
    keep = [
        np.r_[0:edges, size - edges : size] if size > 2 * edges else np.arange(size) for size in values.shape
    ]
    return np.asarray(values[np.ix_(*keep)])


def _nested_str(
    values: NDArray[Any], indent: int, summarize: bool, formatters: _Formatters, options: _Options
) -> str:
    if values.ndim == 0:
        return formatters.format(values.item())
    if values.ndim == 1:
        return _vector_str(values, indent, summarize, formatters, options)
    rows = range(values.shape[0])
    edges = options.edgeitems
    cut = summarize and values.shape[0] > 2 * edges
    chosen: list[int | None] = [*rows[:edges], None, *rows[-edges:]] if cut else list(rows)
    slices = [
        "..." if row is None else _nested_str(values[row], indent + 1, summarize, formatters, options)
        for row in chosen
    ]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def _vector_str(
    values: NDArray[Any], indent: int, summarize: bool, formatters: _Formatters, options: _Options
) -> str:
    per_line = max(1, math.floor((options.linewidth - indent) / formatters.element_length))
    edges = options.edgeitems
    if summarize and values.shape[0] > 2 * edges:
        data = [formatters.format(v) for v in values[:edges].tolist()]
        data += [" ..."] + [formatters.format(v) for v in values[-edges:].tolist()]
    else:
        data = [formatters.format(v) for v in values.tolist()]
    lines = [", ".join(data[i : i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _add_suffixes(text: str, suffixes: list[str], indent: int, linewidth: int) -> str:
    parts = [text]
    last_line = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line + len(suffix) + 2 > linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last_line = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last_line += len(suffix) + 2
    return "".join(parts) + ")"
