"""How things look: Rich tables on a terminal, stable text and JSON in pipes.

Every command hands its rows (plain dicts from ``to_dict()``) and column descriptions to
:func:`emit`; this is the only module that decides presentation, and it never reads files.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TextIO

from paramctl.inspect.listing import Listing

if TYPE_CHECKING:  # torch (live, probe) and Rich load only where they are used
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

    from paramctl.change import InitResult
    from paramctl.live.model import LiveListing
    from paramctl.live.probe import GradProbe


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

        self.err_console().print(Text(message, style="dim"), soft_wrap=True)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_bytes(size: int) -> str:
    """Binary units, three significant figures.

    >>> format_bytes(48), format_bytes(4096), format_bytes(3 * 2**30)
    ('48 B', '4.00 KiB', '3.00 GiB')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return (
                f"{size} B"
                if unit == "B"
                else f"{value:.3g} {unit}"
                if value >= 100
                else f"{value:.2f} {unit}"
            )
        value /= 1024
    raise AssertionError("unreachable")


def format_shape(shape: Sequence[int] | None) -> str:
    """``[3, 4]``; ``[]`` for a scalar; ``?`` when unknown.

    >>> format_shape([3, 4]), format_shape([])
    ('[3, 4]', '[]')
    """
    return "?" if shape is None else "[" + ", ".join(str(s) for s in shape) + "]"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc: C0, DEL and C1


def escape_control(text: str) -> str:
    r"""Make control characters visible so a name cannot rewrite the terminal or split a row.

    >>> escape_control("a\tb\x1b[31m")
    'a\\tb\\x1b[31m'
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda hit: hit.group().encode("unicode_escape").decode("ascii"), text)


def _plain(value: Any) -> str:
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
    plain: Callable[[Any], str] = _plain
    style: str | None = None


@dataclass
class Report:
    """Everything a listing command shows: rows, their columns and the surroundings."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    # The whole JSON answer, built only when JSON is asked for; the rows alone if None.
    document: Callable[[], dict[str, Any]] | None = None
    title: str | None = None
    caption: str | None = None
    footer: list[str] = field(default_factory=list)
    sections: list[Report] = field(default_factory=list)  # e.g. extras after tensors


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
            env.stdout.write(escape_control(str(row["name"])) + "\n")
    elif fmt is OutputFormat.table:
        _emit_table(report, env)
    else:
        _emit_delimited(report, env, "\t" if fmt is OutputFormat.tsv else ",")


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
    console = env.console()
    from rich.table import Table

    table = Table(title=report.title, caption=report.caption, caption_justify="left")
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

    text = column.human(value) if column.human else _plain(value)
    return Text(escape_control(text))


# -- columns shared by the listing commands ---------------------------------------------


