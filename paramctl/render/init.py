"""How ``paramctl init`` looks: the plan of ``--dry-run``, and the report of what changed.

The report goes where :class:`~paramctl.change.destination.Destination` says: to stdout,
or to stderr when stdout carries the checkpoint. On a terminal, a change of more than
:data:`SUMMARY_ABOVE` tensors is told in one line (``--report`` gives the table).

>>> tensors(1), tensors(3)
('1 tensor', '3 tensors')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from paramctl.render.columns import DTYPE, NAME, SHAPE, human_names, human_stat, ranked
from paramctl.render.engine import Column, Environment, OutputFormat, Report
from paramctl.units import format_bytes, plural

if TYPE_CHECKING:
    from paramctl.change import InitResult, Plan
    from paramctl.render.several import Output

# More changed tensors than this make a table nobody reads on a terminal: one line instead.
SUMMARY_ABOVE = 20

ACTION = Column("action", "change", fold="words", drop_rank=1)
SAME_TENSOR = Column(
    "shared_with", "same tensor", human=human_names, style="magenta", fold="words", drop_rank=2
)
ALSO_CHANGES = Column(
    "also_changes", "also changes", human=human_names, style="yellow", fold="words", drop_rank=2
)
INIT_COLUMNS = [
    NAME,
    *ranked([SHAPE, DTYPE], {"shape": 4, "dtype": 6}),
    ACTION,
    Column("mean_before", "mean before", "right", human=human_stat, drop_rank=5),
    Column("std_before", "std before", "right", human=human_stat, drop_rank=3),
    Column("mean_after", "mean after", "right", human=human_stat, drop_rank=5),
    Column("std_after", "std after", "right", human=human_stat, drop_rank=3),
    SAME_TENSOR,
    ALSO_CHANGES,
]
PLAN_COLUMNS = [
    NAME,
    *ranked([SHAPE, DTYPE], {"shape": 4, "dtype": 6}),
    ACTION,
    Column("layer", "inferred layer", fold="words", drop_rank=3),
    SAME_TENSOR,
    ALSO_CHANGES,
]
SKIPPED_COLUMNS = [
    Column("name", "skipped", style="bold", fold="name"),
    Column("reason", "reason", fold="words"),
]


def tensors(count: int) -> str:
    return plural(count, "tensor")


def _changed_bytes(entries: Sequence[Any]) -> int:
    return sum(int(entry.nbytes) for entry in entries)


def _shared_notes(planned: Sequence[Any]) -> list[str]:
    notes = []
    for tensor in planned:
        if tensor.also_changes:
            others = ", ".join(tensor.also_changes)
            notes.append(f"{tensor.name} shares its storage with {others}: they change too")
    return notes


def _skipped(plan: Plan) -> list[Report]:
    rows = [s.to_dict() for s in plan.skipped]
    return [Report(SKIPPED_COLUMNS, rows, kind="skipped")] if plan.skipped else []


def plan_report(plan: Plan) -> Report:
    """``paramctl init --dry-run``: what each selected tensor would get; nothing is read."""
    rows = []
    for tensor in plan.tensors:
        row = tensor.to_dict()
        row["layer"] = f"{tensor.guess.layer} ({tensor.guess.why})" if tensor.guess else ""
        rows.append(row)
    size = format_bytes(_changed_bytes([t.entry for t in plan.tensors]))
    footer = [
        f"would change {tensors(len(plan.tensors))} ({size}): {plan.change.describe()}; nothing written"
    ]
    footer += _shared_notes(plan.tensors)
    return Report(
        PLAN_COLUMNS,
        rows,
        document=plan.to_dict,
        title=f"{plan.checkpoint.label} ({plan.checkpoint.format}): plan",
        footer=footer,
        sections=_skipped(plan),
        rows_key="tensors",
    )


def _written(result: InitResult, as_built: bool) -> str:
    where = f"→ {result.output} ({result.format})"
    if as_built:
        return f"wrote {tensors(len(result.changed))} as built {where}"
    size = format_bytes(_changed_bytes([row.planned.entry for row in result.changed]))
    return f"changed {tensors(len(result.changed))} ({size}) with {result.plan.change.describe()} {where}"


def _aside(result: InitResult) -> list[str]:
    notes = _shared_notes([row.planned for row in result.changed])
    if result.written is not None:
        rewritten = ", ".join(result.written.files_written) or "none"
        notes.append(f"rewrote {rewritten}: {format_bytes(result.written.bytes_written)} written")
    if not result.provenance_recorded:
        notes.append(f"the {result.format} format has no place for metadata: provenance not recorded")
    return notes


def init_report(result: InitResult, *, as_built: bool = False) -> Report:
    """``paramctl init``: the changed tensors with mean/std before and after. ``as_built``:
    a live module written as it was built, with no change to its values. Skipped tensors
    are a section of their own, each with its reason."""
    return Report(
        INIT_COLUMNS,
        [row.to_dict() for row in result.changed],
        document=result.to_dict,
        title=f"{result.source} → {result.output}",
        footer=[_written(result, as_built), *_aside(result)],
        sections=_skipped(result.plan),
        footer_as_notes=True,
        rows_key="tensors",
    )


def init_summary(result: InitResult, *, as_built: bool = False) -> list[str]:
    """The one line a terminal gets for a big change (and any notes that must be said).

    >>> from types import SimpleNamespace as Obj
    >>> entry = Obj(nbytes=4 << 20)
    >>> plan = Obj(change=Obj(describe=lambda: "normal(std=0.02)"), skipped=[])
    >>> result = Obj(changed=[Obj(planned=Obj(entry=entry, also_changes=()))] * 80, seed=1234,
    ...              output="out.pt", format="zip", plan=plan, provenance_recorded=True, written=None)
    >>> init_summary(result)
    ['changed 80 tensors (320 MiB) with normal(std=0.02), seed 1234 → out.pt; --report for the table']
    """
    if as_built:
        line = _written(result, True)
    else:
        size = format_bytes(_changed_bytes([row.planned.entry for row in result.changed]))
        seed = f", seed {result.seed}" if result.seed is not None else ""
        line = f"changed {tensors(len(result.changed))} ({size}) with {result.plan.change.describe()}{seed}"
        line += f" → {result.output}"
    lines = [f"{line}; --report for the table", *_aside(result)]
    skipped = result.plan.skipped
    if skipped:
        reasons = "; ".join(f"{s.name} ({s.reason})" for s in skipped[:5])
        lines.append(f"skipped {tensors(len(skipped))}: {reasons}" + (" ..." if len(skipped) > 5 else ""))
    return lines


def brief_report(count: int, output: Output, requested: OutputFormat | None, full_report: bool) -> bool:
    """Whether a change of ``count`` tensors is told in one line: on a terminal, with no
    ``--format`` and no ``--report``, when it is more than :data:`SUMMARY_ABOVE`."""
    return requested is None and not full_report and output.env.stdout_isatty and count > SUMMARY_ABOVE


def emit_init(
    result: InitResult,
    output: Output,
    env: Environment,
    *,
    requested: OutputFormat | None,
    seed_given: bool,
    as_built: bool = False,
    materialized: Sequence[str] = (),
    full_report: bool = False,
) -> None:
    """The report into ``output``, after notes of the seed drawn when none was given (to
    repeat the run) and of the lazy tensors a dry forward pass ``materialized``. On a
    terminal, without ``full_report`` or a ``--format``, a big change gets
    :func:`init_summary` instead."""
    report_env = output.env
    brief = brief_report(len(result.changed), output, requested, full_report)
    if result.seed is not None and not seed_given and not brief:  # the summary says the seed
        env.note(f"seed {result.seed} (pass --seed {result.seed} to repeat)")
    if materialized:
        env.note(f"materialized by a dry forward pass: {', '.join(materialized)}")
    if not brief:
        output.add(result.source, init_report(result, as_built=as_built))
        return
    console = report_env.console()
    for line in init_summary(result, as_built=as_built):
        console.print(line, markup=False, highlight=False)
