"""Storage identity and byte intervals: the one place that says which names share bytes.

Every question about sharing reduces to three facts a reader records for each entry: the
storage it views (``storage_key``, unique within a checkpoint, whatever file holds it), and
the half-open byte interval of that storage it can touch (``TensorEntry.byte_span``).
From those:

- :func:`identity`: two entries with the same identity are the same values (a tie);
- :func:`by_storage` and :func:`shared_names`: names that view one storage;
- :func:`chain_views` and :func:`relation`: how the names of one storage relate (``alias``,
  ``overlapping``, ``disjoint`` or ``mixed``);
- :func:`stored_bytes`: what a set of entries occupies, overlapping bytes counted once;
- :func:`distinct_views`: one entry per identity, the others as aliases of it;
- :func:`overlapping`: the names whose bytes a change to one entry would reach too;
- :func:`fills_span` and :func:`covers_storage`: whether writing an entry rewrites all of it.

>>> from paramctl.checkpoint import TensorEntry
>>> weight = TensorEntry("embed.weight", ("embed.weight",), (4,), "float32", (1,), "0")
>>> head = TensorEntry("head.weight", ("head.weight",), (4,), "float32", (1,), "0")
>>> half = TensorEntry("half", ("half",), (2,), "float32", (1,), "0", storage_offset=2)
>>> relation(chain_views([weight, head])), relation(chain_views([weight, half]))
('alias', 'overlapping')
>>> stored_bytes([weight, head, half])
16
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from paramctl.checkpoint import Storage, TensorEntry

Relation = Literal["alias", "overlapping", "disjoint", "mixed"]
ViewIdentity = tuple[str, int, tuple[int, ...], tuple[int, ...], str]


class Spanned(Protocol):
    """Anything placed on a storage's bytes: an entry, or an entry located in a region."""

    @property
    def byte_span(self) -> tuple[int, int]: ...


S = TypeVar("S", bound=Spanned)


def identity(entry: TensorEntry) -> ViewIdentity:
    """What makes two entries the same values: the same bytes, viewed the same way.

    >>> from paramctl.checkpoint import TensorEntry
    >>> a = TensorEntry("a", ("a",), (2,), "float32", (1,), "s")
    >>> identity(a)
    ('s', 0, (2,), (1,), 'float32')
    """
    return (entry.storage_key, entry.storage_offset, entry.shape, entry.stride, entry.dtype)


