"""Holding an unpickled tree to the limits before anything walks it path by path.

>>> shared = ["x"] * 2
>>> for _ in range(30):
...     shared = [shared, shared]
>>> check_tree(shared)
Traceback (most recent call last):
paramctl.errors.LimitExceeded: the pickle is too large or too complex to read: ... paths through its ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paramctl.errors import CorruptCheckpoint, LimitExceeded
from paramctl.formats._limits import LIMITS, Limits


def _branches(node: Any) -> list[Any] | None:
    """What a container of an unpickled tree holds (attributes of a dict subclass too:
    a state_dict's ``_metadata``); ``None`` for a leaf."""
    if isinstance(node, dict):
        held = [*node.keys(), *node.values()]
        attributes = getattr(node, "__dict__", None)
        return [*held, *attributes.values()] if attributes else held
    if isinstance(node, list | tuple | set | frozenset):
        return list(node)
    return None


def check_tree(
    root: Any,
    *,
    limits: Limits = LIMITS,
    what: str = "the pickle",
    is_tensor: Callable[[Any], bool] | None = None,
) -> None:
    """Refuse an unpickled tree past the limits before anything walks it path by path.

    A pickle builds a graph: one memo entry may be reached from many places. Walks that
    name things by path (tensors, extras) visit it once per path, so a small pickle whose
    entries each refer twice to the next ("billion laughs") would take forever. Here every
    object is visited once, counting the paths below it (and the tensors, by
    ``is_tensor``), its depth, and cycles, which no path walk ends.
    """
    paths: dict[int, int] = {}
    tensors: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[Any, list[Any] | None]] = [(root, None)]
    while stack:
        node, held = stack.pop()
        key = id(node)
        if held is not None:  # every branch is measured: measure the node
            _measure(node, held, paths, tensors, depths, is_tensor)
            if paths[key] > limits.paths or depths[key] > limits.depth or tensors[key] > limits.tensors:
                _refuse_tree(what, paths[key], depths[key], tensors[key], limits)
            continue
        if key in paths:
            continue
        branches = _branches(node)
        if branches is None:
            continue
        if key in depths:
            raise CorruptCheckpoint(f"{what} is damaged: a container holds itself (a cycle)")
        depths[key] = -1  # on the current path until measured
        stack.append((node, branches))
        stack.extend((branch, None) for branch in branches if _branches(branch) is not None)


def _measure(
    node: Any,
    held: list[Any],
    paths: dict[int, int],
    tensors: dict[int, int],
    depths: dict[int, int],
    is_tensor: Callable[[Any], bool] | None,
) -> None:
    key = id(node)
    paths[key] = 1 + sum(paths.get(id(branch), 1) for branch in held)
    depths[key] = 1 + max((depths.get(id(branch), 0) for branch in held), default=0)
    if is_tensor is None:
        tensors[key] = 0
    else:
        tensors[key] = sum(tensors.get(id(branch), 1 if is_tensor(branch) else 0) for branch in held)


def _refuse_tree(what: str, paths: int, depth: int, tensors: int, limits: Limits) -> None:
    if depth > limits.depth:
        raise LimitExceeded(
            what, f"containers nested {depth:,} deep", f"paramctl reads at most {limits.depth}"
        )
    if tensors > limits.tensors:
        raise LimitExceeded(what, f"{tensors:,} tensors", f"paramctl reads at most {limits.tensors:,}")
    raise LimitExceeded(
        what,
        f"{paths:,} paths through its objects (shared entries multiply them)",
        f"paramctl follows at most {limits.paths:,}",
    )
