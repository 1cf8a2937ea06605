"""torch.distributed.checkpoint directories: ``.metadata`` and one ``__R_N.distcp`` per rank.

``.metadata`` (a pickle, read with stand-ins: :mod:`paramctl.formats.dcp._metadata`) gives
every tensor's global shape and dtype, its chunks (offsets and sizes in the whole tensor),
and where each chunk's bytes are: a ``torch.save`` archive at an offset in a rank file. Each
archive is checked as a whole ``.pt`` file is (its zip read one way, torch's rules) and its
pickle read to find its tensor and where the tensor's bytes start; nothing else is read.
A tensor in one chunk is a plain entry on that chunk's storage; a tensor in several has
:attr:`~paramctl.checkpoint.TensorEntry.chunks` and a storage with no bytes of its own.

>>> item_key("__0_0.distcp", 1641, 1577)
'__0_0.distcp@1641+1577'
>>> parse_item_key("__0_0.distcp@1641+1577")
('__0_0.distcp', 1641, 1577)
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from paramctl.checkpoint import Checkpoint, Chunk, Storage, TensorEntry, contiguous_stride
from paramctl.dtypes import DTYPES
from paramctl.errors import CorruptCheckpoint, ExitCode, LimitExceeded
from paramctl.formats._limits import LIMITS, check_count
from paramctl.formats._numpy_pickle import inline_storages
from paramctl.formats._pickle import StorageRef, restricted_load
from paramctl.formats._source import descriptor_of, open_binary
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors, storage_collector
from paramctl.formats.dcp._metadata import (
    MAX_METADATA_BYTES,
    BytesStorageMetadata,
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    StorageInfo,
    TensorProperties,
    TensorStorageMetadata,
    load_metadata,
)
from paramctl.formats.dcp.layout import METADATA, NAME
from paramctl.formats.torch_zip.read import data_start
from paramctl.formats.torch_zip.window import open_item


class UnsafeItemPath(CorruptCheckpoint):
    """``.metadata`` puts an item in a file outside the checkpoint's directory."""

    exit_code = ExitCode.UNSAFE


def item_key(relative_path: str, offset: int, length: int) -> str:
    """The storage key of one saved item: its rank file and byte range there."""
    return f"{relative_path}@{offset}+{length}"


def parse_item_key(key: str) -> tuple[str, int, int]:
    relative_path, _, span = key.rpartition("@")
    offset, _, length = span.partition("+")
    return relative_path, int(offset), int(length)


class Item(NamedTuple):
    """One saved item's archive: where it is, its pickle's payload, its storage if any."""

    key: str
    payload: Any
    storage: Storage | None
    entry: TensorEntry | None


class _Unpickled(NamedTuple):
    """What an item's ``data.pkl`` holds: its payload (tensors as entries, each checked to
    fit its storage) and the storage records it names; ``plain`` is its tensor when it is
    what a chunk's item holds: one contiguous tensor from the first byte of one record."""

    payload: Any
    refs: dict[str, StorageRef]
    entries: tuple[TensorEntry, ...]
    plain: TensorEntry | None


