"""The output engine: Rich tables on a terminal, stable text and JSON in pipes.

Every view hands a :class:`Report` (rows as plain dicts from ``to_dict()``, the columns
that describe them, the JSON document, what a person sees) to :func:`emit`; this module
decides how each :class:`OutputFormat` looks, and it never reads files.

>>> import io
>>> out = io.StringIO()
>>> env = Environment(out, io.StringIO(), stdout_isatty=False, stderr_isatty=False)
>>> report = Report([Column("name", "name"), Column("shape", "shape", plain=format_shape)],
...                 [{"name": "w,1", "shape": [3, 4]}])
>>> emit(report, OutputFormat.csv, env)
>>> print(out.getvalue(), end="")
name,shape
"w,1","[3, 4]"
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # Rich loads only where something is drawn for a person
    from rich.console import Console, RenderableType


class OutputFormat(str, Enum):
    table = "table"
    tsv = "tsv"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"
    names = "names"


@dataclass
class Environment:
    """Where output goes and whether a person is watching it.

    Consoles are built per call, so ``NO_COLOR`` and test captures are honoured.
    """

    stdout: TextIO
    stderr: TextIO
    stdout_isatty: bool
    stderr_isatty: bool
    # A fixed width for tables (tests); None: the terminal's, or $COLUMNS (else 200) in a pipe.
    width: int | None = None

    @classmethod
    def current(cls) -> Environment:
        return cls(sys.stdout, sys.stderr, _isatty(sys.stdout), _isatty(sys.stderr))

    def on_stderr(self) -> Environment:
        """The environment of a report that cannot use stdout (it carries a checkpoint)."""
        return replace(self, stdout=self.stderr, stdout_isatty=self.stderr_isatty)

    # Rich loads only when something is drawn for a person: pipes never pay for it.
    def console(self) -> Console:
        from rich.console import Console

        return Console(file=self.stdout, highlight=False, width=self.table_width())

    def table_width(self) -> int | None:
        """The width tables fit: the terminal's (None lets Rich ask it), else ``$COLUMNS``;
        a pipe without it gets no width limit worth folding names at."""
        if self.width is not None:
            return self.width
        if self.stdout_isatty:
            return None
        columns = os.environ.get("COLUMNS", "")
        return int(columns) if columns.isdigit() and int(columns) > 0 else 200

    def err_console(self) -> Console:
        from rich.console import Console

        # Messages are single lines: never hard-wrap them at the terminal width.
        return Console(file=self.stderr, highlight=False, stderr=True, soft_wrap=True)

    def resolve(self, requested: OutputFormat | None) -> OutputFormat:
        """An explicit ``--format`` wins; otherwise a table for people, TSV for pipes."""
        if requested is not None:
            return requested
        return OutputFormat.table if self.stdout_isatty else OutputFormat.tsv

    def note(self, message: str) -> None:
        """A side remark on stderr (never mixed into data on stdout)."""
        from rich.text import Text

        self.err_console().print(Text(escape_control(message), style="dim"), soft_wrap=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_shape(shape: Sequence[int] | None) -> str:
    """``[3, 4]``; ``[]`` for a scalar; ``?`` when unknown.

    >>> format_shape([3, 4]), format_shape([]), format_shape(None)
    ('[3, 4]', '[]', '?')
    """
    return "?" if shape is None else "[" + ", ".join(str(s) for s in shape) + "]"


# Unicode category Cc (C0, DEL, C1), the line and paragraph separators, and the
# bidirectional controls (a right-to-left override makes "gpj.exe" look like "exe.jpg").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_control(text: str) -> str:
    r"""Make control characters visible so a name cannot rewrite the terminal, split a row
    or reorder what follows it.

    >>> escape_control("a\tb\x1b[31m")
    'a\\tb\\x1b[31m'
    >>> escape_control("model\u202egpj.pt")
    'model\\u202egpj.pt'
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda hit: hit.group().encode("unicode_escape").decode("ascii"), text)


def escape_lines(text: str) -> str:
    r""":func:`escape_control` line by line: a title of several lines keeps its breaks.

    >>> escape_lines("A a.pt\nB b\x1b.pt")
    'A a.pt\nB b\\x1b.pt'
    """
    return "\n".join(escape_control(line) for line in text.split("\n"))


