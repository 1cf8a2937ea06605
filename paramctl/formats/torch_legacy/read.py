"""PyTorch legacy checkpoints: the pre-1.6 layout, still written with
``torch.save(obj, f, _use_new_zipfile_serialization=False)``.

A run of pickles (magic number, protocol version, system info, the object tree, the list of
storage keys) followed by each storage as an 8-byte element count and its raw bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._numpy_pickle import inline_storages
from paramctl.formats._pickle import StorageRef, restricted_load, storage_ref_from_pid
from paramctl.formats._source import open_binary
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors

NAME = "torch-legacy"
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# A legacy file is five pickles in a row: magic number, protocol, system info, objects, keys.
PICKLES = 5
# The file's first pickle holds only the magic number: LONG1 of 10 bytes, little-endian,
# after the protocol opcode (and, from protocol 4, a FRAME opcode).
MAGIC = b"\x8a\x0a" + MAGIC_NUMBER.to_bytes(10, "little")


def sniff(head: bytes) -> bool:
    r"""Legacy files open with the pickled magic number.

    >>> import pickle
    >>> [sniff(pickle.dumps(MAGIC_NUMBER, protocol=p)) for p in (2, 4, 5)], sniff(b"PK\x03\x04")
    ([True, True, True], False)
    """
    return head.startswith(b"\x80") and MAGIC in head[:32]


def read(path: Path) -> Checkpoint:
    with open_binary(path) as file:
        return _read(path, file)


def _read(path: Path, file: BinaryIO) -> Checkpoint:
    if restricted_load(file) != MAGIC_NUMBER:
        raise CorruptCheckpoint(f"{path}: not a legacy PyTorch checkpoint")
    if restricted_load(file) != PROTOCOL_VERSION:
        raise CorruptCheckpoint(f"{path}: unsupported legacy protocol version")
    sys_info = restricted_load(file)
    byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"

    refs: dict[str, StorageRef] = {}

    def storage_ref(pid: tuple[Any, ...]) -> StorageRef:
        ref = storage_ref_from_pid(pid)
        refs.setdefault(ref.key, ref)
        return ref

    payload = restricted_load(file, storage_ref)
    keys = restricted_load(file)
    if not isinstance(keys, list):
        raise CorruptCheckpoint(f"{path}: the storage key list is damaged")
    storages = _locate_storages(path, file, keys, refs, byteorder)
    storages.update(inline_storages(payload, path, byteorder))
    payload, entries = name_tensors(payload)
    for entry in entries:
        check_entry_fits(entry, storages[entry.storage_key].nbytes)
    return Checkpoint(path, NAME, entries, storages, payload, byteorder=byteorder)


def _locate_storages(
    path: Path, file: BinaryIO, keys: list[Any], refs: dict[str, StorageRef], byteorder: str
) -> dict[str, Storage]:
    """Walk the storage section, reading only each 8-byte count, to find every storage."""
    count_format = struct.Struct("<q" if byteorder == "little" else ">q")
    position = file.tell()
    file_size = file.seek(0, 2)
    storages: dict[str, Storage] = {}
    for raw_key in keys:
        key = str(raw_key)
        ref = refs.get(key)
        if ref is None:
            raise CorruptCheckpoint(f"{path}: storage {key} is listed but never used")
        file.seek(position)
        count_bytes = file.read(count_format.size)
        if len(count_bytes) != count_format.size:
            raise CorruptCheckpoint(f"{path}: truncated in the storage section")
        (count,) = count_format.unpack(count_bytes)
        nbytes = count * lookup_dtype(ref.dtype).itemsize
        offset = position + count_format.size
        if count < 0 or offset + nbytes > file_size:
            raise CorruptCheckpoint(f"{path}: storage {key} runs past the end of the file")
        storages[key] = Storage(key, path, ref.dtype, nbytes, offset, ref.location)
        position = offset + nbytes
    missing = set(refs) - set(storages)
    if missing:
        raise CorruptCheckpoint(f"{path}: storages {sorted(missing)[:3]} have no data")
    return storages
