"""``list --tree``: names grouped by module path (``encoder.layers.0``), each group with
subtotals, as a Rich tree for people and as rows (one per module, the root ``.``) for pipes.

>>> rows = [{"name": "0.weight", "shape": [3, 4], "dtype": "float32", "numel": 12, "bytes": 48},
...         {"name": "0.bias", "shape": [3], "dtype": "float32", "numel": 3, "bytes": 12}]
>>> [(row["module"], row["tensors"], row["bytes"]) for row in tree_report(rows).rows]
[('', 2, 60), ('0', 2, 60), ('0.weight', 1, 48), ('0.bias', 1, 12)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paramctl.render.engine import Column, Report, escape_control, format_shape
from paramctl.units import format_bytes

if TYPE_CHECKING:
    from rich.tree import Tree

TREE_COLUMNS = [
    # The root's path is empty; in rows it is written "." so the row keeps a first field.
    Column("module", "module", plain=lambda path: escape_control(path) or "."),
    Column("tensors", "tensors"),
    Column("numel", "numel"),
    Column("bytes", "bytes"),
]


def tree_report(rows: Sequence[dict[str, Any]]) -> Report:
    """The tree of the tensor ``rows`` (each with name, numel and bytes; shape and dtype for
    the leaves), one report row per module from the root down."""
    root = _ModuleNode("")
    for row in rows:
        root.add(str(row["name"]).split("."), row)
    return Report(
        TREE_COLUMNS,
        [node.summary() for node in root.walk()],
        document=root.to_dict,
        human=root.rich_tree,
        name_key="module",
    )


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

    def rich_tree(self) -> Tree:
        from rich.text import Text
        from rich.tree import Tree

        tree = Tree(Text(self.label(), style="bold"))
        self._attach(tree)
        return tree

    def _attach(self, tree: Tree) -> None:
        for child in self.children.values():
            child._attach(tree.add(child.label()))

    def walk(self) -> Iterable[_ModuleNode]:
        yield self
        for child in self.children.values():
            yield from child.walk()

    def summary(self) -> dict[str, Any]:
        return {"module": self.path, "tensors": self.tensors, "numel": self.numel, "bytes": self.bytes}

    def to_dict(self) -> dict[str, Any]:
        data = self.summary()
        if self.children:
            data["children"] = [child.to_dict() for child in self.children.values()]
        return data
