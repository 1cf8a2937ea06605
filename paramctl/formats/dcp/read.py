"""torch.distributed.checkpoint directories: ``.metadata`` and one ``__R_N.distcp`` per rank.

``.metadata`` (a pickle, read with stand-ins: :mod:`paramctl.formats.dcp._metadata`) gives
every tensor's global shape and dtype, its chunks (offsets and sizes in the whole tensor),
and where each chunk's bytes are: a ``torch.save`` archive at an offset in a rank file. Each
archive's zip directory is read to find where its tensor bytes start; nothing else is read.
A tensor in one chunk is a plain entry on that chunk's storage; a tensor in several has
:attr:`~paramctl.checkpoint.TensorEntry.chunks` and a storage with no bytes of its own.

>>> item_key("__0_0.distcp", 1641, 1577)
'__0_0.distcp@1641+1577'
>>> parse_item_key("__0_0.distcp@1641+1577")
('__0_0.distcp', 1641, 1577)
"""

from __future__ import annotations

import io
import itertools
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from paramctl.checkpoint import Checkpoint, Chunk, Storage, TensorEntry, contiguous_stride
from paramctl.dtypes import DTYPES
from paramctl.errors import CorruptCheckpoint, ExitCode, LimitExceeded
from paramctl.formats._limits import LIMITS, check_count
from paramctl.formats._source import open_binary, read_part
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


