"""What the zip and legacy PyTorch readers share: turning pickle records into entries."""

from __future__ import annotations

from typing import Any

from paramctl.checkpoint import PathPart, TensorEntry, join_path
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._pickle import TensorRecord


def name_tensors(payload: Any) -> tuple[Any, list[TensorEntry]]:
    """Replace every :class:`TensorRecord` in ``payload`` by a named :class:`TensorEntry`.

    Returns the new payload and the entries in pickle order. A tensor reachable by two
    paths gets two entries on the same storage, which is what sharing means.

    >>> from ._pickle import StorageRef
    >>> weight = TensorRecord(StorageRef("0", "float32", 6, "cpu"), 0, (2, 3), (3, 1), False, "float32")
    >>> payload, entries = name_tensors({"model": {"w": weight, "tied": weight}, "epoch": 3})
    >>> [(e.name, e.storage_key) for e in entries], payload["epoch"]
    ([('model.w', '0'), ('model.tied', '0')], 3)
    """
    entries: list[TensorEntry] = []

    def convert(node: Any, path: tuple[PathPart, ...]) -> Any:
        if isinstance(node, TensorRecord):
            # A legacy storage view starts ``view[1]`` elements into its root storage.
            view_offset = node.storage.view[1] if node.storage.view else 0
            entry = TensorEntry(
                name=join_path(path),
                path=path,
                shape=node.shape,
                dtype=node.dtype,
                stride=node.stride,
                storage_key=node.storage.key,
                storage_offset=node.storage_offset + view_offset,
                requires_grad=node.requires_grad,
                is_parameter=node.is_parameter,
            )
            entries.append(entry)
            return entry
        if isinstance(node, dict):
            converted = {
                key: convert(value, (*path, key if isinstance(key, int) else str(key)))
                for key, value in node.items()
            }
            if type(node) is not dict and _rebuildable(node):
                rebuilt = type(node)(converted)
                # state_dict OrderedDicts carry module versions in `_metadata`: keep them.
                rebuilt.__dict__.update(getattr(node, "__dict__", {}))
                return rebuilt
            return converted
        if isinstance(node, list):
            return [convert(value, (*path, index)) for index, value in enumerate(node)]
        if isinstance(node, tuple):
            return tuple(convert(value, (*path, index)) for index, value in enumerate(node))
        return node

    return convert(payload, ()), entries


def _rebuildable(node: dict[Any, Any]) -> bool:
    try:
        type(node)()
    except TypeError:
        return False
    return True


def check_entry_fits(entry: TensorEntry, storage_nbytes: int) -> None:
    """A tensor must stay inside its storage; a file that says otherwise is damaged."""
    if any(size < 0 for size in entry.shape):
        raise CorruptCheckpoint(f"{entry.name}: negative size in shape {entry.shape}")
    if entry.numel == 0:  # an empty view may point past its storage's end; torch allows it
        return
    start, end = entry.byte_span
    if start < 0 or end > storage_nbytes:
        raise CorruptCheckpoint(
            f"{entry.name}: needs bytes {start}..{end} of its storage, which has {storage_nbytes}"
        )
