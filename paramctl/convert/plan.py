"""What a conversion writes: the tensors kept, their new names, dtypes and storages, and the
object tree around them, decided from metadata alone before a byte is read.

:func:`plan_conversion` takes a checkpoint and what the target can hold (its
:class:`~paramctl.formats.Holds`) and returns a :class:`ConvertPlan`: each output entry
points either at its bytes in the source, unchanged, or at a :class:`Materialize` job
(a cast, or bytes the source does not store plainly) that :mod:`paramctl.convert.cast`
writes to a scratch file. What the target cannot hold is refused here, in one line naming
it and the option that leaves it out.

>>> from pathlib import Path
>>> from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
>>> from paramctl.formats import Holds
>>> w = TensorEntry("module.w", ("module.w",), (2,), "float32", (1,), "0")
>>> source = Checkpoint(Path("m.pt"), "x", [w], {"0": Storage("0", Path("m.pt"), "float32", 8, 64)})
>>> flat = Holds(extras=False, nesting=False, ties=True, views=False, provenance=False)
>>> plan = plan_conversion(source, flat, "a flat file", ConvertOptions(names=NameMap(("module.",))))
>>> [(e.name, e.dtype) for e in plan.entries], plan.renamed
([('w', 'float32')], 1)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from paramctl.checkpoint import Checkpoint, Extra, PathPart, Storage, TensorEntry, model_view
from paramctl.dtypes import DTYPES
from paramctl.errors import UsageError
from paramctl.formats import Holds
from paramctl.rename import NameMap
from paramctl.select import Selection, check_listed, select
from paramctl.storage import identity, partial_overlaps
from paramctl.units import plural

# The dtypes --dtype casts floating tensors to.
CAST_DTYPES = ("bfloat16", "float16", "float32")
DROP_EXTRAS = "--drop-extras"
_SHOWN = 4


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert: which dict (``key``, ``all_tensors``), which tensors (``selection``:
    those kept; with ``dtype``, those cast, every tensor kept), their names, the dtype
    floating tensors are cast to, whether non-tensor values are left out, and the largest
    shard of a sharded target."""

    key: str | None = None
    all_tensors: bool = False
    selection: Selection = field(default_factory=Selection)
    names: NameMap = field(default_factory=NameMap)
    dtype: str | None = None
    drop_extras: bool = False
    max_shard_size: int | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None and self.dtype not in CAST_DTYPES:
            raise UsageError(f"--dtype {self.dtype!r}: floating tensors are cast to {', '.join(CAST_DTYPES)}")


@dataclass(frozen=True)
class Materialize:
    """New bytes for one storage of the output: ``entry``'s values (in the source) in
    ``dtype``, contiguous."""

    entry: TensorEntry
    dtype: str


@dataclass
class ConvertPlan:
    """The output checkpoint before its new bytes exist (see the module docstring)."""

    source: Checkpoint
    entries: list[TensorEntry]
    storages: dict[str, Storage]
    payload: Any
    jobs: dict[str, Materialize]
    prefix: str = ""
    renamed: int = 0
    cast: list[str] = field(default_factory=list)
    stored_whole: list[str] = field(default_factory=list)
    ties_copied: list[str] = field(default_factory=list)
    extras_kept: int = 0
    extras_dropped: int = 0

    def checkpoint(self, materialized: dict[str, Storage]) -> Checkpoint:
        """The output checkpoint, once the jobs' storages are written (``materialized``)."""
        source = self.source
        return Checkpoint(
            source.path,
            source.format,
            self.entries,
            {**self.storages, **materialized},
            payload=self.payload,
            byteorder=source.byteorder,
            fallback_tensors=source.fallback_tensors,
            label=source.label,
        )


