"""``paramctl shared``: which names share bytes, and how, from the file's own identity.

Like ``safetensors.torch._find_shared_tensors``, names are grouped by the storage they
view first, then split by the byte intervals they touch: names whose intervals chain by
overlap form one *view*. A storage viewed by two or more names is a group, and its
relation says what the names are to each other:

- ``alias``: one view, every name touching the same bytes (tied weights);
- ``overlapping``: one view, the names touching different but overlapping bytes (a slice
  saved alongside the tensor it was cut from);
- ``disjoint``: two or more views, each a single span (two halves of one tensor);
- ``mixed``: several views, some of them shared by more than one name (each name's
  ``view`` number tells them apart).

In safetensors each tensor has its own byte range, so storages whose ranges overlap in the
file are grouped too, and names that ``save_model`` dropped as duplicates (recorded in
``__metadata__``) come back as aliases of the tensor they were dropped for.

With ``by_value``, tensors stored apart but holding the same bytes (tied weights a
converter duplicated) are found as well: only tensors of equal dtype and shape are
compared, each by a BLAKE2b digest streamed over its bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from paramctl.checkpoint import Checkpoint, TensorEntry, model_view
from paramctl.select import Selection, select
from paramctl.storage import Relation, chain_views, relation, union_length

if TYPE_CHECKING:
    from paramctl.values import ValueReader

GroupRelation = Literal[Relation, "equal"]


@dataclass(frozen=True)
class SharedName:
    """One name of a group: its tensor, the bytes it touches, and which view it is in.

    ``start``/``end`` count from the start of the group's storage (its first storage in
    the file, when several are grouped). ``from_metadata`` marks a name the file records
    only as an alias in ``__metadata__``.
    """

    entry: TensorEntry
    start: int
    end: int
    view: int
    from_metadata: bool = False

    @property
    def name(self) -> str:
        return self.entry.name

    def to_dict(self) -> dict[str, Any]:
        data = self.entry.to_dict()
        data.update(start=self.start, end=self.end, view=self.view, from_metadata=self.from_metadata)
        return data


@dataclass(frozen=True)
class SharingGroup:
    """Names that share bytes (or, for ``equal``, hold the same bytes apart)."""

    relation: GroupRelation
    storage: str
    storage_bytes: int
    names: tuple[SharedName, ...]
    saved_bytes: int
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "relation": self.relation,
            "storage": self.storage,
            "storage_bytes": self.storage_bytes,
            "saved_bytes": self.saved_bytes,
            "names": [name.to_dict() for name in self.names],
        }
        if self.digest is not None:
            data["digest"] = self.digest
        return data


@dataclass(frozen=True)
class SharingReport:
    """Every group found, and what sharing saves in total."""

    source: str
    format: str
    groups: list[SharingGroup]
    tensors: int
    by_value: bool = False
    prefix: str = ""
    # Set for formats that store every tensor apart (no storage identity to share).
    identity_note: str = ""

    @property
    def names(self) -> int:
        return len({name.name for group in self.groups for name in group.names})

    @property
    def saved_bytes(self) -> int:
        return sum(group.saved_bytes for group in self.groups)

    def summary(self) -> str:
        """One line: the groups, the names in them, the bytes sharing saves.

        >>> SharingReport("m.pt", "zip", [], tensors=1).summary()
        'no shared storages among 1 tensor'
        """
        from paramctl.units import format_bytes, plural

        kinds = "shared storages" + (" or equal values" if self.by_value else "")
        note = f" ({self.identity_note})" if self.identity_note else ""
        if not self.groups:
            return f"no {kinds} among {plural(self.tensors, 'tensor')}{note}"
        groups, names = plural(len(self.groups), "group"), plural(self.names, "name")
        return f"{groups}, {names}, sharing saves {format_bytes(self.saved_bytes)}{note}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "format": self.format,
            "prefix": self.prefix,
            "by_value": self.by_value,
            "identity_note": self.identity_note,
            "groups": [group.to_dict() for group in self.groups],
            "summary": {
                "groups": len(self.groups),
                "names": self.names,
                "saved_bytes": self.saved_bytes,
                "tensors": self.tensors,
            },
        }


@dataclass(frozen=True)
class _Located:
    """An entry placed in a region: a storage, or storages whose bytes overlap in one file."""

    entry: TensorEntry
    region: int
    start: int
    end: int

    @property
    def byte_span(self) -> tuple[int, int]:
        return (self.start, self.end)


def _regions(checkpoint: Checkpoint) -> tuple[dict[str, int], dict[int, int], dict[int, int]]:
    """Assign each storage a region: storages whose bytes overlap in one file share one.

    Returns storage key -> region, region -> base (the offset in its file its spans count
    from, 0 where the bytes have no plain offset), and region -> its length from the base.
    """
    region_of: dict[str, int] = {}
    base: dict[int, int] = {}
    reach: dict[int, int] = {}
    placed = sorted(
        (s for s in checkpoint.storages.values() if s.offset is not None and s.nbytes > 0),
        key=lambda s: (str(s.file), s.offset, -s.nbytes),
    )
    file, end = None, -1
    for storage in placed:
        assert storage.offset is not None
        if storage.file != file or storage.offset >= end:
            region = len(base)
            base[region], reach[region], file, end = storage.offset, storage.offset, storage.file, -1
        region = len(base) - 1
        region_of[storage.key] = region
        end = max(end, storage.offset + storage.nbytes)
        reach[region] = end
    for storage in checkpoint.storages.values():
        if storage.key not in region_of:
            region = len(base)
            region_of[storage.key], base[region], reach[region] = region, 0, storage.nbytes
    return region_of, base, {region: reach[region] - base[region] for region in base}


def _locate(checkpoint: Checkpoint, entries: Sequence[TensorEntry]) -> tuple[list[_Located], dict[int, int]]:
    region_of, base, extent = _regions(checkpoint)
    located = []
    for entry in entries:
        if entry.numel == 0:
            continue  # an empty tensor touches no bytes, so it shares none
        storage = checkpoint.storage_of(entry)
        region = region_of[storage.key]
        shift = (storage.offset or 0) - base[region]
        start, end = entry.byte_span
        located.append(_Located(entry, region, start + shift, end + shift))
    return located, extent


def storage_groups(checkpoint: Checkpoint, entries: Sequence[TensorEntry]) -> list[SharingGroup]:
    """Groups of ``entries`` that view one storage (or overlapping bytes of one file).

    Reads metadata only.
    """
    located, extent = _locate(checkpoint, entries)
    by_region: dict[int, list[_Located]] = {}
    for item in located:
        by_region.setdefault(item.region, []).append(item)
    groups = []
    for region, members in by_region.items():
        if len(members) < 2:
            continue
        views = chain_views(members)
        names = [
            SharedName(member.entry, member.start, member.end, number, member.entry.recorded_alias)
            for number, view in enumerate(views, start=1)
            for member in view
        ]
        keys = dict.fromkeys(name.entry.storage_key for name in names)
        saved = sum(m.entry.nbytes for m in members) - union_length(m.byte_span for m in members)
        groups.append(SharingGroup(relation(views), "+".join(keys), extent[region], tuple(names), saved))
    return groups


def value_groups(
    checkpoint: Checkpoint,
    entries: Sequence[TensorEntry],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> list[SharingGroup]:
    """Groups of ``entries`` stored apart but holding the same bytes.

    Only tensors of equal dtype and shape are candidates; one digest per distinct location
    is streamed in chunks, so memory stays bounded whatever the tensor size.
    """
    from paramctl.values import ValueReader

    located, _ = _locate(checkpoint, entries)
    # One representative per distinct place and layout: aliases need no hashing.
    places: dict[tuple[Any, ...], list[_Located]] = {}
    for item in located:
        place = (item.region, item.start, item.entry.stride, item.entry.shape, item.entry.dtype)
        places.setdefault(place, []).append(item)
    candidates: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for place in places:
        candidates.setdefault((place[4], place[3]), []).append(place)
    groups = []
    with ValueReader(checkpoint) as reader:
        for (_, _), same_kind in candidates.items():
            if len(same_kind) < 2:
                continue
            by_digest: dict[str, list[tuple[Any, ...]]] = {}
            for place in same_kind:
                entry = places[place][0].entry
                by_digest.setdefault(_digest(reader, entry), []).append(place)
                if on_progress:
                    on_progress(entry.nbytes)
            for digest, equal in by_digest.items():
                if len(equal) < 2:
                    continue
                names = tuple(
                    SharedName(m.entry, m.start, m.end, copy, m.entry.recorded_alias)
                    for copy, place in enumerate(equal, start=1)
                    for m in places[place]
                )
                nbytes = names[0].entry.nbytes
                storages = "+".join(dict.fromkeys(n.entry.storage_key for n in names))
                groups.append(
                    SharingGroup("equal", storages, nbytes, names, nbytes * (len(equal) - 1), digest)
                )
    return groups


def value_work(checkpoint: Checkpoint, entries: Sequence[TensorEntry]) -> int:
    """An upper bound of the bytes :func:`value_groups` hashes (for a progress bar)."""
    shapes: dict[tuple[Any, ...], int] = {}
    for entry in entries:
        kind = (entry.dtype, entry.shape)
        shapes[kind] = shapes.get(kind, 0) + 1
    return sum(e.nbytes for e in entries if e.numel and shapes[(e.dtype, e.shape)] > 1)


def _digest(reader: ValueReader, entry: TensorEntry) -> str:
    """A BLAKE2b digest of an entry's bytes in element order, streamed in chunks."""
    hasher = hashlib.blake2b(digest_size=16)
    for chunk in reader.raw_chunks(entry):
        hasher.update(chunk)
    return hasher.hexdigest()


