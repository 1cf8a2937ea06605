"""PyTorch legacy checkpoints: the pre-1.6 layout, still written with
``torch.save(obj, f, _use_new_zipfile_serialization=False)``.

A run of pickles (magic number, protocol version, system info, the object tree, the list of
storage keys) followed by each storage as an 8-byte element count and its raw bytes, little
endian whatever the writing machine was (torch's loader reads them so). The file is read one
way: each pickle ends where its STOP is, every listed storage is found once with the count
its pickle gave, and nothing follows the last one.

>>> import os, tempfile, torch
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2, 3)}, path, _use_new_zipfile_serialization=False)
>>> [(e.name, e.shape, e.dtype) for e in read(Path(path)).entries]
[('w', (2, 3), 'float32')]
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._limits import LIMITS, Limits, check_count
from paramctl.formats._numpy_pickle import inline_storages
from paramctl.formats._pickle import StorageRef, restricted_load_at
from paramctl.formats._source import mapped
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors, storage_collector
from paramctl.formats.torch_legacy.layout import MAGIC_NUMBER, NAME

PROTOCOL_VERSION = 1001
# A legacy file is five pickles in a row: magic number, protocol, system info, objects, keys.
PICKLES = 5
_COUNT = 8


def pickle_spans(path: Path, data: mmap.mmap, limits: Limits = LIMITS) -> list[tuple[int, int]]:
    """Where each of the five pickles starts and ends (found by scanning, not loading)."""
    from paramctl.formats._pickle_scan import scan_pickle

    spans, position = [], 0
    for index in range(PICKLES):
        end = scan_pickle(data, position, limits=limits, what=f"{path}: pickle {index + 1} of {PICKLES}")
        spans.append((position, end))
        position = end
    return spans


def read(path: Path, limits: Limits = LIMITS) -> Checkpoint:
    with mapped(path) as data:
        return _read(path, data, limits)


def _load(path: Path, data: mmap.mmap, start: int, what: str, **options: Any) -> tuple[Any, int]:
    return restricted_load_at(data, start, whole=False, what=f"{path}: {what}", **options)


def _read(path: Path, data: mmap.mmap, limits: Limits) -> Checkpoint:
    magic, position = _load(path, data, 0, "the magic number", limits=limits)
    if magic != MAGIC_NUMBER:
        raise CorruptCheckpoint(f"{path}: not a legacy PyTorch checkpoint")
    protocol, position = _load(path, data, position, "the protocol version", limits=limits)
    if protocol != PROTOCOL_VERSION:
        raise CorruptCheckpoint(f"{path}: unsupported legacy protocol version")
    # The system info names the writer's byte order; torch reads the data as little endian.
    _, position = _load(path, data, position, "the system info", limits=limits)
    refs, storage_ref = storage_collector()
    payload, position = _load(
        path, data, position, "the object pickle", storage_ref=storage_ref, limits=limits
    )
    keys, position = _load(path, data, position, "the storage keys", limits=limits)
    if not isinstance(keys, list) or not all(type(key) is str for key in keys):
        raise CorruptCheckpoint(f"{path}: the storage key list is damaged")
    check_count(f"{path}: the storage key list", "storages", len(keys), limits.tensors)
    storages = _locate_storages(path, data, position, keys, refs)
    storages.update(inline_storages(payload, path, "little"))
    payload, entries = name_tensors(payload, limits=limits)
    for entry in entries:
        check_entry_fits(entry, storages[entry.storage_key].nbytes)
    return Checkpoint(path, NAME, entries, storages, payload, byteorder="little")


def _locate_storages(
    path: Path, data: mmap.mmap, position: int, keys: list[str], refs: dict[str, StorageRef]
) -> dict[str, Storage]:
    """Walk the storage section, reading only each 8-byte count, to find every storage."""
    storages: dict[str, Storage] = {}
    for key in keys:
        ref = refs.get(key)
        if ref is None:
            raise CorruptCheckpoint(f"{path}: storage {key} is listed but never used")
        if key in storages:
            raise CorruptCheckpoint(
                f"{path}: storage {key} is listed twice: torch would read its bytes twice"
            )
        if position + _COUNT > len(data):
            raise CorruptCheckpoint(f"{path}: truncated in the storage section")
        count = int.from_bytes(data[position : position + _COUNT], "little", signed=True)
        if count != ref.numel:
            raise CorruptCheckpoint(
                f"{path}: storage {key} holds {count:,} elements where its pickle says {ref.numel:,} "
                "(torch.load refuses it)"
            )
        nbytes = count * lookup_dtype(ref.dtype).itemsize
        offset = position + _COUNT
        if offset + nbytes > len(data):
            raise CorruptCheckpoint(f"{path}: storage {key} runs past the end of the file")
        storages[key] = Storage(key, path, ref.dtype, nbytes, offset, ref.location)
        position = offset + nbytes
    missing = set(refs) - set(storages)
    if missing:
        raise CorruptCheckpoint(f"{path}: storages {sorted(missing)[:3]} have no data")
    if position != len(data):
        raise CorruptCheckpoint(f"{path}: {len(data) - position:,} bytes follow the last storage")
    return storages