def by_storage(entries: Iterable[TensorEntry]) -> dict[str, list[TensorEntry]]:
    """Entries grouped by the storage they view, groups and members in first-seen order."""
    groups: dict[str, list[TensorEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.storage_key, []).append(entry)
    return groups


def shared_names(
    entries: Sequence[TensorEntry], by: Callable[[TensorEntry], str] = lambda e: e.name
) -> dict[str, tuple[str, ...]]:
    """For each name whose storage other names use too, those other names, in order.

    >>> from paramctl.checkpoint import TensorEntry
    >>> a = TensorEntry("a", ("a",), (2,), "float32", (1,), "s0")
    >>> b = TensorEntry("b", ("b",), (2,), "float32", (1,), "s0")
    >>> shared_names([a, b])
    {'a': ('b',), 'b': ('a',)}
    """
    shared: dict[str, tuple[str, ...]] = {}
    for group in by_storage(entries).values():
        if len(group) > 1:
            names = [by(entry) for entry in group]
            for name in names:
                shared[name] = tuple(other for other in names if other != name)
    return shared


def overlaps(first: tuple[int, int], second: tuple[int, int]) -> bool:
    """Whether two half-open byte intervals share a byte.

    >>> overlaps((0, 8), (4, 12)), overlaps((0, 8), (8, 12))
    (True, False)
    """
    return first[0] < second[1] and second[0] < first[1]


def chain_views(members: Iterable[S]) -> list[list[S]]:
    """Split names placed on one storage into runs whose byte intervals chain by overlap."""
    views: list[list[S]] = []
    reach = -1
    for member in sorted(members, key=lambda m: m.byte_span):
        start, end = member.byte_span
        if views and start < reach:
            views[-1].append(member)
            reach = max(reach, end)
        else:
            views.append([member])
            reach = end
    return views


def relation(views: Sequence[Sequence[Spanned]]) -> Relation:
    """What the names of one storage are to each other, from :func:`chain_views`."""
    if len(views) == 1:
        return "alias" if len({m.byte_span for m in views[0]}) == 1 else "overlapping"
    return "disjoint" if all(len(view) == 1 for view in views) else "mixed"


def union_length(spans: Iterable[tuple[int, int]]) -> int:
    """Bytes covered by a set of half-open intervals, overlaps counted once.

    >>> union_length([(0, 8), (4, 12), (20, 24)])
    16
    """
    total, reach = 0, 0
    for start, end in sorted(spans):
        total += max(0, end - max(start, reach))
        reach = max(reach, end)
    return total


def stored_bytes(entries: Iterable[TensorEntry]) -> int:
    """Bytes the entries occupy, counting overlapping views of a storage once."""
    total = 0
    for group in by_storage(entries).values():
        if len(group) == 1:  # the common case, a storage of one tensor
            start, end = group[0].byte_span
            total += end - start
        else:
            total += union_length(entry.byte_span for entry in group)
    return total


def distinct_views(entries: Sequence[TensorEntry]) -> tuple[list[TensorEntry], dict[str, str]]:
    """One entry per identity (the first name in sorted order, as ``save_model`` keeps), in
    file order, and ``{other name: kept name}`` for the rest.

    >>> from paramctl.checkpoint import TensorEntry
    >>> b = TensorEntry("b", ("b",), (2,), "float32", (1,), "s")
    >>> a = TensorEntry("a", ("a",), (2,), "float32", (1,), "s")
    >>> kept, aliases = distinct_views([b, a])
    >>> [e.name for e in kept], aliases
    (['a'], {'b': 'a'})
    """
    groups: dict[ViewIdentity, list[TensorEntry]] = {}
    for entry in entries:
        groups.setdefault(identity(entry), []).append(entry)
    kept = {key: min(group, key=lambda e: e.name) for key, group in groups.items()}
    aliases = {e.name: kept[key].name for key, group in groups.items() for e in group if e is not kept[key]}
    order = {entry.name: index for index, entry in enumerate(entries)}
    return sorted(kept.values(), key=lambda e: order[e.name]), aliases


def partial_overlaps(entries: Sequence[TensorEntry]) -> list[tuple[TensorEntry, TensorEntry]]:
    """Pairs of distinct views of one storage that share bytes without being one tensor."""
    found = []
    for group in by_storage(distinct_views(entries)[0]).values():
        reaching: TensorEntry | None = None
        for entry in sorted(group, key=lambda e: e.byte_span):
            if reaching is not None and entry.byte_span[0] < reaching.byte_span[1]:
                found.append((reaching, entry))
            if reaching is None or entry.byte_span[1] > reaching.byte_span[1]:
                reaching = entry
    return found


def overlapping(entry: TensorEntry, others: Iterable[TensorEntry]) -> list[TensorEntry]:
    """The ``others`` on ``entry``'s storage whose bytes overlap its bytes."""
    return [
        other
        for other in others
        if other.storage_key == entry.storage_key
        and other.numel
        and overlaps(entry.byte_span, other.byte_span)
    ]


def fills_span(entry: TensorEntry) -> bool:
    """Whether the tensor's elements fill its byte span with no gaps or overlaps.

    >>> from paramctl.checkpoint import TensorEntry
    >>> fills_span(TensorEntry("t", ("t",), (3, 2), "float32", (1, 3), "s"))  # a transpose
    True
    """
    start, end = entry.byte_span
    if entry.nbytes != end - start:
        return False
    if entry.is_contiguous:
        return True
    dims = sorted((step, size) for size, step in zip(entry.shape, entry.stride, strict=True) if size != 1)
    expected = 1
    for step, size in dims:
        if step != expected:
            return False
        expected *= size
    return True


def covers_storage(entry: TensorEntry, storage: Storage) -> bool:
    """Whether writing ``entry`` rewrites every byte of ``storage``."""
    start, end = entry.byte_span
    return start == 0 and end == storage.nbytes and fills_span(entry)