def find_shared(
    checkpoint: Checkpoint,
    selection: Selection = Selection(),
    *,
    key: str | None = None,
    all_tensors: bool = False,
    by_value: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> SharingReport:
    """What ``paramctl shared`` reports: storage groups, then (``by_value``) equal values.

    >>> import torch, tempfile, os
    >>> from paramctl import read_checkpoint
    >>> linear = torch.nn.Linear(1, 1, bias=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "tied.pt")
    >>> torch.save(torch.nn.Sequential(linear, linear).state_dict(), path)
    >>> [(g.relation, [n.name for n in g.names]) for g in find_shared(read_checkpoint(path)).groups]
    [('alias', ['0.weight', '1.weight'])]
    """
    view = model_view(checkpoint, key=key, all_tensors=all_tensors)
    chosen = select(view.entries, selection)
    groups = storage_groups(checkpoint, chosen)
    if by_value:
        groups += value_groups(checkpoint, chosen, on_progress=on_progress)
    note = _identity_note(checkpoint.format, by_value)
    return SharingReport(
        checkpoint.label, checkpoint.format, groups, len(chosen), by_value, view.prefix_name, note
    )


def _identity_note(format_name: str, by_value: bool) -> str:
    """What to say when the format cannot record shared storage at all."""
    from paramctl.formats import FORMATS_BY_NAME

    fmt = FORMATS_BY_NAME.get(format_name)
    if fmt is None or fmt.holds.ties:
        return ""
    if by_value:
        return f"{format_name} files store every tensor apart: groups are equal copies, found by value"
    return (
        f"{format_name} files store every tensor apart and record no sharing; --by-value finds equal copies"
    )
