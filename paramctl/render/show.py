"""How ``shared``, ``show`` and ``check`` look, and the progress bar of long value scans.

The companion of :mod:`paramctl.render.engine`: the same :class:`Report`/:func:`emit` machinery
for rows, plus the few views that are not rows (one tensor's page, a histogram).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from paramctl.render.engine import (
    BYTES,
    DTYPE,
    NAME,
    SHAPE,
    STAT_COLUMNS,
    Column,
    Environment,
    OutputFormat,
    Report,
    emit,
    escape_control,
    format_bytes,
    format_shape,
)

if TYPE_CHECKING:
    from paramctl.inspect.check import CheckResult
    from paramctl.inspect.sharing import SharingReport
    from paramctl.inspect.show import TensorReport
    from paramctl.stats import Histogram

# Below this much reading a bar would only flicker.
PROGRESS_THRESHOLD = 256 << 20


@contextmanager
def progress(
    env: Environment, total: int, description: str, threshold: int = PROGRESS_THRESHOLD
) -> Iterator[Callable[[int], None] | None]:
    """A byte-counting progress bar on stderr, only for a person watching long work.

    Yields the callback to feed with byte counts, or ``None`` when no bar is shown (stderr
    is not a terminal, or the work is short).
    """
    if not env.stderr_isatty or total < threshold:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=env.err_console(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.advance(task, done)


# -- shared -------------------------------------------------------------------------------

SHARED_COLUMNS = [
    Column("group", "group", "right"),
    Column("relation", "relation", style="magenta"),
    NAME,
    SHAPE,
    DTYPE,
    BYTES,
    Column("storage", "storage"),
    Column("start", "start", "right"),
    Column("end", "end", "right"),
    Column("view", "view", "right"),
]


def shared_report(report: SharingReport) -> Report:
    """One row per name, numbered by group; the summary as the footer."""
    rows = []
    for number, group in enumerate(report.groups, start=1):
        for name in group.names:
            row = name.to_dict()
            row.update(group=number, relation=group.relation, storage=group.storage)
            rows.append(row)
    return Report(
        SHARED_COLUMNS,
        rows,
        document=report.to_dict,
        title=f"{report.source} ({report.format})",
        footer=[report.summary()],
    )


def emit_shared(report: SharingReport, fmt: OutputFormat, env: Environment) -> None:
    emit(shared_report(report), fmt, env)
    if fmt not in (OutputFormat.table, OutputFormat.json):
        env.note(report.summary())


# -- show ---------------------------------------------------------------------------------

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(count: int, largest: int, width: int) -> str:
    """A horizontal bar of block characters, in eighths of a cell.

    >>> bar(3, 4, 4), bar(0, 4, 4), bar(1, 1000, 4)
    ('███', '', '▏')
    """
    if largest <= 0 or count <= 0:
        return ""
    eighths = max(1, round(8 * width * count / largest))
    return "█" * (eighths // 8) + _EIGHTHS[eighths % 8].strip()


def histogram_table(histogram: Histogram, width: int = 40) -> Table:
    """The histogram as rows: bin range, bar, count."""
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
    entry = report.entry
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    storage = report.storage
    if storage is not None:
        where = f"at byte {storage.offset:,} of the file" if storage.offset is not None else "compressed"
        grid.add_row("storage", f"{escape_control(storage.key)} ({format_bytes(storage.nbytes)}, {where})")
    contiguous = "contiguous" if entry.is_contiguous else "not contiguous"
    grid.add_row(
        "layout", f"offset {entry.storage_offset:,}, stride {format_shape(entry.stride)}, {contiguous}"
    )
    if report.shared_with:
        grid.add_row("shared with", escape_control(", ".join(report.shared_with)))
    if report.index is not None:
        grid.add_row("slice", f"[{escape_control(report.index)}] -> {format_shape(report.shape)}")
    return grid


def emit_tensor(report: TensorReport, fmt: OutputFormat, env: Environment) -> None:
    """One tensor's page: header, layout, statistics, torch's preview, the histogram."""
    if fmt is OutputFormat.json:
        env.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        return
    entry = report.entry
    console = env.console()
    heading = Text(escape_control(entry.name), style="bold")
    heading.append(f"  {format_shape(entry.shape)} {entry.dtype}  {format_bytes(entry.nbytes)}")
    console.print(heading)
    console.print(_about(report))
    console.print()
    console.print(_stats_table(report))
    console.print()
    console.print(Text(report.preview))
    if report.histogram.counts:
        finite = sum(report.histogram.counts)
        console.print()
        console.print(Text(f"histogram of {finite:,} finite values", style="dim"))
        console.print(histogram_table(report.histogram))


# -- check --------------------------------------------------------------------------------

CHECK_COLUMNS = [
    Column("severity", "severity"),
    Column("check", "check"),
    Column("name", "name", style="bold"),
    Column("message", "message"),
]
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}


def emit_check(result: CheckResult, fmt: OutputFormat, env: Environment, strict: bool = False) -> None:
    """One line per finding and a summary; JSON with everything; rows for pipes."""
    if fmt is OutputFormat.json:
        env.stdout.write(json.dumps(result.to_dict(strict), indent=2) + "\n")
        return
    if fmt is OutputFormat.table:
        console = env.console()
        for finding in result.findings:
            line = Text(f"{finding.severity}: ", style=_SEVERITY_STYLE[finding.severity])
            line.append(escape_control(finding.line().split(": ", 1)[1]))
            console.print(line)
        verdict = "ok" if result.passed(strict) else "FAILED"
        style = "green" if result.passed(strict) else "bold red"
        summary = Text(f"{result.source}: ", style="bold")
        summary.append(verdict, style=style)
        summary.append(f": {result.summary()}")
        console.print(summary)
        return
    rows = [finding.to_dict() for finding in result.findings]
    if fmt is OutputFormat.names:
        rows = [{"name": name} for name in dict.fromkeys(f.name for f in result.findings if f.name)]
    emit(Report(CHECK_COLUMNS, rows), fmt, env)
    env.note(result.summary())
