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
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # Rich loads only where something is drawn for a person
    from rich.console import Console, RenderableType
    from rich.text import Text


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

    @classmethod
    def current(cls) -> Environment:
        return cls(sys.stdout, sys.stderr, _isatty(sys.stdout), _isatty(sys.stderr))

    def on_stderr(self) -> Environment:
        """The environment of a report that cannot use stdout (it carries a checkpoint)."""
        return replace(self, stdout=self.stderr, stdout_isatty=self.stderr_isatty)

    # Rich loads only when something is drawn for a person: pipes never pay for it.
    def console(self) -> Console:
        from rich.console import Console

        # A pipe gets no width limit worth wrapping names at.
        return Console(file=self.stdout, highlight=False, width=None if self.stdout_isatty else 200)

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
    """A field of the rows: its key, its header, and how a person reads it."""

    key: str
    header: str
    justify: str = "left"
    human: Callable[[Any], str] | None = None
    plain: Callable[[Any], str] = as_text
    style: str | None = None


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
    # What a person sees instead of the table (a tree, a page), built only for a terminal.
    human: Callable[[], RenderableType] | None = None
    # The key whose value ``--format names`` prints, one a line.
    name_key: str = "name"
    # Formats with no place for the footer (all but table and JSON) give it as notes on stderr.
    footer_as_notes: bool = False


def emit(report: Report, fmt: OutputFormat, env: Environment) -> None:
    """Write ``report`` to stdout in ``fmt``."""
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
        _emit_delimited(report, env, "\t" if fmt is OutputFormat.tsv else ",")
    if report.footer_as_notes and fmt not in (OutputFormat.table, OutputFormat.json):
        for line in report.footer:
            env.note(line)


def _all_rows(report: Report) -> Iterable[dict[str, Any]]:
    yield from report.rows
    for section in report.sections:
        yield from _all_rows(section)


def _emit_delimited(report: Report, env: Environment, delimiter: str) -> None:
    if delimiter == "\t":
        # TSV has no quoting: control characters are escaped instead, so rows stay rows.
        lines = [[c.key for c in report.columns]]
        lines += [[c.plain(row.get(c.key)) for c in report.columns] for row in report.rows]
        env.stdout.write("".join("\t".join(line) + "\n" for line in lines))
    else:
        writer = csv.writer(env.stdout, lineterminator="\n")
        writer.writerow([c.key for c in report.columns])
        writer.writerows([c.plain(row.get(c.key)) for c in report.columns] for row in report.rows)
    for section in report.sections:
        env.stdout.write("\n")
        _emit_delimited(section, env, delimiter)


def _emit_table(report: Report, env: Environment) -> None:
    from rich.text import Text

    console = env.console()
    if report.human is not None:
        console.print(report.human())
    else:
        from rich.table import Table

        # The title names the file: its path is escaped like names, and never read as markup.
        title = Text(escape_control(report.title)) if report.title is not None else None
        table = Table(title=title, caption=report.caption, caption_justify="left")
        for column in report.columns:
            table.add_column(column.header, justify=column.justify, style=column.style)  # type: ignore[arg-type]
        for row in report.rows:
            table.add_row(*(_human(column, row.get(column.key)) for column in report.columns))
        console.print(table)
    for line in report.footer:
        console.print(line)
    for section in report.sections:
        console.print()
        _emit_table(section, env)


def _human(column: Column, value: Any) -> Text:
    from rich.text import Text

    text = column.human(value) if column.human else as_text(value)
    return Text(escape_control(text))
