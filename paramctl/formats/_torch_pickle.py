"""What the zip and legacy PyTorch readers share: turning pickle records into entries, and
holding every tensor and storage to what torch itself accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paramctl.checkpoint import PathPart, TensorEntry, join_path
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._pickle import StorageRef, TensorRecord, storage_ref_from_pid
from paramctl.formats._pickle_tree import check_tree


def name_tensors(payload: Any, *, limits: Limits = LIMITS) -> tuple[Any, list[TensorEntry]]:
    """Replace every :class:`TensorRecord` in ``payload`` by a named :class:`TensorEntry`.

    Returns the new payload and the entries in pickle order. A tensor reachable by two
    paths gets two entries on the same storage, which is what sharing means. The tree is
    measured first (:func:`~paramctl.formats._allowlist.check_tree`), so that a pickle whose
    shared entries multiply paths is refused instead of walked.

    >>> from ._pickle import StorageRef
    >>> weight = TensorRecord(StorageRef("0", "float32", 6, "cpu"), 0, (2, 3), (3, 1), False, "float32")
    >>> payload, entries = name_tensors({"model": {"w": weight, "tied": weight}, "epoch": 3})
    >>> [(e.name, e.storage_key) for e in entries], payload["epoch"]
    ([('model.w', '0'), ('model.tied', '0')], 3)
    """
    check_tree(payload, limits=limits, is_tensor=lambda node: isinstance(node, TensorRecord))
    entries: list[TensorEntry] = []

    def convert(node: Any, path: tuple[PathPart, ...]) -> Any:
        if isinstance(node, TensorRecord):
            entry = _entry(node, path)
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


def _entry(record: TensorRecord, path: tuple[PathPart, ...]) -> TensorEntry:
    view = record.storage.view
    entry = TensorEntry(
        name=join_path(path),
        path=path,
        shape=record.shape,
        dtype=record.dtype,
        stride=record.stride,
        storage_key=record.storage.key,
        # A legacy storage view starts ``view[1]`` elements into its root storage.
        storage_offset=record.storage_offset + (view[1] if view else 0),
        requires_grad=record.requires_grad,
        is_parameter=record.is_parameter,
    )
    if view is not None:
        # torch makes the view a storage of its own: the tensor must fit inside it.
        itemsize = entry.itemsize
        check_entry_fits(entry, (view[1] + view[2]) * itemsize, start=view[1] * itemsize)
    return entry


def _rebuildable(node: dict[Any, Any]) -> bool:
    try:
        type(node)()
    except TypeError:
        return False
    return True


def check_entry_fits(entry: TensorEntry, storage_nbytes: int, *, start: int = 0) -> None:
    """A tensor must stay inside bytes ``start`` to ``storage_nbytes`` of its storage, as
    torch's ``set_`` demands; a file that says otherwise is damaged."""
    if any(size < 0 for size in entry.shape) or any(step < 0 for step in entry.stride):
        raise CorruptCheckpoint(f"{entry.name}: negative size or stride in {entry.shape}, {entry.stride}")
    if entry.numel == 0:  # an empty view may point past its storage's end; torch allows it
        return
    first, end = entry.byte_span
    if first < start or end > storage_nbytes:
        raise CorruptCheckpoint(
            f"{entry.name}: needs bytes {first:,}..{end:,} of its storage, which has {storage_nbytes:,}"
        )


def storage_collector() -> tuple[dict[str, StorageRef], Callable[[Any], StorageRef]]:
    """The storages a torch pickle names, and the persistent-id callback that fills them.

    torch keeps the first description of a key and builds every later tensor on it; a file
    whose descriptions of one key disagree (another dtype or size) would read two ways, so
    it is refused. A legacy view key is one storage too and must keep one meaning.
    """
    refs: dict[str, StorageRef] = {}
    views: dict[str, tuple[str, int, int]] = {}

    def storage_ref(pid: Any) -> StorageRef:
        ref = storage_ref_from_pid(pid)
        known = refs.setdefault(ref.key, ref)
        if (known.dtype, known.numel, known.location) != (ref.dtype, ref.numel, ref.location):
            raise CorruptCheckpoint(
                f"storage {ref.key!r} is described twice, differently ({known.numel} {known.dtype} "
                f"and {ref.numel} {ref.dtype}): torch would read it one way, paramctl another"
            )
        if ref.view is not None:
            meaning = (ref.key, ref.view[1], ref.view[2])
            if views.setdefault(ref.view[0], meaning) != meaning:
                raise CorruptCheckpoint(f"storage view {ref.view[0]!r} names two different parts of the file")
        clash = ref.key if ref.key in views else ref.view[0] if ref.view and ref.view[0] in refs else None
        if clash is not None:
            raise CorruptCheckpoint(f"{clash!r} names both a storage and a view of one")
        return ref

    return refs, storage_ref
