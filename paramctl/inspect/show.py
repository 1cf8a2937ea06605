"""``paramctl show``: one tensor's metadata, statistics, values and distribution.

The tensor is a numpy view of the mapped file, and ``--slice`` indexes that view before
anything is read, so only the pages of the part shown are touched. The preview is the text
torch's ``repr`` prints under the requested print options (edges with ``...`` for big
tensors, every value with ``full``), produced by :mod:`paramctl.inspect.preview` without
importing torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, join_path, model_view
from paramctl.errors import UsageError
from paramctl.select import Selection, nothing_selected
from paramctl.stats import Histogram, TensorStats, histogram, tensor_stats
from paramctl.storage import shared_names

_INT = re.compile(r"^[+-]?\d+$")


def parse_index(text: str) -> tuple[Any, ...]:
    """Parse ``--slice`` text in Python's indexing syntax: integers, ``a:b:c``, ``...``.

    >>> parse_index("0, :5")
    (0, slice(None, 5, None))
    >>> parse_index("[..., -1]")
    (Ellipsis, -1)
    >>> parse_index("::2")
    (slice(None, None, 2),)
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    if not body.strip():
        return ()
    parts: list[Any] = []
    for raw in body.split(","):
        item = raw.strip()
        if item == "...":
            parts.append(Ellipsis)
        elif _INT.match(item):
            parts.append(int(item))
        elif ":" in item and item.count(":") <= 2:
            bounds = [b.strip() for b in item.split(":")]
            if not all(b == "" or _INT.match(b) for b in bounds):
                raise UsageError(f"--slice {text!r}: {item!r} is not start:stop[:step] of integers")
            numbers = [int(b) if b else None for b in bounds]
            if len(numbers) == 3 and numbers[2] is not None and numbers[2] <= 0:
                raise UsageError(f"--slice {text!r}: the step must be positive")
            parts.append(slice(*numbers))
        else:
            raise UsageError(f"--slice {text!r}: {item!r} is not an integer, a slice or ...")
    if parts.count(Ellipsis) > 1:
        raise UsageError(f"--slice {text!r}: ... may appear once")
    return tuple(parts)


@dataclass(frozen=True)
class TensorReport:
    """Everything ``paramctl show`` prints about one tensor (or a slice of it)."""

    source: str
    format: str
    entry: TensorEntry
    storage: Storage | None
    shared_with: tuple[str, ...]
    index: str | None
    shape: tuple[int, ...]
    stats: TensorStats
    histogram: Histogram
    preview: str

    def to_dict(self) -> dict[str, Any]:
        entry = self.entry
        storage = None
        if self.storage is not None:
            storage = {
                "key": self.storage.key,
                "file_offset": self.storage.offset,
                "bytes": self.storage.nbytes,
            }
        return {
            "file": self.source,
            "format": self.format,
            "name": entry.name,
            "shape": list(entry.shape),
            "dtype": entry.dtype,
            "numel": entry.numel,
            "bytes": entry.nbytes,
            "stride": list(entry.stride),
            # a sparse tensor has no strides, so no layout to be contiguous in
            "contiguous": len(entry.stride) == len(entry.shape) and entry.is_contiguous,
            "storage": storage,
            "storage_offset": entry.storage_offset,
            "requires_grad": entry.requires_grad,
            "shared_with": list(self.shared_with),
            "slice": self.index,
            "slice_shape": list(self.shape),
            "stats": {"numel": self.stats.numel, **self.stats.to_dict()},
            "histogram": self.histogram.to_dict(),
            "preview": self.preview,
        }


def find_entry(
    checkpoint: Checkpoint, name: str, *, key: str | None = None, all_tensors: bool = False
) -> TensorEntry:
    """The entry called ``name`` in the model view, or by its full path in the file."""
    view = model_view(checkpoint, key=key, all_tensors=all_tensors)
    for entry in view.entries:
        if entry.name == name:
            return entry
    for entry in checkpoint.entries:
        if join_path(entry.path) == name:
            return entry
    names = [entry.name for entry in view.entries]
    raise nothing_selected(Selection(names=frozenset([name])), names)


def _preview(values: Any, dtype: str, options: dict[str, Any], *, max_lines: int | None) -> str:
    """torch's ``repr`` under print ``options``; one taller than ``max_lines`` is summarised
    to its edges, as few as it takes."""
    from paramctl.inspect.preview import tensor_repr

    preview = tensor_repr(values, dtype, **options)
    for edges in (3, 2, 1):
        if max_lines is None or preview.count("\n") < max_lines:
            break
        preview = tensor_repr(values, dtype, **{**options, "threshold": 0, "edgeitems": edges})
    return preview


def show_tensor(
    checkpoint: Checkpoint,
    name: str,
    *,
    key: str | None = None,
    all_tensors: bool = False,
    index: str | None = None,
    bins: int = 20,
    precision: int = 4,
    full: bool = False,
    linewidth: int = 80,
    max_lines: int | None = None,
) -> TensorReport:
    """Read one tensor (or the ``index`` part of it) and describe it.

    A preview longer than ``max_lines`` is summarised to its edges (unless ``full``).

    >>> import torch, tempfile, os
    >>> from paramctl import read_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> torch.save({"w": torch.arange(6.0).reshape(2, 3)}, path)
    >>> report = show_tensor(read_checkpoint(path), "w", index="1, 1:")
    >>> report.preview, report.stats.mean
    ('tensor([4., 5.])', 4.5)
    """
    from paramctl.values import ValueReader

    if bins < 1:
        raise UsageError("--bins must be at least 1")
    if precision < 0:
        raise UsageError("--precision must not be negative")
    entry = find_entry(checkpoint, name, key=key, all_tensors=all_tensors)
    parts = parse_index(index) if index else None
    partners = shared_names(checkpoint.entries, by=lambda e: join_path(e.path))
    with ValueReader(checkpoint) as reader:
        try:
            values = reader.array(entry, parts)
        except (IndexError, ValueError, TypeError) as exc:
            raise UsageError(f"--slice {index!r} does not fit shape {list(entry.shape)}: {exc}") from exc
        stats = replace(tensor_stats(values), note=reader.note(entry))
        bars = histogram(values, stats, bins)
        options = {"precision": precision, "threshold": math.inf if full else 1000, "linewidth": linewidth}
        preview = _preview(values, entry.dtype, options, max_lines=None if full else max_lines)
        view_shape = tuple(values.shape)
    storage = checkpoint.storages.get(entry.storage_key) if checkpoint.fallback_tensors is None else None
    return TensorReport(
        source=checkpoint.label,
        format=checkpoint.format,
        entry=entry,
        storage=storage,
        shared_with=partners.get(join_path(entry.path), ()),
        index=index,
        shape=view_shape,
        stats=stats,
        histogram=bars,
        preview=preview,
    )