class ItemReader:
    """Reads the items of one DCP directory: its rank files opened once each, and each
    distinct ``data.pkl`` unpickled once. Every chunk of a tensor's shape and dtype holds
    the same pickle, and the same bytes always unpickle alike (only the allowlist's
    stand-ins run, and they depend on their arguments alone); only a pickle that is a lone
    tensor, whose result is immutable, is kept."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # The byte orders of the tensors' items (their byteorder records, little without).
        self.byteorders: set[str] = set()
        self._files: dict[str, tuple[BinaryIO, int, Path]] = {}
        self._tensors: dict[bytes, _Unpickled] = {}

    def __enter__(self) -> ItemReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for file, _, _ in self._files.values():
            file.close()

    def _rank_file(self, relative: str) -> tuple[BinaryIO, int, Path]:
        """The open rank file, its size and its path."""
        opened = self._files.get(relative)
        if opened is None:
            path = self.directory / relative
            if not path.is_file():
                raise CorruptCheckpoint(f"{self.directory}: rank file {relative} does not exist")
            file = open_binary(path)
            opened = self._files[relative] = (file, descriptor_of(file)[1], path)
        return opened

    def read(self, info: Any) -> Item:
        """The ``torch.save`` archive one ``_StorageInfo`` points to, its structure checked
        as a whole ``.pt`` file's is."""
        directory, fields = self.directory, vars(info)  # StorageInfo's fields, each of its type
        relative, offset, length = fields.get("relative_path"), fields.get("offset"), fields.get("length")
        if type(relative) is not str or type(offset) is not int or type(length) is not int:
            raise CorruptCheckpoint(f"{directory}: .metadata places an item nowhere ({relative!r:.60})")
        if "/" in relative or "\\" in relative or relative in ("", ".", ".."):
            raise UnsafeItemPath(f"{directory}: .metadata names the file {relative!r} outside the directory")
        if fields.get("transform_descriptors"):
            raise CorruptCheckpoint(f"{directory}: {relative}: transformed (compressed) items are not read")
        file, size, path = self._rank_file(relative)
        key = item_key(relative, offset, length)
        where = f"{directory}: {key}"
        if offset < 0 or length < 0 or offset + length > size:
            raise CorruptCheckpoint(f"{where}: the item runs past the end of its rank file ({size:,} bytes)")
        archive = open_item(file, offset, length, where)
        archive.refuse_problems()
        data = archive.member("data.pkl", LIMITS.pickle_bytes)
        unpickled = self._tensors.get(data) or self._unpickle(data, where, path, archive.byteorder())
        starts = {name: data_start(archive, name, ref, where) for name, ref in unpickled.refs.items()}
        if not unpickled.entries:
            return Item(key, unpickled.payload, None, None)
        entry = unpickled.plain
        start = None if entry is None else starts[entry.storage_key]
        if entry is None or start is None:
            raise CorruptCheckpoint(f"{where}: the chunk is not a plain contiguous tensor")
        dtype = unpickled.refs[entry.storage_key].dtype
        self.byteorders.add(archive.byteorder())
        return Item(key, None, Storage(key, path, dtype, entry.nbytes, offset + start), entry)

    def _unpickle(self, data: bytes, where: str, path: Path, byteorder: str) -> _Unpickled:
        refs, storage_ref = storage_collector()
        payload = restricted_load(data, storage_ref, what=f"{where}: data.pkl")
        inline = inline_storages(payload, path, byteorder)
        payload, entries = name_tensors(payload)
        # A storage record holds exactly its storage's bytes (data_start refuses any other).
        sizes = {name: ref.nbytes for name, ref in refs.items()}
        sizes.update((name, storage.nbytes) for name, storage in inline.items())
        for entry in entries:
            check_entry_fits(entry, sizes[entry.storage_key])
        unpickled = _Unpickled(payload, refs, tuple(entries), _plain(entries, refs))
        if isinstance(payload, TensorEntry) and not inline:
            self._tensors[data] = unpickled
        return unpickled


def _plain(entries: list[TensorEntry], refs: dict[str, StorageRef]) -> TensorEntry | None:
    """The tensor of a chunk's item: its one tensor, contiguous from a record's first byte."""
    if len(entries) != 1:
        return None
    (entry,) = entries
    return entry if entry.storage_key in refs and not entry.storage_offset and entry.is_contiguous else None


def _sizes(value: Any, where: str, what: str) -> tuple[int, ...]:
    """A shape or chunk offsets: a tuple of plain non-negative integers, as torch writes."""
    if isinstance(value, tuple) and len(value) <= 64:
        for size in value:
            if type(size) is not int or size < 0:
                break
        else:
            return value
    raise CorruptCheckpoint(f"{where}: {what} is {value!r:.60}, not a tuple of sizes")


def _index(directory: Path, metadata: Metadata) -> dict[tuple[str, tuple[int, ...] | None], StorageInfo]:
    """``storage_data`` by (fully-qualified name, chunk offsets)."""
    found: dict[tuple[str, tuple[int, ...] | None], StorageInfo] = {}
    storage_data = metadata.get("storage_data") or {}
    check_count(f"{directory}: .metadata", "storage records", len(storage_data), LIMITS.tensors)
    for index, info in storage_data.items():
        if not isinstance(index, MetadataIndex) or not isinstance(info, StorageInfo):
            raise CorruptCheckpoint(
                f"{directory}: .metadata's storage_data holds {type(index).__name__} keys"
            )
        offset, fqn = index.get("offset"), index.get("fqn")
        where = None if offset is None else _sizes(offset, f"{directory}: {fqn}", "a chunk offset")
        found[(str(fqn), where)] = info
    return found


def _load(directory: Path) -> Metadata:
    with open_binary(directory / METADATA) as file:
        data = file.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise LimitExceeded(
            f"{directory}: .metadata", "its size", f"paramctl reads at most {MAX_METADATA_BYTES:,} bytes"
        )
    try:
        metadata = load_metadata(data)
    except CorruptCheckpoint as exc:
        exc.args = (f"{directory}: {exc}",)
        raise
    items = metadata.get("state_dict_metadata") or {}
    check_count(f"{directory}: .metadata", "items", len(items), LIMITS.tensors)
    if not all(type(fqn) is str for fqn in items):
        raise CorruptCheckpoint(f"{directory}: .metadata names an item by something other than text")
    return metadata


