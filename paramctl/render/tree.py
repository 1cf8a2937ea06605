"""``list --tree``: a row per module and per tensor, parents first. People see a table whose
first column draws the tree; pipes get the rows (the root's path written ``.``), JSON the
nested modules.

>>> from paramctl.inspect.tree import Leaf, module_tree
>>> leaves = [Leaf("0.weight", 12, 48, "float32", {"shape": [3, 4], "dtype": "float32"}),
...           Leaf("0.bias", 3, 12, "float32", {"shape": [3], "dtype": "float32"})]
>>> report = tree_report(module_tree(leaves), title="m.pt")
>>> [(row["module"], row["tensors"], row["stored_bytes"]) for row in report.rows]
[('', 2, 60), ('0', 2, 60), ('0.weight', 1, 48), ('0.bias', 1, 12)]
>>> guides(module_tree(leaves))["0.bias"]
'   └─ bias'
"""

from __future__ import annotations

from paramctl.inspect.tree import ModuleNode
from paramctl.render.columns import (
    BYTES,
    DTYPE,
    NUMEL,
    SHAPE,
    SHARED,
    STAT_COLUMNS,
    WITH_STATS_RANKS,
    human_bytes,
    human_int,
    ranked,
)
from paramctl.render.engine import Column, Report, escape_control, format_shape
from paramctl.units import plural

TREE_COLUMNS = [
    # The root's path is empty; in rows it is written "." so the row keeps a first field.
    Column("module", "module", plain=lambda path: escape_control(path) or "."),
    Column("kind", "kind"),
    Column("tensors", "tensors", "right", human=human_int),
    # A module has no shape of its own: its field is empty.
    Column("shape", "shape", plain=lambda shape: "" if shape is None else format_shape(shape)),
    DTYPE,
    NUMEL,
    Column("bytes", "bytes", "right", human=human_bytes),
    Column("stored_bytes", "stored", "right", human=human_bytes),
    SHARED,
]


def guides(root: ModuleNode, depth: int | None = None) -> dict[str, str]:
    """Each node's first cell: the tree's guide lines, then the last part of its path."""
    drawn = {root.path: "(all)"}

    def below(node: ModuleNode, indent: str) -> None:
        if depth is not None and node.depth >= depth:
            return
        children = list(node.children.values())
        for index, child in enumerate(children):
            last = index == len(children) - 1
            drawn[child.path] = indent + ("└─ " if last else "├─ ") + escape_control(child.part)
            below(child, indent + ("   " if last else "│  "))

    below(root, "")
    return drawn


def _contents(node: ModuleNode) -> str:
    row = node.summary()
    if row["kind"] == "tensor":
        return SHAPE.human(row["shape"]) if SHAPE.human else ""
    return plural(node.tensors, "tensor")


def tree_report(
    root: ModuleNode,
    *,
    depth: int | None = None,
    stats: bool = False,
    title: str | None = None,
    footer: list[str] | None = None,
) -> Report:
    """The tree from ``root`` down ``depth`` levels, with statistics columns if ``stats``."""
    nodes = list(root.walk(depth))
    drawn = guides(root, depth)
    contents = {node.path: _contents(node) for node in nodes}
    extra = STAT_COLUMNS if stats else []
    # The table draws the tree in its first column and says "3 tensors" where a tensor has
    # its shape; the stored bytes are the ones it shows.
    shown = [
        Column("module", "module", human=lambda path: drawn[path], style="bold"),
        Column("module", "shape", human=lambda path: contents[path]),
        DTYPE,
        NUMEL,
        Column("stored_bytes", "bytes", "right", human=human_bytes, drop_rank=BYTES.drop_rank),
        SHARED,
        *extra,
    ]
    return Report(
        TREE_COLUMNS + extra,
        [node.summary() for node in nodes],
        document=lambda: root.to_dict(depth),
        title=title,
        footer=footer or [],
        name_key="module",
        table_columns=ranked(shown, WITH_STATS_RANKS) if stats else shown,
        footer_as_notes=False,
    )
