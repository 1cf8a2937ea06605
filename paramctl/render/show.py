"""How ``paramctl show`` looks: one tensor's page (metadata, layout, statistics, torch's
preview of the values, a histogram) for people, or the data as JSON.

>>> bar(3, 4, 4), bar(0, 4, 4), bar(1, 1000, 4)
('███', '', '▏')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramctl.render.columns import STAT_COLUMNS
from paramctl.render.engine import Report, escape_control, format_shape
from paramctl.units import format_bytes

if TYPE_CHECKING:
    from rich.console import Group, RenderableType
    from rich.table import Table

    from paramctl.inspect.show import TensorReport
    from paramctl.stats import Histogram

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(count: int, largest: int, width: int) -> str:
    """A horizontal bar of block characters, in eighths of a cell."""
    if largest <= 0 or count <= 0:
        return ""
    eighths = max(1, round(8 * width * count / largest))
    return "█" * (eighths // 8) + _EIGHTHS[eighths % 8].strip()


def histogram_table(histogram: Histogram, width: int = 40) -> Table:
    """The histogram as rows: bin range, bar, count."""
    from rich.table import Table

    table = Table(box=None, show_header=False, padding=(0, 1))
    table.add_column(justify="right", style="dim")
    table.add_column(style="dim")
    table.add_column(style="cyan")
    table.add_column(justify="right")
    largest = max(histogram.counts, default=0)
    for i, count in enumerate(histogram.counts):
        low, high = histogram.edges[i], histogram.edges[i + 1]
        table.add_row(f"{low:.4g}", f"{high:.4g}", bar(count, largest, width) or " ", f"{count:,}")
    return table


def _stats_table(report: TensorReport) -> Table:
    from rich.table import Table

    table = Table(box=None, padding=(0, 2))
    table.add_column("numel", justify="right")
    for column in STAT_COLUMNS:
        table.add_column(column.header, justify="right")
    values = report.stats.to_dict()
    cells = [f"{report.stats.numel:,}"]
    for column in STAT_COLUMNS:
        value = values[column.key]
        cells.append(column.human(value) if column.human else str(value))
    table.add_row(*cells)
    return table


def _about(report: TensorReport) -> Table:
    from rich.table import Table

    entry = report.entry
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
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


def _page(report: TensorReport) -> Group:
    from rich.console import Group
    from rich.text import Text

    entry = report.entry
    heading = Text(escape_control(entry.name), style="bold")
    heading.append(f"  {format_shape(entry.shape)} {entry.dtype}  {format_bytes(entry.nbytes)}")
    parts: list[RenderableType] = [heading, _about(report), Text(), _stats_table(report), Text()]
    parts.append(Text(report.preview))
    if report.histogram.counts:
        finite = sum(report.histogram.counts)
        parts += [Text(), Text(f"histogram of {finite:,} finite values", style="dim")]
        parts.append(histogram_table(report.histogram))
    return Group(*parts)


def tensor_report(report: TensorReport) -> Report:
    """The page for a terminal (``--format text``), the document for JSON."""
    return Report([], [], document=report.to_dict, human=lambda: _page(report))