class _Window(io.RawIOBase):
    """Bytes ``[start, start + length)`` of an open file, as a file of their own.

    An item is a ``torch.save`` archive whose zip reading touches only its first and last
    few KiB (local headers, the pickle; the central directory): both are read once, in one
    ``pread`` each, and every other read goes to the file (a thousand items, two reads each).
    """

    _EDGE = 4 << 10

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        self._file, self._start, self._length, self._position = file, start, length, 0
        self._head = self._pread(0, min(length, self._EDGE))
        self._tail_start = max(len(self._head), length - self._EDGE)
        self._tail = self._pread(self._tail_start, length - self._tail_start)

    def _pread(self, position: int, size: int) -> bytes:
        return read_part(self._file, size, self._start + position)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._position, self._length)[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        position = self._position
        size = max(0, min(len(buffer), self._length - position))
        if position + size <= len(self._head):
            data = self._head[position : position + size]
        elif position >= self._tail_start:
            data = self._tail[position - self._tail_start : position - self._tail_start + size]
        else:
            data = self._pread(position, size)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


@dataclass(frozen=True)
class Item:
    """One saved item's archive: where it is, its pickle's payload, its storage if any."""

    key: str
    payload: Any
    storage: Storage | None
    entry: TensorEntry | None


def read_item(directory: Path, files: dict[str, BinaryIO], info: Any) -> Item:
    """The ``torch.save`` archive one ``_StorageInfo`` points to, read by the zip reader."""
    from paramctl.formats.torch_zip.read import read_archive_file

    relative = str(info.get("relative_path"))
    offset, length = int(info.get("offset")), int(info.get("length"))
    if "/" in relative or "\\" in relative or relative in ("", ".", ".."):
        raise UnsafeItemPath(f"{directory}: .metadata names the file {relative!r} outside the directory")
    if info.get("transform_descriptors"):
        raise CorruptCheckpoint(f"{directory}: {relative}: transformed (compressed) items are not read")
    path = directory / relative
    if relative not in files:
        if not path.is_file():
            raise CorruptCheckpoint(f"{directory}: rank file {relative} does not exist")
        files[relative] = open_binary(path)
    # A file object as zipfile and the zip reader use one: read, seek, tell.
    window = cast(BinaryIO, _Window(files[relative], offset, length))
    key = item_key(relative, offset, length)
    try:
        with zipfile.ZipFile(window) as archive:
            part = read_archive_file(path, window, archive)
    except zipfile.BadZipFile as exc:
        raise CorruptCheckpoint(f"{directory}: {key}: damaged item archive ({exc})") from exc
    if not part.entries:
        return Item(key, part.payload, None, None)
    (entry,) = part.entries
    storage = part.storage_of(entry)
    if storage.offset is None or not entry.is_contiguous or entry.storage_offset:
        raise CorruptCheckpoint(f"{directory}: {key}: the chunk is not a plain contiguous tensor")
    placed = Storage(key, path, storage.dtype, entry.nbytes, offset + storage.offset)
    return Item(key, None, placed, entry)


def _sizes(value: Any, what: str) -> tuple[int, ...]:
    """A shape or chunk offsets: a tuple of plain non-negative integers, as torch writes."""
    if not isinstance(value, tuple) or len(value) > 64 or not all(type(n) is int and n >= 0 for n in value):
        raise CorruptCheckpoint(f"{what} is {value!r:.60}, not a tuple of sizes")
    return value


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
        where = None if offset is None else _sizes(offset, f"{directory}: {fqn}: a chunk offset")
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
    files: dict[str, BinaryIO] = {}
    try:
        for fqn, item in (metadata.get("state_dict_metadata") or {}).items():
            # Keyed by the fully-qualified name, as torch.distributed.checkpoint names them.
            path = (str(fqn),)
            if isinstance(item, BytesStorageMetadata):
                info = where.get((fqn, None))
                if info is None:
                    raise CorruptCheckpoint(f"{directory}: {fqn}: .metadata says not where it is")
                payload[fqn] = read_item(directory, files, info).payload
            elif isinstance(item, TensorStorageMetadata):
                entry = _tensor(directory, files, fqn, path, item, where, storages)
                entries.append(entry)
                payload[fqn] = entry
            else:
                raise CorruptCheckpoint(f"{directory}: {fqn}: an item of unknown kind")
    finally:
        for file in files.values():
            file.close()
    return Checkpoint(directory, NAME, entries, storages, payload=payload)


def _tensor(
    directory: Path,
    files: dict[str, BinaryIO],
    fqn: str,
    path: tuple[Any, ...],
    item: TensorStorageMetadata,
    where: dict[tuple[str, tuple[int, ...] | None], StorageInfo],
    storages: dict[str, Storage],
) -> TensorEntry:
    properties = item.get("properties")
    dtype = str(properties.get("dtype") if isinstance(properties, TensorProperties) else "")
    shape = _sizes(item.get("size") or (), f"{directory}: {fqn}: the shape")
    if dtype not in DTYPES:
        raise CorruptCheckpoint(f"{directory}: {fqn}: unknown dtype {dtype!r:.40}")
    chunks = []
    for chunk in item.get("chunks") or []:
        if not isinstance(chunk, ChunkStorageMetadata):
            raise CorruptCheckpoint(f"{directory}: {fqn}: a chunk is a {type(chunk).__name__}")
        offsets = _sizes(chunk.get("offsets"), f"{directory}: {fqn}: a chunk's offsets")
        sizes = _sizes(chunk.get("sizes"), f"{directory}: {fqn}: a chunk's sizes")
        info = where.get((fqn, offsets))
        if info is None:
            raise CorruptCheckpoint(f"{directory}: {fqn}: chunk at {list(offsets)} is in no file")
        found = read_item(directory, files, info)
        if (
            found.entry is None
            or found.storage is None
            or (found.entry.shape, found.entry.dtype) != (sizes, dtype)
        ):
            raise CorruptCheckpoint(
                f"{directory}: {fqn}: chunk at {list(offsets)} is not a {dtype} {list(sizes)}"
            )
        if len(offsets) != len(shape) or any(
            o + s > n for o, s, n in zip(offsets, sizes, shape, strict=True)
        ):
            raise CorruptCheckpoint(
                f"{directory}: {fqn}: chunk at {list(offsets)} falls outside {list(shape)}"
            )
        storages[found.key] = found.storage
        chunks.append(Chunk(found.key, offsets, sizes))
    entry = TensorEntry(fqn, path, shape, dtype, contiguous_stride(shape), "", requires_grad=False)
    _check_tiling(directory, fqn, chunks)
    if sum(chunk.numel for chunk in chunks) != entry.numel:
        raise CorruptCheckpoint(
            f"{directory}: {fqn}: its chunks hold {sum(c.numel for c in chunks)} of {entry.numel} elements"
        )
    if len(chunks) == 1:
        return _replace(entry, storage_key=chunks[0].storage_key)
    key = f"{fqn}@chunks"
    storages[key] = Storage(key, directory, dtype, entry.nbytes, None, chunked=True)
    return _replace(entry, storage_key=key, chunks=tuple(sorted(chunks, key=lambda c: c.offsets)))


def _replace(entry: TensorEntry, **changes: Any) -> TensorEntry:
    from dataclasses import replace

    return replace(entry, **changes)


# Beyond this many chunks of one tensor, only neighbours (in offset order) are compared: a
# split along one dimension, as FSDP and tensor parallelism write, overlaps only there.
_PAIRWISE_CHUNKS = 512


def _check_tiling(directory: Path, fqn: str, chunks: list[Chunk]) -> None:
    """No two chunks share an element (with the count of elements checked, they tile the
    tensor): where they overlapped, torch's load and paramctl's reads could take different
    bytes for one element."""
    ordered = sorted(chunks, key=lambda chunk: chunk.offsets)
    if len(ordered) <= _PAIRWISE_CHUNKS:
        pairs: Iterable[tuple[Chunk, Chunk]] = itertools.combinations(ordered, 2)
    else:
        pairs = itertools.pairwise(ordered)
    for first, second in pairs:
        bounds = tuple((o, o + s) for o, s in zip(first.offsets, first.sizes, strict=True))
        if first.numel and second.numel and second.selects(bounds):
            raise CorruptCheckpoint(
                f"{directory}: {fqn}: chunks at {list(first.offsets)} and {list(second.offsets)} overlap"
            )
