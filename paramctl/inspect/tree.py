"""``list --tree`` as data: tensors grouped by module path, each module with its subtotals.

A module's ``stored_bytes`` counts bytes its tensors share once (a tied embedding and head
under one parent take the embedding's bytes once); with statistics, a module gets the
statistics of all its values taken together (:func:`pooled_stats`), tied tensors once.

>>> leaves = [Leaf("0.weight", 12, 48, "float32", {"shape": [3, 4]}),
...           Leaf("0.bias", 3, 12, "float32", {"shape": [3]})]
>>> root = module_tree(leaves)
>>> [(node.path, node.tensors, node.stored_bytes) for node in root.walk()]
[('', 2, 60), ('0', 2, 60), ('0.weight', 1, 48), ('0.bias', 1, 12)]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from paramctl.checkpoint import TensorEntry
from paramctl.inspect.listing import DTypeTotal, Listing, SortKey
from paramctl.storage import identity, stored_bytes


@dataclass(frozen=True)
class Leaf:
    """A tensor placed in the tree by its dotted name, with the row it shows.

    ``entry`` locates a file's tensor, so shared bytes are found from byte ranges; a live
    module's tensor has none, and ``tie`` names the tensor it is one with instead.
    """

    name: str
    numel: int
    nbytes: int
    dtype: str
    row: dict[str, Any]
    entry: TensorEntry | None = None
    tie: str = ""
    stats: dict[str, Any] | None = None

    @property
    def same_values(self) -> Any:
        """Equal for leaves that are one tensor (ties)."""
        return identity(self.entry) if self.entry is not None else (self.tie or self.name)


def leaves_of(listing: Listing) -> list[Leaf]:
    """The leaves of a checkpoint listing, in its order."""
    return [
        Leaf(
            row.name,
            row.entry.numel,
            row.entry.nbytes,
            row.entry.dtype,
            row.to_dict(),
            row.entry,
            stats=row.stats,
        )
        for row in listing.rows
    ]


@dataclass
class ModuleNode:
    """A module path (``encoder.layers.0``; the root is ``""``): what is below it, its
    children, and the tensor of that very name if there is one."""

    path: str
    depth: int
    leaves: list[Leaf] = field(default_factory=list)
    children: dict[str, ModuleNode] = field(default_factory=dict)
    tensor: Leaf | None = None

    @property
    def part(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def tensors(self) -> int:
        return len(self.leaves)

    @property
    def numel(self) -> int:
        return sum(leaf.numel for leaf in self.leaves)

    @property
    def bytes(self) -> int:
        return sum(leaf.nbytes for leaf in self.leaves)

    @property
    def stored_bytes(self) -> int:
        located = [leaf.entry for leaf in self.leaves if leaf.entry is not None]
        if len(located) == len(self.leaves):
            return stored_bytes(located)
        return sum({leaf.same_values: leaf.nbytes for leaf in self.leaves}.values())

    @property
    def by_dtype(self) -> dict[str, DTypeTotal]:
        totals: dict[str, DTypeTotal] = {}
        for leaf in self.leaves:
            was = totals.get(leaf.dtype, DTypeTotal())
            totals[leaf.dtype] = DTypeTotal(was.tensors + 1, was.numel + leaf.numel, was.bytes + leaf.nbytes)
        return totals

    @property
    def stats(self) -> dict[str, Any] | None:
        """Statistics of every value below, ties once; ``None`` without statistics."""
        if self.tensor is not None and not self.children:
            return self.tensor.stats
        distinct = {leaf.same_values: leaf for leaf in self.leaves}.values()
        if any(leaf.stats is None for leaf in distinct):
            return None
        return pooled_stats([(leaf.numel, leaf.stats) for leaf in distinct if leaf.stats is not None])

    def walk(self, depth: int | None = None) -> Iterator[ModuleNode]:
        """This node and those below it, parents first, down to ``depth`` levels."""
        yield self
        if depth is None or self.depth < depth:
            for child in self.children.values():
                yield from child.walk(depth)

    def summary(self) -> dict[str, Any]:
        """The node as a row: its path, counts and bytes; a tensor's own fields; statistics."""
        row: dict[str, Any] = {
            "module": self.path,
            "kind": "tensor" if self.tensor is not None and not self.children else "module",
            "tensors": self.tensors,
            "numel": self.numel,
            "bytes": self.bytes,
            "stored_bytes": self.stored_bytes,
        }
        if row["kind"] == "tensor" and self.tensor is not None:
            own = self.tensor.row
            row.update(shape=own.get("shape"), dtype=own.get("dtype"), shared_with=own.get("shared_with", []))
        else:
            dtypes = self.by_dtype
            row.update(shape=None, dtype=next(iter(dtypes)) if len(dtypes) == 1 else "mixed", shared_with=[])
        stats = self.stats
        if stats is not None:
            row.update(stats)
        return row

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        data = self.summary()
        if self.children and (depth is None or self.depth < depth):
            data["children"] = [child.to_dict(depth) for child in self.children.values()]
        return data


