"""``paramctl init --model``: initialize tensors in a live module, then write them back.

With a live module, ``default`` is exact: each selected tensor's owning module runs its own
``reset_parameters()``, instead of a rule inferred from names and shapes. Lazy layers are
materialized first by a dry forward pass (``--input-shape``), which is the deferred
initialization of the lessons, from the command line.

Writing goes through the same engine as ``paramctl init`` on a file, so the same promises
hold: everything not changed comes out byte-identical, the write is atomic, provenance is
recorded. The base checkpoint is the file given (its extras, optimizer state and metadata
kept); a model built from code with no file, or a trusted full pickle, is first saved as a
plain ``state_dict`` in a scratch file, which then serves as the base.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from paramctl.atomic import scratch_file
from paramctl.change import (
    Change,
    ChangedTensor,
    Edit,
    InitResult,
    Plan,
    PlannedTensor,
    Refusals,
    Skipped,
    copy_source,
    draw_seed,
    edit_,
    fill_,
    generator_for,
    incompatibility,
    mean_std,
    plan_change,
    provenance_record,
    save_changes,
)
from paramctl.checkpoint import Checkpoint, model_view
from paramctl.errors import UnsafePickle, UsageError
from paramctl.formats import STDIN, format_named, output_format, read_checkpoint
from paramctl.live.collection import as_entry, reset_method, reset_with_owners
from paramctl.live.inputs import InputSpec, materialize, seeded
from paramctl.live.model import LiveModel, ModelSource
from paramctl.live.tensors import is_lazy, owner_of
from paramctl.schemes.catalog import DefaultScheme, InitScheme
from paramctl.select import Selection, select


@dataclass(frozen=True)
class LiveChange:
    """What ``init --model`` does: a scheme (``default`` = each owner's ``reset_parameters()``)
    and/or an edit. Neither means: write the module as built (and materialized)."""

    scheme: InitScheme | None = None
    edit: Edit | None = None

    def describe(self) -> str:
        parts = []
        if isinstance(self.scheme, DefaultScheme):
            parts.append("default: each module's reset_parameters()")
        elif self.scheme is not None:
            parts.append(self.scheme.describe())
        if self.edit is not None:
            parts.append(self.edit.describe())
        return ", then ".join(parts) or "as built"

    @property
    def changes_values(self) -> bool:
        return self.scheme is not None or self.edit is not None


@dataclass(frozen=True)
class _Described(Change):
    """A live change in a :class:`~paramctl.change.plan.Plan`, for its reports: the values come
    from the module, so the plan only needs to say what was done."""

    text: str = ""

    def __post_init__(self) -> None:  # nothing to check: the live change was checked
        pass

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Target:
    """One distinct tensor of the module to change, under all its selected names."""

    names: tuple[str, ...]
    tensor: torch.Tensor
    owner: nn.Module
    action: str


@dataclass(kw_only=True)
class LiveInitResult(InitResult):
    """What ``init --model`` did: ``paramctl init``'s result, plus the model it came from,
    the change as the live path describes it, and the lazy parameters it materialized."""

    model: str
    change: str
    materialized: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = {**super().to_dict(), "change": self.change}
        # init's fields, with the model after the file and what was materialized after the seed.
        extra = {"file": ("model", self.model), "seed": ("materialized", self.materialized)}
        out: dict[str, Any] = {}
        for key, value in data.items():
            out[key] = value
            if key in extra:
                out[extra[key][0]] = extra[key][1]
        return out


@dataclass
class LivePlan:
    """A checked live change, before anything is written: ``--dry-run`` shows its plan."""

    live: LiveModel
    base: Checkpoint
    plan: Plan
    targets: list[_Target]
    change: LiveChange
    materialized: list[str]
    seed: int | None


def init_model(
    model: ModelSource,
    change: LiveChange,
    destination: str | os.PathLike[str] | BinaryIO | None,
    *,
    selection: Selection = Selection(),
    inputs: InputSpec = InputSpec(),
    seed: int | None = None,
    to: str | None = None,
    backup: str | os.PathLike[str] | None = None,
    skip_incompatible: bool = False,
    on_globals: Any = None,
    output_label: str | None = None,
) -> LiveInitResult | LivePlan:
    """Build or load the live module, change the selected tensors in it, and write the file.

    ``destination`` ``None`` is a dry run: the checked :class:`LivePlan` is returned and
    nothing is changed or written. Otherwise the result says what changed.

    Seeds: one seed (``seed``, or a fresh one, reported) is used for building the module,
    for the dry forward pass and for the change. Random schemes draw from
    ``torch.Generator().manual_seed(seed)`` over the tensors in module order, as on a file;
    ``default`` seeds torch's global generator and runs ``reset_parameters()`` in module
    order, so ``default`` over everything equals ``torch.manual_seed(seed); factory()``.
    """
    used_seed = draw_seed(seed)
    with scratch_file() as (scratch, scratch_path), scratch_file() as (values, values_path):
        with seeded(used_seed):
            live = model.open(on_globals)
            materialized = materialize(live.module, inputs.make(live.module)) if inputs else []
        base = _base_checkpoint(model, live, scratch, scratch_path)
        from_file = base.path != scratch_path
        view = model_view(base, key=model.key if from_file else None)
        chosen = select(view.entries, selection)
        if not change.changes_values and from_file:
            raise UsageError("nothing to do: give --scheme, --set, --scale or --add")
        targets, skipped = _targets(live.module, [e.name for e in chosen], change, skip_incompatible)
        plan = _plan(base, view, targets, skipped, change, selection)
        if destination is None:
            return LivePlan(live, base, plan, targets, change, materialized, used_seed)
        changed = _change(plan, targets, change, used_seed)
        path = destination if isinstance(destination, str | os.PathLike) else None
        target_format = output_format(path, to, base.format)
        record = provenance_record([_provenance(live, change, plan, used_seed, materialized)])
        steps = _copy_steps(base, view, plan, targets if change.changes_values else [], values, values_path)
        save_changes(
            base, steps, destination, to=target_format, stats=False, provenance=record, backup=backup
        )
    return LiveInitResult(
        source=live.loaded_from or live.origin,
        output=output_label or (str(path) if path is not None else "<stdout>"),
        format=target_format,
        plan=plan,
        changed=changed,
        model=live.origin,
        change=change.describe(),
        seed=used_seed if _uses_seed(change, materialized, live) else None,
        materialized=materialized,
        provenance_recorded=format_named(target_format).holds.provenance,
    )


def _uses_seed(change: LiveChange, materialized: list[str], live: LiveModel) -> bool:
    """Whether the output depends on the seed: a random or default scheme, a module built
    from code (its own random init) or a materialization."""
    scheme = change.scheme
    random_scheme = scheme is not None and (isinstance(scheme, DefaultScheme) or scheme.uses_generator)
    return random_scheme or bool(materialized) or live.loaded_from is None


def _base_checkpoint(
    model: ModelSource, live: LiveModel, scratch: BinaryIO, scratch_path: Path
) -> Checkpoint:
    """The file the output is a changed copy of: the checkpoint given, or the module's
    ``state_dict`` saved now (before any change) when there is no file to keep."""
    if model.source is not None:
        try:
            base = read_checkpoint(model.source)
        except UnsafePickle:
            base = None  # a trusted full pickle: its state_dict is what gets written
        if base is not None:
            if model.source == STDIN:
                base.label = "<stdin>"
            return base
    if any(is_lazy(t) for t in live.module.state_dict(keep_vars=True).values()):
        lazy = [n for n, t in live.module.state_dict(keep_vars=True).items() if is_lazy(t)]
        raise UsageError(
            f"{', '.join(lazy[:4])} are lazy and have no shape yet: give --input-shape to materialize them"
        )
    state = {name: tensor.detach() for name, tensor in live.module.state_dict().items()}
    torch.save(state, scratch)  # a file object, so the archive is named "archive", not after the file
    scratch.flush()
    base = read_checkpoint(scratch_path)
    base.label = live.origin
    return base


def _targets(
    module: nn.Module, names: Sequence[str], change: LiveChange, skip_incompatible: bool
) -> tuple[list[_Target], list[Skipped]]:
    """The distinct tensors behind the selected names, checked against the change."""
    state = module.state_dict(keep_vars=True)
    grouped: dict[int, list[str]] = {}
    for name in names:
        if name not in state:
            raise UsageError(f"{name} is in the checkpoint but not in the model's state_dict")
        grouped.setdefault(id(state[name]), []).append(name)
    targets: list[_Target] = []
    refusals = Refusals(skip_incompatible)
    for group in grouped.values():
        tensor = state[group[0]]
        owner, _ = owner_of(module, group[0])
        reason = _reason(group[0], tensor, owner, change) if change.changes_values else None
        if reason is not None:
            for name in group:
                refusals.refuse(name, reason)
            continue
        targets.append(_Target(tuple(group), tensor, owner, _action(owner, change)))
    refusals.check("--skip-incompatible leaves them unchanged")
    return targets, refusals.skipped


def _reason(name: str, tensor: torch.Tensor, owner: nn.Module, change: LiveChange) -> str | None:
    if is_lazy(tensor):
        return "lazy, no shape yet (give --input-shape to materialize it)"
    if isinstance(change.scheme, DefaultScheme):
        if reset_method(owner) is None:
            return f"{type(owner).__name__} has no reset_parameters()"
        return incompatibility(as_entry(name, tensor), None, None, change.edit)
    return incompatibility(as_entry(name, tensor), change.scheme, None, change.edit)


def _action(owner: nn.Module, change: LiveChange) -> str:
    if not change.changes_values:
        return "as built"
    parts = []
    if isinstance(change.scheme, DefaultScheme):
        method = (
            "reset_parameters" if callable(getattr(owner, "reset_parameters", None)) else "_reset_parameters"
        )
        parts.append(f"{type(owner).__name__}.{method}()")
    elif change.scheme is not None:
        parts.append(change.scheme.describe())
    if change.edit is not None:
        parts.append(change.edit.describe())
    return ", then ".join(parts)


def _plan(
    base: Checkpoint,
    view: Any,
    targets: list[_Target],
    skipped: list[Skipped],
    change: LiveChange,
    selection: Selection,
) -> Plan:
    """The plan as ``init --dry-run`` shows it: one row per distinct tensor, its action."""
    entries = {entry.name: entry for entry in view.entries}
    rows = [
        PlannedTensor(entries[t.names[0]], t.action, same_as=t.names[1:])
        for t in targets
        if t.names[0] in entries
    ]
    described = _Described(text=change.describe())
    return Plan(base, described, rows, skipped, selection.describe(), view.prefix_name)


def _change(plan: Plan, targets: list[_Target], change: LiveChange, seed: int) -> list[ChangedTensor]:
    """Change the live tensors (:func:`_apply`), measuring each planned one before and after."""
    tensors = {t.names[0]: t.tensor for t in targets}
    shown = [(planned, tensors[planned.name].detach()) for planned in plan.tensors]
    before = [mean_std(tensor) for _, tensor in shown]
    _apply(targets, change, seed)
    return [
        ChangedTensor(planned, stats, mean_std(tensor))
        for (planned, tensor), stats in zip(shown, before, strict=True)
    ]


def _apply(targets: list[_Target], change: LiveChange, seed: int) -> None:
    """Change the live tensors: the scheme (or each owner's reset), then the edit."""
    if isinstance(change.scheme, DefaultScheme):
        with seeded(seed):
            reset_with_owners([(t.names[0], t.tensor, t.owner) for t in targets])
    elif change.scheme is not None:
        generator = generator_for(seed) if change.scheme.uses_generator else None
        for target in targets:
            fill_(target.tensor, change.scheme, generator)
    if change.edit is not None:
        for target in targets:
            edit_(target.tensor, change.edit)


def _copy_steps(
    base: Checkpoint, view: Any, shown: Plan, targets: list[_Target], values: BinaryIO, values_path: Path
) -> list[tuple[Plan, None]]:
    """The engine's plan that writes the changed tensors into the base checkpoint (none when
    nothing changed): copies of their new values, saved first in a scratch file of their own."""
    if not targets:
        return []
    torch.save({name: t.tensor.detach() for t in targets for name in t.names}, values)
    values.flush()
    saved = read_checkpoint(values_path)
    saved.label = "the live module"
    entries = {entry.name: entry for entry in view.entries}
    chosen = [entries[name] for t in targets for name in t.names if name in entries]
    plan = plan_change(base, chosen, Change(copy=copy_source(chosen, saved)), context=view.entries)
    plan.selection, plan.prefix = shown.selection, shown.prefix
    return [(plan, None)]


def _provenance(
    live: LiveModel, change: LiveChange, plan: Plan, seed: int, materialized: list[str]
) -> dict[str, Any]:
    step: dict[str, Any] = {
        "model": live.origin,
        "change": change.describe(),
        "selection": plan.selection,
        "tensors": len(plan.tensors),
        "seed": seed,
    }
    if len(plan.tensors) <= 64:
        step["names"] = [t.name for t in plan.tensors]
    if materialized:
        step["materialized"] = materialized
    if plan.prefix:
        step["prefix"] = plan.prefix
    return step
