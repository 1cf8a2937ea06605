"""``paramctl list`` as a library call: the selected entries, their sharing and totals."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from paramctl.checkpoint import Checkpoint, Chunk, Extra, LongArray, TensorEntry, join_path, model_view
from paramctl.formats import format_of
from paramctl.select import Selection, select
from paramctl.storage import shared_names, stored_bytes

SortKey = Literal["file", "name", "size", "numel"]


@dataclass(frozen=True)
class DTypeTotal:
    tensors: int = 0
    numel: int = 0
    bytes: int = 0

    def add(self, entry: TensorEntry) -> DTypeTotal:
        return DTypeTotal(self.tensors + 1, self.numel + entry.numel, self.bytes + entry.nbytes)

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per element (8.5 for GGUF's Q8_0: bytes are not numel * itemsize)."""
        return self.bytes * 8 / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class Totals:
    """Sums over listed tensors. ``unique_bytes`` counts shared bytes once."""

    tensors: int
    numel: int
    bytes: int
    unique_bytes: int
    by_dtype: dict[str, DTypeTotal]

    @classmethod
    def of(cls, entries: Sequence[TensorEntry]) -> Totals:
        by_dtype: dict[str, DTypeTotal] = {}
        for entry in entries:
            by_dtype[entry.dtype] = by_dtype.get(entry.dtype, DTypeTotal()).add(entry)
        return cls(
            tensors=len(entries),
            numel=sum(entry.numel for entry in entries),
            bytes=sum(entry.nbytes for entry in entries),
            unique_bytes=stored_bytes(entries),
            by_dtype=by_dtype,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensors": self.tensors,
            "numel": self.numel,
            "bytes": self.bytes,
            "unique_bytes": self.unique_bytes,
            "by_dtype": {
                name: {**vars(total), "bits_per_weight": total.bits_per_weight}
                for name, total in self.by_dtype.items()
            },
        }


@dataclass(frozen=True)
class ListedTensor:
    """One row of ``paramctl list``: an entry and the other names on its storage."""

    entry: TensorEntry
    shared_with: tuple[str, ...] = ()
    stats: dict[str, Any] | None = None
    # With ``--by-file``: the file(s) of the checkpoint holding the tensor's bytes.
    file: str | None = None

    @property
    def name(self) -> str:
        return self.entry.name

    def to_dict(self) -> dict[str, Any]:
        row = self.entry.to_dict()
        row["shared_with"] = list(self.shared_with)
        if self.stats is not None:
            row.update(self.stats)
        if self.file is not None:
            row["file"] = self.file
        return row


@dataclass(frozen=True)
class Listing:
    """What ``paramctl list`` shows, as data."""

    source: str
    format: str
    rows: list[ListedTensor]
    totals: Totals
    prefix: str = ""
    prefix_detected: bool = False
    top_level_keys: list[str] = field(default_factory=list)
    extras: list[Extra] | None = None
    # How shapes are ordered, where the file stores them otherwise (GGUF's are reversed).
    shape_order: str = ""
    # With ``--chunks``: where each piece of a split tensor lies (``chunk_rows``).
    chunks: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "file": self.source,
            "format": self.format,
            "prefix": self.prefix,
            "shape_order": self.shape_order or "as stored",
            "tensors": [row.to_dict() for row in self.rows],
            "totals": self.totals.to_dict(),
        }
        if self.extras is not None:
            data["extras"] = [extra.to_dict() for extra in self.extras]
        if self.chunks is not None:
            data["chunks"] = self.chunks
        return data


def sort_entries(entries: list[TensorEntry], key: SortKey) -> list[TensorEntry]:
    """File order, by name, or largest first (by bytes or element count)."""
    if key == "name":
        return sorted(entries, key=lambda e: e.name)
    if key == "size":
        return sorted(entries, key=lambda e: -e.nbytes)
    if key == "numel":
        return sorted(entries, key=lambda e: -e.numel)
    return list(entries)


