"""The output of a command given several files: one block per file, in one format.

One file gives exactly what its report alone gives. Several: a table per file, one after
the other; TSV and CSV one header line and a leading ``file`` column, so the rows still
make one table; jsonl a ``file`` field in every record; JSON a list with one object per
file, a file that failed as ``{"file", "error", "exit_code"}`` (its error line also goes to
stderr).

>>> import io
>>> from paramctl.render.engine import Column, Environment, OutputFormat, Report
>>> env = Environment(io.StringIO(), io.StringIO(), stdout_isatty=False, stderr_isatty=False)
>>> output = Output(OutputFormat.tsv, env, several=True)
>>> for source in ("a.pt", "b.pt"):
...     output.add(source, Report([Column("name", "name")], [{"name": "w"}]))
>>> output.finish()
>>> print(env.stdout.getvalue(), end="")
file	name
a.pt	w
b.pt	w
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from paramctl.errors import ParamctlError
from paramctl.render.engine import Column, Environment, OutputFormat, Report, emit

FILE = Column("file", "file", style="dim")


def with_file(report: Report, source: str) -> Report:
    """``report`` with the file it describes as its first column, in every row."""
    return replace(
        report,
        columns=[FILE, *report.columns],
        rows=[{"file": source, **row} for row in report.rows],
        sections=[with_file(section, source) for section in report.sections],
    )


class Output:
    """Where the reports of one command go, file after file, in ``fmt``.

    ``columns`` (``--columns``) narrows every report to those columns.
    """

    def __init__(
        self, fmt: OutputFormat, env: Environment, *, several: bool, columns: Sequence[str] | None = None
    ) -> None:
        self.fmt = fmt
        self.env = env
        self.several = several
        self.columns = list(columns) if columns else None
        self._documents: list[Any] = []
        self._count = 0

    def add(self, source: str, report: Report) -> None:
        """Show ``report``, the answer for the file ``source``."""
        if self.columns and self.fmt is not OutputFormat.names:
            report = report.with_columns(self.columns)
        first = self._count == 0
        self._count += 1
        if not self.several:
            emit(report, self.fmt, self.env)
        elif self.fmt is OutputFormat.json:
            self._documents.append(report.document() if report.document is not None else report.rows)
        elif self.fmt in (OutputFormat.tsv, OutputFormat.csv, OutputFormat.jsonl):
            emit(with_file(report, source), self.fmt, self.env, header=first)
        else:
            if self.fmt is OutputFormat.table and not first:
                self.env.stdout.write("\n")
            emit(report, self.fmt, self.env)

    def failed(self, source: str, error: ParamctlError) -> None:
        """Say on stderr why the file ``source`` gave no answer (JSON keeps it as an object)."""
        self.env.err_console().print(f"paramctl: error: {error}", markup=False, highlight=False)
        if self.fmt is OutputFormat.json:
            self._documents.append({"file": source, "error": str(error), "exit_code": int(error.exit_code)})

    def finish(self) -> None:
        """Write what waits for the last file (the JSON list)."""
        if self.several and self.fmt is OutputFormat.json:
            self.env.stdout.write(json.dumps(self._documents, indent=2, allow_nan=True, default=str) + "\n")
