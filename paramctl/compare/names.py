"""Which names two checkpoints share: each side's tensors under the names they are compared
by (``--key``/``--all``, a renaming, a selection), and how the two sets of names meet.

The renaming applies to the first side only, as ``paramctl convert A ...`` would rename
it, so that ``diff A B --strip-prefix module.`` asks whether A, so converted, is B.

>>> sides = align(["module.w", "module.b", "extra"], ["w", "b", "new"], NameMap(("module.",)))
>>> sides.common, sides.only_a, sides.only_b
(['w', 'b'], ['extra'], ['new'])
>>> sides.original_a["w"]
'module.w'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from paramctl.checkpoint import Checkpoint, TensorEntry, model_view
from paramctl.rename import NameMap
from paramctl.select import Selection, check_listed, nothing_selected
from paramctl.storage import identity


@dataclass(frozen=True)
class Alignment:
    """Names in both sides (in A's order), only in A (A's order), only in B (B's order),
    and the name each compared name of A had before renaming."""

    common: list[str]
    only_a: list[str]
    only_b: list[str]
    original_a: dict[str, str] = field(default_factory=dict)


def align(a: Sequence[str], b: Sequence[str], names: NameMap = NameMap()) -> Alignment:
    """Meet A's names, renamed by ``names``, with B's (two names renamed to one: exit 2)."""
    renamed = names.apply(a)
    in_b = set(b)
    common = [name for name in renamed if name in in_b]
    only_a = [name for name in renamed if name not in in_b]
    only_b = [name for name in b if name not in renamed]
    return Alignment(common, only_a, only_b, renamed)


def tensors_by_name(
    checkpoint: Checkpoint,
    *,
    key: str | None = None,
    all_tensors: bool = False,
) -> dict[str, TensorEntry]:
    """The checkpoint's tensors by the names commands show (the model dict found, ``--key``
    or ``--all``), in file order."""
    view = model_view(checkpoint, key=key, all_tensors=all_tensors)
    return {entry.name: entry for entry in view.entries}


def selected(alignment: Alignment, selection: Selection) -> Alignment:
    """Only the compared names ``selection`` takes (by the names compared, A's renamed);
    none taken is :class:`~paramctl.errors.NothingSelected` (exit 1), naming close names."""
    every = [*alignment.common, *alignment.only_a, *alignment.only_b]
    check_listed(selection, every, "either checkpoint")
    keep = selection.matches
    if every and not any(keep(name) for name in every):
        raise nothing_selected(selection, every)
    return Alignment(
        [n for n in alignment.common if keep(n)],
        [n for n in alignment.only_a if keep(n)],
        [n for n in alignment.only_b if keep(n)],
        {n: old for n, old in alignment.original_a.items() if keep(n)},
    )


def tie_partners(entries: Mapping[str, TensorEntry], among: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each name of ``among``, the other names of ``among`` that are the same tensor
    (one storage identity: a tie), in ``among``'s order.

    >>> w = TensorEntry("w", ("w",), (2,), "float32", (1,), "s0")
    >>> head = TensorEntry("head", ("head",), (2,), "float32", (1,), "s0")
    >>> tie_partners({"w": w, "head": head}, ["w", "head"])
    {'w': ('head',), 'head': ('w',)}
    """
    groups: dict[object, list[str]] = {}
    for name in among:
        groups.setdefault(identity(entries[name]), []).append(name)
    return {
        name: tuple(other for other in group if other != name)
        for group in groups.values()
        if len(group) > 1
        for name in group
    }
