"""How ``paramctl check`` looks: one line per finding and a verdict for people; the findings
as rows for pipes (the summary as a note); everything as JSON.

>>> [column.key for column in CHECK_COLUMNS]
['severity', 'check', 'name', 'message']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramctl.render.engine import Column, OutputFormat, Report, escape_control

if TYPE_CHECKING:
    from rich.console import Group

    from paramctl.inspect.check import CheckResult

CHECK_COLUMNS = [
    Column("severity", "severity"),
    Column("check", "check", drop_rank=1),
    Column("name", "name", style="bold", fold="name"),
    Column("message", "message", fold="words"),
]
_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}


def _verdict(result: CheckResult, strict: bool) -> Group:
    from rich.console import Group
    from rich.text import Text

    lines = []
    for finding in result.findings:
        line = Text(f"{finding.severity}: ", style=_SEVERITY_STYLE[finding.severity])
        line.append(escape_control(finding.line().split(": ", 1)[1]))
        lines.append(line)
    passed = result.passed(strict)
    summary = Text(f"{result.source}: ", style="bold")
    summary.append("ok" if passed else "FAILED", style="green" if passed else "bold red")
    summary.append(f": {result.summary()}")
    return Group(*lines, summary)


def check_report(result: CheckResult, fmt: OutputFormat, strict: bool = False) -> Report:
    """The findings for ``fmt``; ``--format names`` lists each tensor with a finding once."""
    rows = [finding.to_dict() for finding in result.findings]
    if fmt is OutputFormat.names:
        rows = [{"name": name} for name in dict.fromkeys(f.name for f in result.findings if f.name)]
    return Report(
        CHECK_COLUMNS,
        rows,
        document=lambda: result.to_dict(strict),
        human=lambda: _verdict(result, strict),
        # The verdict line carries the summary on a terminal; pipes get it as a note.
        footer=[] if fmt is OutputFormat.table else [result.summary()],
        footer_as_notes=True,
        rows_key="findings",
    )