def build_listing(
    checkpoint: Checkpoint,
    selection: Selection = Selection(),
    *,
    key: str | None = None,
    all_tensors: bool = False,
    sort: SortKey = "file",
    extras: bool = False,
    full: bool = False,
    by_file: bool = False,
    chunks: bool = False,
) -> Listing:
    """The rows, totals and provenance that ``paramctl list`` renders.

    Long array values among the extras (a vocabulary) are summarized unless ``full``.
    Sharing is judged over the whole checkpoint, so a tied name outside the view or the
    selection still marks its partner.

    >>> import torch, tempfile, os
    >>> from paramctl.formats import read_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "tied.pt")
    >>> weight = torch.zeros(4)
    >>> torch.save({"embed": weight, "head": weight, "bias": torch.zeros(2)}, path)
    >>> listing = build_listing(read_checkpoint(path))
    >>> [(row.name, row.shared_with) for row in listing.rows], listing.totals.unique_bytes
    ([('embed', ('head',)), ('head', ('embed',)), ('bias', ())], 24)
    """
    view = model_view(checkpoint, key=key, all_tensors=all_tensors)
    chosen = select(view.entries, selection)
    rows = [ListedTensor(entry) for entry in sort_entries(chosen, sort)]
    partners = shared_names(checkpoint.entries, by=lambda e: join_path(e.path))
    if partners:
        shown_as = {join_path(e.path): e.name for e in view.entries}
        rows = [
            replace(row, shared_with=tuple(shown_as.get(p, p) for p in partners[path]))
            if (path := join_path(row.entry.path)) in partners
            else row
            for row in rows
        ]
    if by_file:
        rows = [replace(row, file=", ".join(files_of(checkpoint, row.entry))) for row in rows]
    top = list(checkpoint.payload) if isinstance(checkpoint.payload, dict) else []
    return Listing(
        source=checkpoint.label,
        format=checkpoint.format,
        rows=rows,
        totals=Totals.of(chosen),
        prefix=view.prefix_name,
        prefix_detected=view.auto_detected,
        top_level_keys=[str(k) for k in top],
        extras=_extras(checkpoint, full) if extras else None,
        shape_order=format_of(checkpoint).shape_order,
        chunks=chunk_rows(checkpoint, chosen) if chunks else None,
    )


def _extras(checkpoint: Checkpoint, full: bool) -> list[Extra]:
    found = checkpoint.extras()
    if not full:
        return found
    return [replace(x, value=list(x.value.items)) if isinstance(x.value, LongArray) else x for x in found]


def files_of(checkpoint: Checkpoint, entry: TensorEntry) -> list[str]:
    """The files holding an entry's bytes, relative to the checkpoint's directory."""
    root = checkpoint.path if checkpoint.path.is_dir() else checkpoint.path.parent
    held = (checkpoint.storages[key].file for key in checkpoint.storage_keys(entry))
    return list(dict.fromkeys(os.path.relpath(path, root) for path in held))


def chunk_rows(checkpoint: Checkpoint, entries: list[TensorEntry]) -> list[dict[str, Any]]:
    """Where each piece of each tensor lies: the file, the offsets and sizes in the whole
    tensor (a tensor in one piece is one row covering all of it)."""
    rows = []
    for entry in entries:
        pieces = entry.chunks or (Chunk(entry.storage_key, (0,) * len(entry.shape), entry.shape),)
        for chunk in pieces:
            storage = checkpoint.storages[chunk.storage_key]
            rows.append(
                {
                    "name": entry.name,
                    "file": files_of(checkpoint, replace(entry, storage_key=chunk.storage_key, chunks=()))[0],
                    "offsets": list(chunk.offsets),
                    "sizes": list(chunk.sizes),
                    "bytes": chunk.numel * entry.itemsize,
                    "file_offset": storage.offset,
                }
            )
    return rows
