"""How ``paramctl init`` looks: the plan of ``--dry-run``, and the report of what changed.

The report goes where :class:`~paramctl.change.destination.Destination` says: to stdout,
or to stderr when stdout carries the checkpoint.

>>> tensors(1), tensors(3)
('1 tensor', '3 tensors')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from paramctl.render.columns import DTYPE, NAME, SHAPE, human_names, human_stat
from paramctl.render.engine import Column, Environment, OutputFormat, Report, emit
from paramctl.units import format_bytes

if TYPE_CHECKING:
    from paramctl.change import InitResult, Plan

ACTION = Column("action", "change")
SAME_TENSOR = Column("shared_with", "same tensor", human=human_names, style="magenta")
ALSO_CHANGES = Column("also_changes", "also changes", human=human_names, style="yellow")
INIT_COLUMNS = [
    NAME,
    SHAPE,
    DTYPE,
    ACTION,
    Column("mean_before", "mean before", "right", human=human_stat),
    Column("std_before", "std before", "right", human=human_stat),
    Column("mean_after", "mean after", "right", human=human_stat),
    Column("std_after", "std after", "right", human=human_stat),
    SAME_TENSOR,
    ALSO_CHANGES,
]
PLAN_COLUMNS = [NAME, SHAPE, DTYPE, ACTION, Column("layer", "inferred layer"), SAME_TENSOR, ALSO_CHANGES]
SKIPPED_COLUMNS = [Column("name", "skipped", style="bold"), Column("reason", "reason")]


def tensors(count: int) -> str:
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


def _skipped(plan: Plan) -> list[Report]:
    return [Report(SKIPPED_COLUMNS, [s.to_dict() for s in plan.skipped])] if plan.skipped else []


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
    )


def init_report(result: InitResult, *, as_built: bool = False) -> Report:
    """``paramctl init``: the changed tensors with mean/std before and after. ``as_built``:
    a live module written as it was built, with no change to its values."""
    planned = [row.planned for row in result.changed]
    size = format_bytes(_changed_bytes([t.entry for t in planned]))
    where = f"→ {result.output} ({result.format})"
    footer = [
        f"wrote {len(result.changed)} tensors as built {where}"
        if as_built
        else f"changed {tensors(len(result.changed))} ({size}) {where}"
    ]
    if result.written is not None:
        rewritten = ", ".join(result.written.files_written) or "none"
        footer.append(f"rewrote {rewritten}: {format_bytes(result.written.bytes_written)} written")
    footer += _shared_notes(planned)
    if result.plan.skipped:
        footer.append(
            f"skipped {len(result.plan.skipped)}: " + ", ".join(s.name for s in result.plan.skipped)
        )
    if not result.provenance_recorded:
        footer.append(f"the {result.format} format has no place for metadata: provenance not recorded")
    return Report(
        INIT_COLUMNS,
        [row.to_dict() for row in result.changed],
        document=result.to_dict,
        title=f"{result.source} → {result.output}",
        footer=footer,
        sections=_skipped(result.plan),
        footer_as_notes=True,
    )


def emit_init(
    result: InitResult,
    requested: OutputFormat | None,
    env: Environment,
    *,
    seed_given: bool,
    report_on_stderr: bool,
    as_built: bool = False,
    materialized: Sequence[str] = (),
) -> None:
    """The report, after notes of the seed drawn when none was given (to repeat the run) and
    of the lazy tensors a dry forward pass ``materialized``."""
    if result.seed is not None and not seed_given:
        env.note(f"seed {result.seed} (pass --seed {result.seed} to repeat)")
    if materialized:
        env.note(f"materialized by a dry forward pass: {', '.join(materialized)}")
    report_env = env.on_stderr() if report_on_stderr else env
    emit(init_report(result, as_built=as_built), report_env.resolve(requested), report_env)
