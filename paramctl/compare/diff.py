"""``paramctl diff A B``: what differs between two checkpoints, of any formats.

Names are met first (:mod:`paramctl.compare.names`): names only in A, only in B, and for
the names in both, a changed shape or dtype and a changed tie (the names one tensor goes
by) come from metadata alone. Values are then compared one pair of tensors at a time
(:mod:`paramctl.compare.values`); a tensor that several names share is read once.

>>> import os, tempfile, torch
>>> from paramctl import read_checkpoint
>>> folder = tempfile.mkdtemp()
>>> torch.save({"w": torch.ones(3), "b": torch.zeros(2)}, os.path.join(folder, "a.pt"))
>>> torch.save({"w": torch.tensor([1.0, 1.5, 1.0]), "b": torch.zeros(2)}, os.path.join(folder, "b.pt"))
>>> found = diff_checkpoints(*(read_checkpoint(os.path.join(folder, n)) for n in ("a.pt", "b.pt")))
>>> [(c.name, c.kinds, c.values.max_abs) for c in found.changes], found.equal
([('w', ('values',), 0.5)], False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from paramctl.checkpoint import Checkpoint, TensorEntry
from paramctl.compare.names import Alignment, align, selected, tensors_by_name, tie_partners
from paramctl.compare.values import Tolerance, ValueDiff, compare_values
from paramctl.rename import NameMap
from paramctl.select import Selection
from paramctl.storage import ViewIdentity, identity
from paramctl.units import plural

Kind = Literal["only_a", "only_b", "shape", "dtype", "values", "ties"]


@dataclass(frozen=True)
class TensorChange:
    """One name that differs, and how: ``kinds`` in the order shape, dtype, values, ties."""

    name: str
    kinds: tuple[Kind, ...]
    a: TensorEntry | None = None
    b: TensorEntry | None = None
    values: ValueDiff | None = None
    ties_a: tuple[str, ...] = ()
    ties_b: tuple[str, ...] = ()
    # A's own name for it, where the renaming changed it.
    name_a: str | None = None

    def to_dict(self) -> dict[str, Any]:
        values = self.values
        return {
            "name": self.name,
            "change": list(self.kinds),
            "name_a": self.name_a,
            "shape_a": None if self.a is None else list(self.a.shape),
            "shape_b": None if self.b is None else list(self.b.shape),
            "dtype_a": None if self.a is None else self.a.dtype,
            "dtype_b": None if self.b is None else self.b.dtype,
            "numel": None if values is None else values.numel,
            "differing": None if values is None else values.differing,
            "max_abs": None if values is None else values.max_abs,
            "rel_l2": None if values is None else values.rel_l2,
            "ties_a": list(self.ties_a),
            "ties_b": list(self.ties_b),
        }


@dataclass(frozen=True)
class CheckpointDiff:
    """Everything that differs between checkpoints A and B, and what was compared."""

    a: str
    b: str
    format_a: str
    format_b: str
    changes: list[TensorChange]
    compared: int  # names in both
    tolerance: Tolerance = field(default_factory=Tolerance)
    names_only: bool = False
    renaming: list[str] = field(default_factory=list)  # the options that renamed A

    @property
    def equal(self) -> bool:
        return not self.changes

    def count(self, kind: Kind) -> int:
        return sum(kind in change.kinds for change in self.changes)

    def summary(self) -> str:
        """One line: how many names differ, and how.

        >>> CheckpointDiff("a.pt", "b.pt", "zip", "zip", [], compared=3).summary()
        'no differences among 3 tensors (values equal exactly)'
        """
        if self.names_only:
            how = "values not compared"
        elif self.tolerance.atol or self.tolerance.rtol:
            how = f"values equal within atol {self.tolerance.atol:g}, rtol {self.tolerance.rtol:g}"
        else:
            how = "values equal exactly"
        if self.equal:
            return f"no differences among {plural(self.compared, 'tensor')} ({how})"
        words: dict[Kind, str] = {"only_a": "only in A", "only_b": "only in B", "shape": "shape"}
        words |= {"dtype": "dtype", "values": "values", "ties": "ties"}
        parts = [f"{words[kind]} {self.count(kind)}" for kind in words if self.count(kind)]
        total = self.compared + self.count("only_a") + self.count("only_b")
        return f"{len(self.changes)} of {plural(total, 'name')} differ: {', '.join(parts)} ({how})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "format_a": self.format_a,
            "format_b": self.format_b,
            "equal": self.equal,
            "compared": self.compared,
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "names_only": self.names_only,
            "renaming": self.renaming,
            "changes": [change.to_dict() for change in self.changes],
            "summary": self.summary(),
        }


def value_work(
    a: Checkpoint,
    b: Checkpoint,
    *,
    key: str | None = None,
    all_tensors: bool = False,
    selection: Selection = Selection(),
    names: NameMap = NameMap(),
) -> int:
    """The most bytes :func:`diff_checkpoints` reads from A, for a progress bar: the
    tensors of one shape in both, each pair of storages once."""
    sides, entries_a, entries_b = _sides(a, b, key, all_tensors, selection, names)
    pairs = {
        (identity(entries_a[name]), identity(entries_b[name])): entries_a[name].nbytes
        for name in sides.common
        if entries_a[name].shape == entries_b[name].shape
    }
    return sum(pairs.values())


def _sides(
    a: Checkpoint, b: Checkpoint, key: str | None, all_tensors: bool, selection: Selection, names: NameMap
) -> tuple[Alignment, dict[str, TensorEntry], dict[str, TensorEntry]]:
    """The names met, and each side's tensors by the names compared."""
    tensors_a = tensors_by_name(a, key=key, all_tensors=all_tensors)
    tensors_b = tensors_by_name(b, key=key, all_tensors=all_tensors)
    sides = selected(align(list(tensors_a), list(tensors_b), names), selection)
    return sides, {name: tensors_a[old] for name, old in sides.original_a.items()}, tensors_b


