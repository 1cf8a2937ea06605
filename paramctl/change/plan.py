"""Planning a change: which tensors it fills, with what, and which other names see it.

:func:`plan_change` checks a :class:`~paramctl.change.vocabulary.Change` against the
selected entries (dtypes, dimensions, shapes), resolves ``default`` per tensor, folds names
that are one tensor (a tie, by :func:`paramctl.storage.identity`) and finds the unselected
names whose bytes a changed storage reaches too (:func:`paramctl.storage.overlapping`). It
reads no values: ``--dry-run`` shows this plan.

>>> from paramctl.checkpoint import TensorEntry
>>> from paramctl.schemes.catalog import make_scheme
>>> bias = TensorEntry("0.bias", ("0", "bias"), (4,), "float32", (1,), "1")
>>> incompatibility(bias, make_scheme("xavier_uniform"), None, None)
'xavier_uniform needs a 2-D or more tensor, this one is 1-D'
>>> value_kind("bfloat16"), value_kind("int64"), value_kind("bool")
('float', 'int', 'bool')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from paramctl.change.vocabulary import Change, Edit, some_names
from paramctl.checkpoint import Checkpoint, TensorEntry, join_path
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import IncompatibleTensors
from paramctl.schemes.catalog import DefaultScheme, InitScheme, TorchScheme
from paramctl.schemes.defaults import LayerGuess, infer_defaults
from paramctl.storage import ViewIdentity, by_storage, covers_storage, identity, overlapping

ValueKind = Literal["float", "complex", "int", "bool"]
# Names a plan records one by one in the output's provenance, at most.
_RECORDED_NAMES = 64
_CANNOT_INFER = "cannot infer the layer of"


def value_kind(dtype: str) -> ValueKind:
    """How values of ``dtype`` may be filled."""
    info = lookup_dtype(dtype)
    if info.is_floating:
        return "float"
    if info.is_complex:
        return "complex"
    return "bool" if info.name == "bool" else "int"


def _int_range(dtype: str) -> tuple[int, int]:
    bits = lookup_dtype(dtype).itemsize * 8
    if dtype.startswith("uint"):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor to change: what fills it, and which other names see the change."""

    entry: TensorEntry
    action: str
    scheme: InitScheme | None = None
    source: TensorEntry | None = None
    edit: Edit | None = None
    guess: LayerGuess | None = None
    # Selected names that are this very tensor (a tie): changed once, with it.
    same_as: tuple[str, ...] = ()
    # Names outside the selection whose bytes this changes (shared storage).
    also_changes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def shared_with(self) -> tuple[str, ...]:
        return self.same_as + self.also_changes

    def to_dict(self) -> dict[str, Any]:
        row = self.entry.to_dict()
        row["action"] = self.action
        if self.guess is not None:
            row["inferred"] = self.guess.to_dict()
        row["shared_with"] = list(self.same_as)
        row["also_changes"] = list(self.also_changes)
        return row