def _human_int(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else _plain(value)


def _human_bytes(value: Any) -> str:
    return format_bytes(value) if isinstance(value, int) else _plain(value)


def _human_shared(value: Any) -> str:
    if not value:
        return ""
    more = f" +{len(value) - 1}" if len(value) > 1 else ""
    return f"↔ {value[0]}{more}"


NAME = Column("name", "name", style="bold")
SHAPE = Column("shape", "shape", plain=format_shape, human=format_shape)
DTYPE = Column("dtype", "dtype")
NUMEL = Column("numel", "numel", "right", human=_human_int)
BYTES = Column("bytes", "bytes", "right", human=_human_bytes)
SHARED = Column("shared_with", "shared", human=_human_shared, style="magenta")
TENSOR_COLUMNS = [NAME, SHAPE, DTYPE, NUMEL, BYTES, SHARED]


def _human_stat(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else _human_int(value)


def _human_fraction(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, float) else _plain(value)


# `list --stats` adds these (see paramctl.stats for what each means).
STAT_COLUMNS = [
    Column("mean", "mean", "right", human=_human_stat),
    Column("std", "std", "right", human=_human_stat),
    Column("min", "min", "right", human=_human_stat),
    Column("max", "max", "right", human=_human_stat),
    Column("absmax", "max|x|", "right", human=_human_stat),
    Column("norm", "L2 norm", "right", human=_human_stat),
    Column("zeros", "zeros", "right", human=_human_fraction),
    Column("nan", "NaN", "right", human=_human_int),
    Column("inf", "Inf", "right", human=_human_int),
]
EXTRA_COLUMNS = [
    Column("name", "extra", style="bold"),
    Column("value", "value", human=lambda value: "None" if value is None else _plain(value)),
    Column("type", "type"),
]


def listing_report(listing: Listing) -> Report:
    """The report of ``paramctl list``: tensor rows, totals footer, where the names came from."""
    totals = listing.totals
    stored = format_bytes(totals.unique_bytes)
    footer = [
        f"{totals.tensors} tensors, {totals.numel:,} elements, {format_bytes(totals.bytes)}"
        + (f" ({stored} stored, sharing counted once)" if totals.unique_bytes != totals.bytes else "")
    ]
    if totals.by_dtype:
        parts = (f"{name} {t.tensors} ({format_bytes(t.bytes)})" for name, t in totals.by_dtype.items())
        footer.append("by dtype: " + ", ".join(parts))
    if listing.prefix:
        origin = "found" if listing.prefix_detected else "chosen"
        others = ", ".join(k for k in listing.top_level_keys if k != listing.prefix) or "none"
        footer.insert(
            0, f"model dict {listing.prefix!r} ({origin}); other keys: {others}; --all shows every tensor"
        )
    sections = []
    if listing.extras is not None:
        sections.append(Report(EXTRA_COLUMNS, [extra.to_dict() for extra in listing.extras]))
    with_stats = any(row.stats is not None for row in listing.rows)
    return Report(
        TENSOR_COLUMNS + STAT_COLUMNS if with_stats else TENSOR_COLUMNS,
        [row.to_dict() for row in listing.rows],
        document=listing.to_dict,
        title=f"{listing.source} ({listing.format})",
        footer=footer,
        sections=sections,
    )


def tree_view(report_rows: Sequence[dict[str, Any]], env: Environment, fmt: OutputFormat) -> None:
    """Names grouped by module path (``encoder.layers.0``), each group with subtotals."""
    root = _ModuleNode("")
    for row in report_rows:
        root.add(str(row["name"]).split("."), row)
    if fmt is OutputFormat.json:
        env.stdout.write(json.dumps(root.to_dict(), indent=2) + "\n")
    elif fmt is OutputFormat.table:
        from rich.text import Text
        from rich.tree import Tree

        tree = Tree(Text(root.label(), style="bold"))
        root.attach(tree)
        env.console().print(tree)
    else:
        for depth, node in root.walk():
            if fmt is OutputFormat.names:
                env.stdout.write(escape_control(node.path) + "\n")
            else:
                sep = "\t" if fmt is not OutputFormat.csv else ","
                fields = [
                    escape_control(node.path) or ".",
                    str(node.tensors),
                    str(node.numel),
                    str(node.bytes),
                ]
                if depth == 0:
                    env.stdout.write(sep.join(["module", "tensors", "numel", "bytes"]) + "\n")
                env.stdout.write(sep.join(fields) + "\n")


@dataclass
class _ModuleNode:
    path: str
    tensors: int = 0
    numel: int = 0
    bytes: int = 0
    children: dict[str, _ModuleNode] = field(default_factory=dict)
    row: dict[str, Any] | None = None

    def add(self, parts: list[str], row: dict[str, Any]) -> None:
        self.tensors += 1
        self.numel += int(row["numel"])
        self.bytes += int(row["bytes"])
        if not parts:
            self.row = row
            return
        head, *rest = parts
        child_path = f"{self.path}.{head}" if self.path else head
        self.children.setdefault(head, _ModuleNode(child_path)).add(rest, row)

    def label(self) -> str:
        name = self.path.rsplit(".", 1)[-1] if self.path else "(all)"
        if self.row is not None and not self.children:
            shape, dtype = format_shape(self.row["shape"]), self.row["dtype"]
            return f"{escape_control(name)}  {shape} {dtype}  {format_bytes(self.bytes)}"
        size = format_bytes(self.bytes)
        return f"{escape_control(name)}  {self.tensors} tensors, {self.numel:,} numel, {size}"

    def attach(self, tree: Tree) -> None:
        for child in self.children.values():
            child.attach(tree.add(child.label()))

    def walk(self, depth: int = 0) -> Iterable[tuple[int, _ModuleNode]]:
        yield depth, self
        for child in self.children.values():
            yield from child.walk(depth + 1)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "module": self.path,
            "tensors": self.tensors,
            "numel": self.numel,
            "bytes": self.bytes,
        }
        if self.children:
            data["children"] = [child.to_dict() for child in self.children.values()]
        return data


# -- live modules: list --model and grads ------------------------------------------------


def _human_grad(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else _plain(value)


def _human_zero_share(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, float) else _plain(value)


def _human_yes_no(value: Any) -> str:
    return "yes" if value is True else "no" if value is False else _plain(value)


LIVE_COLUMNS = [
    NAME,
    Column("kind", "kind"),
    SHAPE,
    DTYPE,
    NUMEL,
    BYTES,
    Column("requires_grad", "grad", human=_human_yes_no),
    Column("module", "module", style="cyan"),
    SHARED,
]

GRAD_COLUMNS = [
    NAME,
    SHAPE,
    Column("status", "status"),
    Column("grad_norm", "norm", "right", human=_human_grad),
    Column("grad_mean", "mean", "right", human=_human_grad),
    Column("grad_max_abs", "max |g|", "right", human=_human_grad),
    Column("grad_zeros", "zeros", "right", human=_human_zero_share),
    SHARED,
]


def live_listing_report(listing: LiveListing) -> Report:
    """The report of ``list --model``: the module's own names, kinds and owners."""
    rows = [row.to_dict() for row in listing.rows]
    params = [row for row in listing.rows if row.kind == "parameter"]
    numel, seen = 0, set[str]()
    for row in params:
        if row.name not in seen:  # a shared parameter counts once
            numel += row.numel or 0
            seen.update((row.name, *row.shared_with))
    footer = [
        f"{len(params)} parameter names ({numel:,} distinct elements), "
        f"{len(listing.rows) - len(params)} buffer names"
    ]
    if listing.inputs:
        footer.append(f"dry forward pass with {listing.inputs}")
    if listing.materialized:
        footer.append(f"materialized by it: {', '.join(listing.materialized)}")
    if listing.lazy:
        footer.append(
            f"{len(listing.lazy)} uninitialized (lazy) tensors; --input-shape gives them their shapes"
        )
    title = listing.origin + (f", loaded from {listing.loaded_from}" if listing.loaded_from else "")
    return Report(LIVE_COLUMNS, rows, document=listing.to_dict, title=title, footer=footer)


def grads_report(probe: GradProbe) -> Report:
    """The report of ``paramctl grads``: a row per distinct parameter, with its gradient."""
    counts = probe.counts()
    seed = f", seed {probe.seed}" if probe.seed is not None else ""
    footer = [
        f"loss {probe.loss} = {probe.loss_value:.6g} with {probe.inputs} ({probe.mode} mode{seed})",
        f"{counts['ok']} with gradient, {counts['unused']} unused (no gradient reached them), "
        f"{counts['frozen']} frozen (requires_grad=False)",
    ]
    return Report(
        GRAD_COLUMNS,
        [row.to_dict() for row in probe.rows],
        document=probe.to_dict,
        title=f"gradients of {probe.source}" if probe.source else "gradients",
        footer=footer,
    )


# -- paramctl init ------------------------------------------------------------------------


def _human_names(value: Any) -> str:
    if not value:
        return ""
    return ", ".join(str(v) for v in value[:2]) + (f" +{len(value) - 2}" if len(value) > 2 else "")


ACTION = Column("action", "change")
INIT_COLUMNS = [
    NAME,
    SHAPE,
    DTYPE,
    ACTION,
    Column("mean_before", "mean before", "right", human=_human_stat),
    Column("std_before", "std before", "right", human=_human_stat),
    Column("mean_after", "mean after", "right", human=_human_stat),
    Column("std_after", "std after", "right", human=_human_stat),
    Column("shared_with", "same tensor", human=_human_names, style="magenta"),
    Column("also_changes", "also changes", human=_human_names, style="yellow"),
]
PLAN_COLUMNS = [
    NAME,
    SHAPE,
    DTYPE,
    ACTION,
    Column("layer", "inferred layer"),
    Column("shared_with", "same tensor", human=_human_names, style="magenta"),
    Column("also_changes", "also changes", human=_human_names, style="yellow"),
]
SKIPPED_COLUMNS = [Column("name", "skipped", style="bold"), Column("reason", "reason")]


def _tensors(count: int) -> str:
    return f"{count} tensor" if count == 1 else f"{count} tensors"


def _changed_bytes(entries: Sequence[Any]) -> int:
    return sum(int(entry.nbytes) for entry in entries)


def _shared_notes(planned: Sequence[Any]) -> list[str]:
    notes = []
    for tensor in planned:
        if tensor.also_changes:
            others = ", ".join(tensor.also_changes)
            notes.append(f"{tensor.name} shares its storage with {others}: they change too")
    return notes


def plan_report(plan: Any) -> Report:
    """``paramctl init --dry-run``: what each selected tensor would get; nothing is read."""
    rows = []
    for tensor in plan.tensors:
        row = tensor.to_dict()
        row["layer"] = f"{tensor.guess.layer} ({tensor.guess.why})" if tensor.guess else ""
        rows.append(row)
    size = format_bytes(_changed_bytes([t.entry for t in plan.tensors]))
    footer = [
        f"would change {_tensors(len(plan.tensors))} ({size}): {plan.change.describe()}; nothing written"
    ]
    footer += _shared_notes(plan.tensors)
    sections = [Report(SKIPPED_COLUMNS, [s.to_dict() for s in plan.skipped])] if plan.skipped else []
    return Report(
        PLAN_COLUMNS,
        rows,
        document=plan.to_dict,
        title=f"{plan.checkpoint.label} ({plan.checkpoint.format}): plan",
        footer=footer,
        sections=sections,
    )


def init_report(result: InitResult) -> Report:
    """``paramctl init``: the changed tensors with mean/std before and after."""
    planned = [row.planned for row in result.changed]
    size = format_bytes(_changed_bytes([t.entry for t in planned]))
    footer = [f"changed {_tensors(len(result.changed))} ({size}) → {result.output} ({result.format})"]
    footer += _shared_notes(planned)
    if result.plan.skipped:
        footer.append(
            f"skipped {len(result.plan.skipped)}: " + ", ".join(s.name for s in result.plan.skipped)
        )
    if not result.provenance_recorded:
        footer.append("the legacy torch format has no metadata: provenance not recorded")
    sections = (
        [Report(SKIPPED_COLUMNS, [s.to_dict() for s in result.plan.skipped])] if result.plan.skipped else []
    )
    return Report(
        INIT_COLUMNS,
        [row.to_dict() for row in result.changed],
        document=result.to_dict,
        title=f"{result.source} → {result.output}",
        footer=footer,
        sections=sections,
    )