def read(directory: Path) -> Checkpoint:
    metadata = _load(directory)
    where = _index(directory, metadata)
    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    payload: dict[Any, Any] = {}
    with ItemReader(directory) as items:
        for fqn, item in (metadata.get("state_dict_metadata") or {}).items():
            # Keyed by the fully-qualified name, as torch.distributed.checkpoint names them.
            path = (str(fqn),)
            if isinstance(item, BytesStorageMetadata):
                info = where.get((fqn, None))
                if info is None:
                    raise CorruptCheckpoint(f"{directory}: {fqn}: .metadata says not where it is")
                payload[fqn] = items.read(info).payload
            elif isinstance(item, TensorStorageMetadata):
                entry = _tensor(directory, items, fqn, path, item, where, storages)
                entries.append(entry)
                payload[fqn] = entry
            else:
                raise CorruptCheckpoint(f"{directory}: {fqn}: an item of unknown kind")
    # torch.load swaps each item's bytes from its own byte order; paramctl reads a whole
    # checkpoint in one (a DCP directory saved on a big-endian machine reads as such).
    if len(items.byteorders) > 1:
        raise CorruptCheckpoint(f"{directory}: its items were saved in both byte orders")
    byteorder = next(iter(items.byteorders), "little")
    return Checkpoint(directory, NAME, entries, storages, payload=payload, byteorder=byteorder)


def _tensor(
    directory: Path,
    items: ItemReader,
    fqn: str,
    path: tuple[Any, ...],
    item: TensorStorageMetadata,
    where: dict[tuple[str, tuple[int, ...] | None], StorageInfo],
    storages: dict[str, Storage],
) -> TensorEntry:
    named = f"{directory}: {fqn}"
    properties = item.get("properties")
    dtype = str(properties.get("dtype") if isinstance(properties, TensorProperties) else "")
    shape = _sizes(item.get("size") or (), named, "the shape")
    if dtype not in DTYPES:
        raise CorruptCheckpoint(f"{named}: unknown dtype {dtype!r:.40}")
    chunks = []
    for chunk in item.get("chunks") or []:
        if not isinstance(chunk, ChunkStorageMetadata):
            raise CorruptCheckpoint(f"{named}: a chunk is a {type(chunk).__name__}")
        offsets = _sizes(chunk.get("offsets"), named, "a chunk's offsets")
        sizes = _sizes(chunk.get("sizes"), named, "a chunk's sizes")
        info = where.get((fqn, offsets))
        if info is None:
            raise CorruptCheckpoint(f"{named}: chunk at {list(offsets)} is in no file")
        found = items.read(info)
        entry = found.entry
        if entry is None or found.storage is None or entry.shape != sizes or entry.dtype != dtype:
            raise CorruptCheckpoint(f"{named}: chunk at {list(offsets)} is not a {dtype} {list(sizes)}")
        if (
            len(offsets) != len(shape)
            or len(sizes) != len(shape)
            or any(o + s > n for o, s, n in zip(offsets, sizes, shape, strict=True))
        ):
            raise CorruptCheckpoint(f"{named}: chunk at {list(offsets)} falls outside {list(shape)}")
        storages[found.key] = found.storage
        chunks.append(Chunk(found.key, offsets, sizes))
    if len(chunks) > 1:
        _check_tiling(named, chunks)
    numel, held = math.prod(shape), sum(chunk.numel for chunk in chunks)
    if held != numel:
        raise CorruptCheckpoint(f"{named}: its chunks hold {held} of {numel} elements")
    stride = contiguous_stride(shape)
    if len(chunks) == 1:
        return TensorEntry(fqn, path, shape, dtype, stride, chunks[0].storage_key)
    key = f"{fqn}@chunks"
    storages[key] = Storage(key, directory, dtype, DTYPES[dtype].nbytes_for(numel), None, chunked=True)
    return TensorEntry(fqn, path, shape, dtype, stride, key, chunks=tuple(sorted(chunks, key=_OFFSETS)))


_OFFSETS = operator.attrgetter("offsets")
# Beyond this many chunks of one tensor, only neighbours (in offset order) are compared: a
# split along one dimension, as FSDP and tensor parallelism write, overlaps only there.
_PAIRWISE_CHUNKS = 512


def _check_tiling(named: str, chunks: list[Chunk]) -> None:
    """No two chunks share an element (with the count of elements checked, they tile the
    tensor): where they overlapped, torch's load and paramctl's reads could take different
    bytes for one element."""
    ordered = sorted(chunks, key=_OFFSETS)
    if len(ordered) <= _PAIRWISE_CHUNKS:
        pairs: Iterable[tuple[Chunk, Chunk]] = itertools.combinations(ordered, 2)
    else:
        pairs = itertools.pairwise(ordered)
    for first, second in pairs:
        bounds = tuple((o, o + s) for o, s in zip(first.offsets, first.sizes, strict=True))
        if first.numel and second.numel and second.selects(bounds):
            raise CorruptCheckpoint(
                f"{named}: chunks at {list(first.offsets)} and {list(second.offsets)} overlap"
            )