@dataclass(frozen=True)
class Skipped:
    """A selected tensor left unchanged (``--skip-incompatible``, or missing from ``--from``)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason}


@dataclass
class Refusals:
    """Tensors a change does not fit: skipped (``skip``, as ``--skip-incompatible``), or
    gathered by reason into one error that names them all.

    >>> refusals = Refusals(skip=False)
    >>> refusals.refuse("0.bias", "needs a 2-D tensor")
    >>> refusals.refuse("2.bias", "needs a 2-D tensor")
    >>> refusals.check("nothing was changed")
    Traceback (most recent call last):
    paramctl.errors.IncompatibleTensors: needs a 2-D tensor: 0.bias, 2.bias (nothing was changed)
    """

    skip: bool
    skipped: list[Skipped] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def refuse(self, name: str, reason: str, *, problem: str | None = None) -> None:
        """``reason`` is what a skipped tensor records; ``problem`` (the reason unless
        given) is the heading the error lists the tensor under."""
        if self.skip:
            self.skipped.append(Skipped(name, reason))
        else:
            self.problems.setdefault(problem or reason, []).append(name)

    def check(self, remedy: str) -> None:
        """Raise :class:`IncompatibleTensors` if any tensor was refused, ending in ``remedy``."""
        if self.problems:
            detail = "; ".join(f"{reason}: {some_names(names)}" for reason, names in self.problems.items())
            raise IncompatibleTensors(f"{detail} ({remedy})")


@dataclass
class Plan:
    """Everything :func:`~paramctl.change.fill.apply_plan` will do, checked, before any
    value is read."""

    checkpoint: Checkpoint
    change: Change
    tensors: list[PlannedTensor]
    skipped: list[Skipped] = field(default_factory=list)
    selection: str = "everything"
    prefix: str = ""

    @property
    def uses_generator(self) -> bool:
        """Whether the result depends on the seed."""
        return any(t.scheme is not None and t.scheme.uses_generator for t in self.tensors)

    def fresh_storages(self) -> set[str]:
        """Storages whose first write covers all their bytes: no need to copy them first."""
        groups = by_storage(t.entry for t in self.tensors)
        return {
            key for key, (first, *_) in groups.items() if covers_storage(first, self.checkpoint.storages[key])
        }

    def provenance(self, seed: int | None) -> dict[str, Any]:
        """What the output's metadata records about this change."""
        step: dict[str, Any] = {"selection": self.selection, "tensors": len(self.tensors)}
        if self.prefix:
            step["prefix"] = self.prefix
        if len(self.tensors) <= _RECORDED_NAMES:
            step["names"] = [t.name for t in self.tensors]
        scheme = self.change.scheme
        if scheme is not None:
            step["scheme"] = scheme.describe()
            step["params"] = scheme.parameters()
            if isinstance(scheme, DefaultScheme):
                step["resolved"] = {t.name: t.action for t in self.tensors[:_RECORDED_NAMES]}
        if self.uses_generator:
            step["seed"] = seed
        if self.change.copy is not None:
            step["from"] = self.change.copy.label
            if self.change.copy.rename:
                step["rename"] = [f"{p}={r}" for p, r in self.change.copy.rename]
        if self.change.edit is not None:
            step["edit"] = self.change.edit.to_dict()
        return step

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.checkpoint.label,
            "format": self.checkpoint.format,
            "prefix": self.prefix,
            "change": self.change.describe(),
            "selection": self.selection,
            "tensors": [t.to_dict() for t in self.tensors],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def plan_change(
    checkpoint: Checkpoint,
    targets: Sequence[TensorEntry],
    change: Change,
    *,
    context: Sequence[TensorEntry] | None = None,
    skip_incompatible: bool = False,
    selection: str = "everything",
    prefix: str = "",
) -> Plan:
    """Check ``change`` against ``targets`` and say what will happen to each.

    ``context`` is every tensor of the model view (names as the targets have them): the
    ``default`` scheme reads siblings there, and "also changes" names come from it.
    A tensor the change cannot fill (an integer tensor and a random scheme, a 1-D tensor
    and xavier, a layer ``default`` cannot infer) is an :class:`IncompatibleTensors` error
    naming them all, or, with ``skip_incompatible``, a :class:`Skipped` entry.
    """
    context = list(context if context is not None else targets)
    guesses = infer_defaults(context) if isinstance(change.scheme, DefaultScheme) else {}
    planned: list[PlannedTensor] = []
    refusals = Refusals(skip_incompatible)
    by_identity: dict[ViewIdentity, int] = {}
    for entry in targets:
        same = by_identity.get(identity(entry))
        if same is not None:
            planned[same] = replace(planned[same], same_as=(*planned[same].same_as, entry.name))
            continue
        row = _plan_tensor(entry, change, guesses, refusals)
        if row is not None:
            by_identity[identity(entry)] = len(planned)
            planned.append(row)
    hint = "--dry-run --skip-incompatible shows why; " if _CANNOT_INFER in refusals.problems else ""
    refusals.check(f"{hint}--skip-incompatible leaves them unchanged")
    tensors = _with_shared(checkpoint, planned, context)
    return Plan(checkpoint, change, tensors, refusals.skipped, selection, prefix)


