"""How ``paramctl show`` looks: one tensor's page (metadata, layout, statistics, torch's
preview of the values, a histogram) for people, or the data as JSON.

The page is made for the screen it is shown on: the statistics flow over as many lines as
the width needs, and on a terminal the preview and the histogram share its height, so the
heading stays in view (:func:`page_bins`, :func:`preview_lines`).

>>> page_bins(50), preview_lines(50, page_bins(50)), page_bins(24), preview_lines(24, page_bins(24))
(20, 19, 8, 5)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paramctl.render.columns import STAT_COLUMNS, human_int
from paramctl.render.engine import Report, escape_control, format_shape
from paramctl.render.plot import bar
from paramctl.units import format_bytes, plural

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
    from rich.table import Table

    from paramctl.inspect.show import TensorReport
    from paramctl.stats import Histogram

DEFAULT_BINS = 20
# The page's lines besides the preview and the histogram's bins: heading, file, storage,
# layout, statistics (two lines at 80 columns), the blank lines and the histogram's title.
_PAGE_LINES = 11


def page_bins(height: int, bins: int | None = None) -> int:
    """The histogram's bins: ``bins`` if asked for, else as many of 20 as leave the preview
    room on a screen ``height`` lines tall (at least 8)."""
    if bins is not None:
        return bins
    return min(DEFAULT_BINS, max(8, (height - _PAGE_LINES + 1) // 2))


def preview_lines(height: int, bins: int) -> int:
    """How many lines the preview may take on a screen ``height`` lines tall (at least 5)."""
    return max(5, height - _PAGE_LINES - bins)


@dataclass
class Fields:
    """``label value`` pairs side by side, over as many lines as the width needs."""

    pairs: Sequence[tuple[str, str]]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.cells import cell_len
        from rich.text import Text

        line = Text()
        for label, value in self.pairs:
            width = cell_len(f"{label} {value}")
            if line.cell_len and line.cell_len + 3 + width > options.max_width:
                yield line
                line = Text()
            if line.cell_len:
                line.append("   ")
            line.append(label, style="dim")
            line.append(f" {value}")
        yield line


def histogram_table(histogram: Histogram, width: int = 40) -> Table:
    """The histogram as rows: bin range, bar, count."""
    from rich.table import Table

    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(justify="right", style="dim", no_wrap=True)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    largest = max(histogram.counts, default=0)
    for i, count in enumerate(histogram.counts):
        low, high = histogram.edges[i], histogram.edges[i + 1]
        table.add_row(f"{low:.4g}", f"{high:.4g}", bar(count, largest, width) or " ", f"{count:,}")
    return table


def _statistics(report: TensorReport) -> Fields:
    values = report.stats.to_dict()
    pairs = [("numel", human_int(report.stats.numel))]
    for column in STAT_COLUMNS:
        value = values[column.key]
        pairs.append((column.header, column.human(value) if column.human else str(value)))
    return Fields(pairs)


def _about(report: TensorReport) -> Table:
    from rich.table import Table

    entry = report.entry
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    grid.add_row("file", f"{escape_control(report.source)} ({report.format})")
    storage = report.storage
    if storage is not None:
        where = f"at byte {storage.offset:,} of the file" if storage.offset is not None else "compressed"
        if storage.inline is not None:
            where = "inside the pickle"
        grid.add_row("storage", f"{escape_control(storage.key)} ({format_bytes(storage.nbytes)}, {where})")
    contiguous = "contiguous" if entry.is_contiguous else "not contiguous"
    grid.add_row(
        "layout", f"offset {entry.storage_offset:,}, stride {format_shape(entry.stride)}, {contiguous}"
    )
    if report.stats.note:
        grid.add_row("values", report.stats.note)
    if report.shared_with:
        grid.add_row("shared with", escape_control(", ".join(report.shared_with)))
    if report.index is not None:
        grid.add_row("slice", f"[{escape_control(report.index)}] -> {format_shape(report.shape)}")
    return grid


@dataclass
class _Histogram:
    """The histogram, its bars as wide as the screen leaves them (up to 40 cells)."""

    histogram: Histogram

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield histogram_table(self.histogram, max(8, min(40, options.max_width - 32)))


def _page(report: TensorReport) -> Group:
    from rich.console import Group
    from rich.text import Text

    entry = report.entry
    heading = Text(escape_control(entry.name), style="bold")
    heading.append(f"  {format_shape(entry.shape)} {entry.dtype}  {format_bytes(entry.nbytes)}")
    parts: list[RenderableType] = [heading, _about(report), Text(), _statistics(report), Text()]
    parts.append(Text(report.preview))
    if report.histogram.counts:
        finite = sum(report.histogram.counts)
        parts += [Text(), Text(f"histogram of {plural(finite, 'finite value')}", style="dim")]
        parts.append(_Histogram(report.histogram))
    return Group(*parts)


def tensor_report(report: TensorReport) -> Report:
    """The page for a terminal (``--format text``), the document for JSON."""
    return Report([], [], document=report.to_dict, human=lambda: _page(report))
