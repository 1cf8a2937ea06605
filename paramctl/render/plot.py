"""``list --stats --plot STAT``: one horizontal bar per tensor (or module), beside its name,
as wide as the terminal allows: the picture that shows a layer at the wrong scale.

Bars are linear from zero to the largest value, or with ``log`` logarithmic from the
smallest value above zero to the largest. A bar measures the magnitude; negative values
(a mean below zero) are drawn in red, and their number keeps its sign.

>>> bar(3, 4, 4), bar(0, 4, 4), bar(1, 1000, 4)
('███', '', '▏')
>>> lengths([1.0, 10.0, 100.0], 10, log=True)
[1.0, 5.5, 10.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paramctl.render.columns import human_fraction, human_stat

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

PLOTTED = ("std", "mean", "norm", "absmax", "zeros")
_EIGHTHS = " ▏▎▍▌▋▊▉"
# Below this many cells a bar says little: names fold first to leave it this much room.
_LEAST_BAR = 16


def bar(count: float, largest: float, width: int) -> str:
    """A horizontal bar of block characters, in eighths of a cell; anything above zero
    gets at least an eighth."""
    if largest <= 0 or count <= 0:
        return ""
    eighths = max(1, round(8 * width * count / largest))
    return "█" * (eighths // 8) + _EIGHTHS[eighths % 8].strip()


def lengths(values: Sequence[float | None], width: int, *, log: bool = False) -> list[float]:
    """Bar lengths in cells for ``values`` (their magnitudes), the longest ``width``."""
    sizes = [abs(v) if v is not None and math.isfinite(v) else 0.0 for v in values]
    largest = max(sizes, default=0.0)
    if largest <= 0:
        return [0.0 for _ in sizes]
    if not log:
        return [width * size / largest for size in sizes]
    low, high = math.log10(min(s for s in sizes if s > 0)), math.log10(largest)
    span = high - low
    return [
        0.0 if size <= 0 else (width if span == 0 else 1 + (width - 1) * (math.log10(size) - low) / span)
        for size in sizes
    ]


def stat_text(key: str) -> Callable[[Any], str]:
    return human_fraction if key == "zeros" else human_stat


@dataclass
class BarChart:
    """Rows of ``label  value  bar``; labels that are names fold at dots when the terminal
    is too narrow to give the bars room."""

    labels: list[str]
    values: list[float | None]
    texts: list[str]
    log: bool = False
    fold_labels: bool = True
    title: str | None = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.cells import cell_len
        from rich.text import Text

        from paramctl.render.table import fold_name

        if self.title:
            yield Text(self.title, style="bold")
        width = options.max_width
        text_width = max((cell_len(t) for t in self.texts), default=0)
        label_width = max((cell_len(label) for label in self.labels), default=0)
        if self.fold_labels and width - label_width - text_width - 2 < _LEAST_BAR:
            label_width = max(width - text_width - 2 - _LEAST_BAR, width // 3, 1)
        room = max(width - label_width - text_width - 2, 1)
        for label, value, text, size in zip(
            self.labels, self.values, self.texts, lengths(self.values, room, log=self.log), strict=True
        ):
            lines = fold_name(label, label_width) if self.fold_labels else [label]
            for line in lines[:-1]:
                yield Text(line)
            row = Text(lines[-1] + " " * (label_width - cell_len(lines[-1])) + " ")
            row.append(text.rjust(text_width) + " ", style="dim" if value is None else None)
            negative = value is not None and value < 0
            row.append(bar(size, room, room), style="red" if negative else "cyan")
            yield row

    def legend(self, stat: str) -> str:
        finite = [abs(v) for v in self.values if v is not None and math.isfinite(v)]
        if not finite or max(finite) == 0:
            return f"{stat}: every value is zero or missing"
        show = stat_text(stat)
        if self.log:
            low = min((v for v in finite if v > 0), default=0.0)
            scale = f"log scale, from {show(low)} (shortest bar) to {show(max(finite))} (longest)"
        else:
            scale = f"linear scale from 0; the longest bar is {show(max(finite))}"
        red = "; red bars are negative" if any(v is not None and v < 0 for v in self.values) else ""
        return f"{stat}: {scale}{red}"


def chart_rows(
    labels: Iterator[str] | Sequence[str], stats: Sequence[dict[str, Any] | None], key: str
) -> BarChart:
    """A chart of the statistic ``key`` from each row's statistics (``None``: no bar)."""
    values = [None if s is None else s.get(key) for s in stats]
    show = stat_text(key)
    return BarChart(
        list(labels), [float(v) if v is not None else None for v in values], [show(v) for v in values]
    )