def as_text(value: Any) -> str:
    """A value as pipes get it: exact numbers, lists joined by commas, controls escaped.

    >>> as_text(None), as_text(True), as_text(0.1), as_text(["a", "b"])
    ('', 'true', '0.1', 'a,b')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return ",".join(escape_control(str(v)) for v in value)
    return escape_control(str(value))


@dataclass(frozen=True)
class Column:
    """A field of the rows: its key, its header, how a person reads it, and how the table
    gives way when the terminal is narrow (see :mod:`paramctl.render.table`)."""

    key: str
    header: str
    justify: str = "left"
    human: Callable[[Any], str] | None = None
    plain: Callable[[Any], str] = as_text
    style: str | None = None
    # 0: always shown; otherwise the columns with the highest rank are hidden first.
    drop_rank: int = 0
    # "name": folds at dots, never cut; "words": wraps at spaces; "": never wraps.
    fold: str = ""
    # A shorter reading of the same value (1.23M for 1,234,567), used when space is short.
    compact: Callable[[Any], str] | None = None
    # What the note of hidden columns calls this column's kind ("stats").
    group: str | None = None


@dataclass
class Report:
    """Everything a command shows: rows, their columns and the surroundings."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    # The whole JSON answer, built only when JSON is asked for; the rows alone if None.
    document: Callable[[], Any] | None = None
    title: str | None = None
    caption: str | None = None
    footer: list[str] = field(default_factory=list)
    sections: list[Report] = field(default_factory=list)  # e.g. extras after tensors
    # What a person sees instead of the table (a page, a verdict), built only for a terminal.
    human: Callable[[], RenderableType] | None = None
    # The key whose value ``--format names`` prints, one a line.
    name_key: str = "name"
    # Formats with no place for the footer (all but table and JSON) give it as notes on stderr.
    footer_as_notes: bool = False
    # Where the rows sit in the JSON document (``--columns`` narrows them there too).
    rows_key: str | None = None
    # What a table with no rows says instead of an empty frame (None: draw the frame).
    when_empty: str | None = None
    # What the table shows, where it differs from the rows' own columns (a tree's guides).
    table_columns: list[Column] | None = None
    # Each jsonl record's kind ("tensor", "extra"), when sections mix record shapes.
    kind: str | None = None

    def with_columns(self, keys: Sequence[str]) -> Report:
        """This report showing only the columns ``keys`` (``--columns``), in that order,
        in every format; sections keep theirs."""
        by_key = {column.key: column for column in self.columns}
        unknown = [key for key in keys if key not in by_key]
        if unknown:
            from paramctl.errors import UsageError
            from paramctl.select import did_you_mean

            raise UsageError(
                f"--columns: no column {unknown[0]!r}{did_you_mean(unknown[0], list(by_key))}; "
                f"columns: {', '.join(by_key)}"
            )
        chosen = [replace(by_key[key], drop_rank=0) for key in keys]
        # JSON narrows the rows where the document keeps them; a document that keeps
        # them otherwise (nested in groups) gives way to the rows themselves.
        document = self.document
        if document is not None:
            document = _narrowed_document(document, self.rows_key, list(keys)) if self.rows_key else None
        rows = [{key: row.get(key) for key in keys} for row in self.rows]
        return replace(self, columns=chosen, rows=rows, document=document, table_columns=None)


def _narrowed_document(document: Callable[[], Any], rows_key: str, keys: list[str]) -> Callable[[], Any]:
    def narrowed() -> Any:
        data = document()
        data[rows_key] = [{key: row.get(key) for key in keys} for row in data[rows_key]]
        return data

    return narrowed


def emit(report: Report, fmt: OutputFormat, env: Environment, *, header: bool = True) -> None:
    """Write ``report`` to stdout in ``fmt``; ``header=False`` leaves out the header line of
    TSV and CSV (a later file's rows under the first one's header)."""
    if fmt is OutputFormat.json:
        document = report.document() if report.document is not None else report.rows
        env.stdout.write(json.dumps(document, indent=2, allow_nan=True, default=str) + "\n")
    elif fmt is OutputFormat.jsonl:
        for row in _all_rows(report):
            env.stdout.write(json.dumps(row, allow_nan=True, default=str) + "\n")
    elif fmt is OutputFormat.names:
        for row in report.rows:
            env.stdout.write(escape_control(str(row[report.name_key])) + "\n")
    elif fmt is OutputFormat.table:
        _emit_table(report, env)
    else:
        _emit_delimited(report, env, "\t" if fmt is OutputFormat.tsv else ",", header)
    if report.footer_as_notes and fmt not in (OutputFormat.table, OutputFormat.json):
        for line in report.footer:
            env.note(line)


def _all_rows(report: Report) -> Iterable[dict[str, Any]]:
    for row in report.rows:
        yield {"kind": report.kind, **row} if report.kind else row
    for section in report.sections:
        yield from _all_rows(section)


def _emit_delimited(report: Report, env: Environment, delimiter: str, header: bool) -> None:
    lines = [[c.key for c in report.columns]] if header else []
    lines += [[c.plain(row.get(c.key)) for c in report.columns] for row in report.rows]
    if delimiter == "\t":
        # TSV has no quoting: control characters are escaped instead, so rows stay rows.
        env.stdout.write("".join("\t".join(line) + "\n" for line in lines))
    else:
        csv.writer(env.stdout, lineterminator="\n").writerows(lines)
    for section in report.sections:
        env.stdout.write("\n")
        _emit_delimited(section, env, delimiter, header)


def _emit_table(report: Report, env: Environment) -> None:
    from paramctl.render.table import draw_table

    console = env.console()
    if report.human is not None:
        console.print(report.human())
    elif report.rows or report.when_empty is None:
        draw_table(report, console)
    if not report.rows and report.when_empty and report.human is None:
        console.print(report.when_empty, markup=False)
    for line in report.footer:  # plain text: a name's brackets are not markup
        console.print(line, markup=False)
    for section in report.sections:
        console.print()
        _emit_table(section, env)