def _some(names: Sequence[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _chosen(
    view: list[TensorEntry], options: ConvertOptions, label: str
) -> tuple[list[TensorEntry], set[str]]:
    """The entries kept, and the names of those cast."""
    check_listed(options.selection, [entry.name for entry in view], label)
    if options.dtype is None:
        return select(view, options.selection), set()
    casting = {entry.name for entry in select(view, options.selection)}
    # Tied names are one tensor: cast when any of them is chosen.
    ties = {identity(entry) for entry in view if entry.name in casting}
    cast = {
        entry.name
        for entry in view
        if identity(entry) in ties and entry.dtype != options.dtype and _castable(entry.dtype)
    }
    return view, cast


def _castable(dtype: str) -> bool:
    element = DTYPES[dtype]
    return element.is_floating or element.is_block_quantized


def _plain(checkpoint: Checkpoint, entry: TensorEntry) -> bool:
    """Whether the entry's bytes are a run of the file in element order, copied as they are."""
    storage = checkpoint.storage_of(entry)
    start, end = entry.byte_span
    return (
        storage.offset is not None
        and storage.inline is None
        and storage.member is None
        and not storage.chunked
        and not entry.chunks
        and checkpoint.fallback_tensors is None
        and checkpoint.byteorder == "little"
        and entry.is_contiguous
        and end - start == entry.nbytes
    )


def _refuse_unheld(entries: Iterable[tuple[TensorEntry, str]], holds: Holds, title: str, label: str) -> None:
    held = holds.dtypes
    unheld = [
        (entry, dtype)
        for entry, dtype in entries
        if (held is not None and dtype not in held)
        or (DTYPES[dtype].is_block_quantized and (held is None or dtype not in held))
    ]
    if not unheld:
        return
    kinds = ", ".join(sorted({dtype for _, dtype in unheld}))
    first = unheld[0][0].name
    cast = " or cast them with --dtype float32" if all(_castable(d) for _, d in unheld) else ""
    raise UsageError(
        f"{label}: {plural(len(unheld), 'tensor')} {'is' if len(unheld) == 1 else 'are'} {kinds} "
        f"(e.g. {first}), which {title} cannot hold; leave them out with --exclude '{first}'{cast}"
    )


def _extras(checkpoint: Checkpoint, prefix: tuple[PathPart, ...]) -> list[Extra]:
    depth = len(prefix)
    return [
        replace(extra, name=".".join(map(str, extra.path[depth:])), path=extra.path[depth:])
        for extra in checkpoint.extras()
        if extra.path[:depth] == prefix and len(extra.path) > depth
    ]


def plan_conversion(checkpoint: Checkpoint, holds: Holds, title: str, options: ConvertOptions) -> ConvertPlan:
    """The plan of writing ``checkpoint`` into a format that ``holds`` what it says
    (``title`` names it in messages)."""
    view = model_view(checkpoint, key=options.key, all_tensors=options.all_tensors)
    kept, cast = _chosen(view.entries, options, checkpoint.label)
    new_names = {old: new for new, old in options.names.apply([entry.name for entry in kept]).items()}
    out_dtype = {
        entry.name: options.dtype or entry.dtype if entry.name in cast else entry.dtype for entry in kept
    }
    _refuse_unheld(((e, out_dtype[e.name]) for e in kept), holds, title, checkpoint.label)
    extras = [] if checkpoint.payload is None else _extras(checkpoint, view.prefix)
    if extras and not options.drop_extras and not holds.extras:
        raise UsageError(
            f"{checkpoint.label}: {title} holds tensors only, and this checkpoint also has "
            f"{plural(len(extras), 'other value')} ({_some([x.name for x in extras])}); "
            f"{DROP_EXTRAS} leaves them out"
        )
    kept_extras = [] if options.drop_extras or not holds.extras else extras
    plan = ConvertPlan(
        checkpoint,
        [],
        {},
        None,
        {},
        prefix=view.prefix_name,
        renamed=sum(1 for old, new in new_names.items() if old != new),
        cast=[new_names[name] for name in new_names if name in cast],
        extras_kept=len(kept_extras),
        extras_dropped=len(extras) - len(kept_extras),
    )
    _lay_out(plan, kept, new_names, out_dtype, holds)
    _tree(plan, view.prefix, kept, kept_extras, holds, bool(options.names))
    return plan


def _lay_out(
    plan: ConvertPlan,
    kept: list[TensorEntry],
    new_names: dict[str, str],
    out_dtype: dict[str, str],
    holds: Holds,
) -> None:
    """Give each kept entry its output name, dtype and storage: the source's where the
    target holds it, else a storage of its own (shared by tied names where ties are held)."""
    source = plan.source
    if not holds.views:
        plan.stored_whole = sorted({new_names[e.name] for pair in partial_overlaps(kept) for e in pair})
    keys: dict[Any, str] = {}
    seen: set[Any] = set()
    for entry in kept:
        name, dtype = new_names[entry.name], out_dtype[entry.name]
        plain = _plain(source, entry) and dtype == entry.dtype
        if holds.views and plain:
            plan.storages.setdefault(entry.storage_key, source.storage_of(entry))
            plan.entries.append(replace(entry, name=name))
            continue
        if not holds.ties and identity(entry) in seen:
            plan.ties_copied.append(name)
        seen.add(identity(entry))
        tie = identity(entry) if holds.ties else (identity(entry), entry.name)
        if tie not in keys:
            key = keys[tie] = f"out/{len(keys)}"
            if plain:
                storage = source.storage_of(entry)
                assert storage.offset is not None
                offset = storage.offset + entry.byte_span[0]
                plan.storages[key] = replace(storage, key=key, nbytes=entry.nbytes, offset=offset)
            else:
                plan.jobs[key] = Materialize(entry, dtype)
        plan.entries.append(_contiguous(entry, name, dtype, keys[tie]))


def _contiguous(entry: TensorEntry, name: str, dtype: str, key: str) -> TensorEntry:
    stride: list[int] = []
    step = 1
    for size in reversed(entry.shape):
        stride.insert(0, step)
        step *= size
    return replace(
        entry, name=name, dtype=dtype, stride=tuple(stride), storage_key=key, storage_offset=0, chunks=()
    )


_GONE = object()


def _tree(
    plan: ConvertPlan,
    prefix: tuple[PathPart, ...],
    kept: list[TensorEntry],
    extras: list[Extra],
    holds: Holds,
    renaming: bool,
) -> None:
    """The object tree around the tensors: the source's (pruned to what is kept) where the
    target nests and names stay; else a flat table, with the values kept beside it."""
    depth = len(prefix)
    payload = plan.source.payload
    if holds.nesting and not renaming and payload is not None:
        outputs = [replace(new, path=old.path[depth:]) for old, new in zip(kept, plan.entries, strict=True)]
        by_path = {old.path: new for old, new in zip(kept, outputs, strict=True)}
        node = payload
        for part in prefix:
            node = node[part]
        plan.entries = outputs
        pruned = _prune(node, by_path, keep_values=bool(extras))
        plan.payload = {} if pruned is _GONE else pruned
        return
    plan.entries = [replace(entry, path=(entry.name,)) for entry in plan.entries]
    if extras:
        plan.payload = {entry.name: entry for entry in plan.entries}
        for extra in extras:
            if extra.name in plan.payload:
                raise UsageError(f"{extra.name}: names both a tensor and another value of the output")
            plan.payload[extra.name] = extra.value


def _prune(node: Any, by_path: dict[tuple[PathPart, ...], TensorEntry], *, keep_values: bool) -> Any:
    """``node`` with each kept entry replaced by its output entry, the rest left out
    (containers emptied by that too); other values kept when ``keep_values``."""
    if isinstance(node, TensorEntry):
        return by_path.get(node.path, _GONE)
    if isinstance(node, dict):
        rebuilt = type(node)() if type(node) in (dict, OrderedDict) else {}
        for key, value in node.items():
            kept = _prune(value, by_path, keep_values=keep_values)
            if kept is not _GONE:
                rebuilt[key] = kept
        if hasattr(rebuilt, "__dict__") and hasattr(node, "__dict__"):
            rebuilt.__dict__.update(vars(node))
        return rebuilt if rebuilt or not node else _GONE
    if isinstance(node, list | tuple):
        items = [
            kept for value in node if (kept := _prune(value, by_path, keep_values=keep_values)) is not _GONE
        ]
        return (tuple(items) if isinstance(node, tuple) else items) if items or not node else _GONE
    return node if keep_values else _GONE