def _natural(part: str) -> list[Any]:
    # "layers.10" after "layers.9": numbers compare as numbers.
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", part)]


def _sort(node: ModuleNode, sort: SortKey) -> None:
    keys: dict[str, Callable[[ModuleNode], Any]] = {
        "name": lambda child: _natural(child.part),
        "size": lambda child: -child.stored_bytes,
        "numel": lambda child: -child.numel,
    }
    if sort in keys:
        node.children = dict(sorted(node.children.items(), key=lambda item: keys[sort](item[1])))
    for child in node.children.values():
        _sort(child, sort)


def module_tree(leaves: Sequence[Leaf], sort: SortKey = "file") -> ModuleNode:
    """The tree of ``leaves`` by dotted name; children in first-seen order, or by ``sort``."""
    root = ModuleNode("", 0)
    for leaf in leaves:
        node = root
        node.leaves.append(leaf)
        for part in leaf.name.split("."):
            path = f"{node.path}.{part}" if node.path else part
            node = node.children.setdefault(part, ModuleNode(path, node.depth + 1))
            node.leaves.append(leaf)
        node.tensor = leaf
    _sort(root, sort)
    return root


def pooled_stats(parts: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The statistics of several tensors' values taken together, from each one's own
    (``(numel, stats)`` pairs): Chan et al.'s combination of means and squared deviations.

    >>> pooled_stats([(2, {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0, "absmax": 1.0,
    ...   "norm": math.sqrt(2), "zeros": 0.0, "nan": 0, "inf": 0}),
    ...  (2, {"mean": 3.0, "std": 0.0, "min": 3.0, "max": 3.0, "absmax": 3.0,
    ...   "norm": math.sqrt(18), "zeros": 0.0, "nan": 0, "inf": 0})])["std"]
    1.1547005383792515
    """
    finite = [(n - s["nan"] - s["inf"], s) for n, s in parts if s.get("mean") is not None]
    count = sum(n for n, _ in finite)
    mean = sum(n * s["mean"] for n, s in finite) / count if count else None
    std = None
    if mean is not None and count > 1:
        squares = sum((n - 1) * (s["std"] or 0.0) ** 2 + n * (s["mean"] - mean) ** 2 for n, s in finite)
        std = math.sqrt(max(squares, 0.0) / (count - 1))
    numel = sum(n for n, _ in parts)

    def extreme(key: str, pick: Any) -> Any:
        values = [s[key] for _, s in parts if s.get(key) is not None]
        return pick(values) if values else None

    norms = [s["norm"] for _, s in parts if s.get("norm") is not None]
    zeros = [(n, s["zeros"]) for n, s in parts if s.get("zeros") is not None]
    return {
        "mean": mean,
        "std": std,
        "min": extreme("min", min),
        "max": extreme("max", max),
        "absmax": extreme("absmax", max),
        "norm": math.sqrt(sum(n * n for n in norms)) if norms else None,
        "zeros": sum(n * z for n, z in zeros) / numel if zeros and numel else None,
        "nan": sum(s["nan"] for _, s in parts),
        "inf": sum(s["inf"] for _, s in parts),
    }
