"""What a change of ``paramctl init`` says: new values (a scheme, or a copy), then an edit.

A :class:`Change` is checked in itself here (a scheme and a copy exclude each other, an
edit needs a number); whether it fits each tensor is :mod:`paramctl.change.plan`'s question.

>>> from paramctl.schemes.catalog import make_scheme
>>> Change(scheme=make_scheme("zeros"), edit=Edit(add=1.0)).describe()
'zeros, then x + 1.0'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paramctl.checkpoint import Checkpoint, TensorEntry, model_view
from paramctl.errors import IncompatibleTensors, UsageError
from paramctl.rename import NameMap
from paramctl.schemes.catalog import InitScheme

SHOWN_NAMES = 6


def some_names(names: Sequence[str], limit: int = SHOWN_NAMES) -> str:
    """The first ``limit`` names, and how many more, for a one-line message.

    >>> some_names(["a", "b", "c"], limit=2)
    'a, b and 1 more'
    """
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class Edit:
    """``value * scale + add`` (the ``param.data *= s; param.data += a`` of training code).

    >>> Edit(scale=2.0, add=1.0).describe()
    'x * 2.0 + 1.0'
    """

    scale: float | None = None
    add: float | None = None

    def __post_init__(self) -> None:
        if self.scale is None and self.add is None:
            raise UsageError("an edit needs --scale or --add")

    def describe(self) -> str:
        text = "x"
        if self.scale is not None:
            text += f" * {self.scale!r}"
        if self.add is not None:
            text += f" - {-self.add!r}" if self.add < 0 else f" + {self.add!r}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "add": self.add}


@dataclass(frozen=True)
class CopySource:
    """Tensors of another checkpoint paired with the targets they fill (``--from``)."""

    checkpoint: Checkpoint
    pairs: Mapping[str, TensorEntry]
    missing: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return self.checkpoint.label


def parse_rename(rules: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--rename 'FROM=TO'`` rules: a regex and its replacement (``\\1`` groups allowed),
    parsed and checked by :class:`~paramctl.rename.NameMap`, the renaming of every command.

    >>> parse_rename(["^encoder\\\\.=backbone."])
    (('^encoder\\\\.', 'backbone.'),)
    """
    return tuple(
        (pattern.pattern, replacement) for pattern, replacement in NameMap.parse(renames=rules).renames
    )


def _name_map(rules: Sequence[tuple[str, str]]) -> NameMap:
    return NameMap(renames=tuple((re.compile(pattern), replacement) for pattern, replacement in rules))


def rename(name: str, rules: Sequence[tuple[str, str]]) -> str:
    """``name`` rewritten by each rule in turn.

    >>> rename("encoder.0.weight", [("^encoder\\\\.", "backbone.")])
    'backbone.0.weight'
    """
    try:
        return _name_map(rules)(name)
    except (re.error, IndexError) as exc:
        raise UsageError(f"--rename: {exc}") from exc


def copy_source(
    targets: Sequence[TensorEntry],
    source: Checkpoint,
    *,
    rename_rules: Sequence[tuple[str, str]] = (),
    key: str | None = None,
) -> CopySource:
    """Pair each target with the source tensor whose (renamed) name is the target's name.

    Source names are those of its model dict (found as ``paramctl list`` finds it, or
    ``key``), each rewritten by ``rename_rules`` in order. Shapes must match: every
    mismatch is listed in one :class:`IncompatibleTensors` error. Targets without a source
    tensor are returned in ``missing``.
    """
    view = model_view(source, key=key)
    renamed = _name_map(rename_rules)
    by_name: dict[str, TensorEntry] = {}
    for entry in view.entries:
        by_name.setdefault(renamed(entry.name), entry)
    pairs: dict[str, TensorEntry] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for target in targets:
        found = by_name.get(target.name)
        if found is None:
            missing.append(target.name)
        elif found.shape != target.shape:
            mismatched.append(f"{target.name} {list(target.shape)} vs {found.name} {list(found.shape)}")
        else:
            pairs[target.name] = found
    if mismatched:
        raise IncompatibleTensors(
            f"shapes differ between the checkpoint and {source.label}: {some_names(mismatched)}"
        )
    return CopySource(source, pairs, tuple(missing), tuple(rename_rules))


@dataclass(frozen=True)
class Change:
    """What happens to every selected tensor: new values (a scheme, or a copy), then an edit."""

    scheme: InitScheme | None = None
    copy: CopySource | None = None
    edit: Edit | None = None

    def __post_init__(self) -> None:
        if self.scheme is not None and self.copy is not None:
            raise UsageError("--scheme/--set and --from exclude each other")
        if self.scheme is None and self.copy is None and self.edit is None:
            raise UsageError("nothing to do: give --scheme, --set, --from, --scale or --add")

    def describe(self) -> str:
        parts = []
        if self.scheme is not None:
            parts.append(self.scheme.describe())
        if self.copy is not None:
            parts.append(f"copy from {self.copy.label}")
        if self.edit is not None:
            parts.append(self.edit.describe())
        return ", then ".join(parts)