def _plan_tensor(
    entry: TensorEntry, change: Change, guesses: Mapping[str, LayerGuess], refusals: Refusals
) -> PlannedTensor | None:
    """What fills ``entry``, or ``None`` (and a refusal) when nothing can."""
    scheme, guess, source = change.scheme, None, None
    if isinstance(scheme, DefaultScheme):
        guess = guesses.get(entry.name)
        scheme = guess.scheme if guess is not None else None
        if scheme is None:
            why = guess.why if guess is not None else "not in the model"
            refusals.refuse(entry.name, f"cannot infer its layer ({why})", problem=_CANNOT_INFER)
            return None
    if change.copy is not None:
        source = change.copy.pairs.get(entry.name)
        if source is None:
            refusals.skipped.append(Skipped(entry.name, f"not in {change.copy.label}"))
            return None
    reason = incompatibility(entry, scheme, source, change.edit)
    if reason is not None:
        refusals.refuse(entry.name, reason)
        return None
    action = _action(scheme, source, change.edit)
    return PlannedTensor(entry, action, scheme=scheme, source=source, edit=change.edit, guess=guess)


def _action(scheme: InitScheme | None, source: TensorEntry | None, edit: Edit | None) -> str:
    parts = []
    if scheme is not None:
        parts.append(scheme.describe())
    if source is not None:
        parts.append(f"copy of {source.name}")
    if edit is not None:
        parts.append(edit.describe())
    return ", then ".join(parts)


def incompatibility(
    entry: TensorEntry, scheme: InitScheme | None, source: TensorEntry | None, edit: Edit | None
) -> str | None:
    """Why ``entry`` cannot take new values from ``scheme`` (or a copy of ``source``), then
    ``edit``; ``None`` when it can."""
    element = lookup_dtype(entry.dtype)
    if element.is_block_quantized:
        return (
            f"{entry.dtype} is block-quantized ({element.bits_per_weight:g} bits per weight): paramctl "
            "writes new values into float tensors only and does not quantize them back"
        )
    kind = value_kind(entry.dtype)
    if scheme is not None:
        reason = _scheme_incompatibility(entry, kind, scheme)
        if reason is not None:
            return reason
    if source is not None and value_kind(source.dtype) != kind:
        return f"cannot copy {source.dtype} values into a {entry.dtype} tensor"
    if edit is not None:
        if kind == "bool":
            return "bool tensors cannot be scaled or shifted"
        if kind == "int" and any(v is not None and not float(v).is_integer() for v in (edit.scale, edit.add)):
            return f"{entry.dtype} tensors take whole-number --scale/--add"
    return None


def _scheme_incompatibility(entry: TensorEntry, kind: ValueKind, scheme: InitScheme) -> str | None:
    if kind in ("int", "bool"):
        value = scheme.fill_value if isinstance(scheme, TorchScheme) else None
        if value is None:
            return f"{kind} tensors take only constant schemes (zeros, ones, constant, --set) or --from"
        if kind == "bool" and value not in (0.0, 1.0):
            return f"a bool tensor holds 0 or 1, not {value!r}"
        if kind == "int":
            low, high = _int_range(entry.dtype)
            if not float(value).is_integer() or not low <= value <= high:
                return f"{entry.dtype} cannot hold {value!r}"
    return scheme.incompatibility(entry)


def _with_shared(
    checkpoint: Checkpoint, planned: list[PlannedTensor], context: Sequence[TensorEntry]
) -> list[PlannedTensor]:
    """Fill ``also_changes``: unselected names whose bytes overlap a changed tensor's."""
    shown = {join_path(e.path): e.name for e in context}
    folded = {name for t in planned for name in t.same_as}
    changing = {join_path(t.entry.path) for t in planned}
    changing |= {join_path(e.path) for e in context if e.name in folded}
    storages = by_storage(checkpoint.entries)
    result = []
    for row in planned:
        reached = overlapping(row.entry, storages.get(row.entry.storage_key, []))
        paths = [join_path(other.path) for other in reached]
        also = tuple(shown.get(path, path) for path in paths if path not in changing)
        result.append(replace(row, also_changes=also) if also else row)
    return result