def diff_checkpoints(
    a: Checkpoint,
    b: Checkpoint,
    *,
    key: str | None = None,
    all_tensors: bool = False,
    selection: Selection = Selection(),
    names: NameMap = NameMap(),
    tolerance: Tolerance = Tolerance(),
    names_only: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> CheckpointDiff:
    """Compare checkpoint ``a`` with ``b``: names (A's renamed by ``names``), shapes,
    dtypes, ties, and unless ``names_only`` values, one pair of tensors at a time."""
    sides, entries_a, entries_b = _sides(a, b, key, all_tensors, selection, names)
    changes = _metadata_changes(sides, entries_a, entries_b)
    if not names_only:
        changes = _with_values(a, b, changes, tolerance, on_progress)
    kept = [change for change in changes.values() if change.kinds]
    order = {name: index for index, name in enumerate([*sides.common, *sides.only_a, *sides.only_b])}
    kept.sort(key=lambda change: order[change.name])
    return CheckpointDiff(
        a.label, b.label, a.format, b.format, kept, len(sides.common), tolerance, names_only, names.options()
    )


def _metadata_changes(
    sides: Alignment, entries_a: dict[str, TensorEntry], entries_b: dict[str, TensorEntry]
) -> dict[str, TensorChange]:
    """One change per name (kinds empty while nothing differs), from metadata alone."""
    ties_a = tie_partners(entries_a, sides.common)
    ties_b = tie_partners(entries_b, sides.common)
    changes: dict[str, TensorChange] = {}
    for name in sides.common:
        a, b = entries_a[name], entries_b[name]
        kinds: list[Kind] = []
        if a.shape != b.shape:
            kinds.append("shape")
        if a.dtype != b.dtype:
            kinds.append("dtype")
        tied_a, tied_b = ties_a.get(name, ()), ties_b.get(name, ())
        if set(tied_a) != set(tied_b):
            kinds.append("ties")
        renamed = sides.original_a[name] if sides.original_a[name] != name else None
        changes[name] = TensorChange(name, tuple(kinds), a, b, None, tied_a, tied_b, renamed)
    for name in sides.only_a:
        old = sides.original_a[name]
        changes[name] = TensorChange(
            name, ("only_a",), a=entries_a[name], name_a=old if old != name else None
        )
    for name in sides.only_b:
        changes[name] = TensorChange(name, ("only_b",), b=entries_b[name])
    return changes


def _with_values(
    a: Checkpoint,
    b: Checkpoint,
    changes: dict[str, TensorChange],
    tolerance: Tolerance,
    on_progress: Callable[[int], None] | None,
) -> dict[str, TensorChange]:
    """The changes with the values of every pair of one shape compared; a pair of tensors
    that several names share is compared once."""
    from paramctl.values import ValueReader

    done: dict[tuple[ViewIdentity, ViewIdentity], ValueDiff] = {}
    updated = dict(changes)
    with ValueReader(a) as reader_a, ValueReader(b) as reader_b:
        for name, change in changes.items():
            if change.a is None or change.b is None or "shape" in change.kinds:
                continue
            pair = (identity(change.a), identity(change.b))
            if pair not in done:
                done[pair] = compare_values(reader_a, change.a, reader_b, change.b, tolerance)
                if on_progress is not None:
                    on_progress(change.a.nbytes)
            values = done[pair]
            kinds = change.kinds if values.equal else _insert_values(change.kinds)
            updated[name] = TensorChange(
                name, kinds, change.a, change.b, values, change.ties_a, change.ties_b, change.name_a
            )
    return updated


def _insert_values(kinds: tuple[Kind, ...]) -> tuple[Kind, ...]:
    """``values`` after shape and dtype, before ties."""
    before = tuple(kind for kind in kinds if kind != "ties")
    return (*before, "values", *(("ties",) if "ties" in kinds else ()))
