"""PyTorch zip checkpoints: everything ``torch.save`` has written since 1.6.

The archive holds ``<root>/data.pkl`` (the object tree, tensors as persistent ids) and one
record ``<root>/data/<key>`` per storage. Records are stored uncompressed, so each
storage's bytes sit at a fixed offset that the local file header gives.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._numpy_pickle import inline_storages
from paramctl.formats._pickle import StorageRef, restricted_load, storage_ref_from_pid
from paramctl.formats._source import open_binary
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors

NAME = "torch-zip"
MAGIC = b"PK\x03\x04"
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def sniff(head: bytes) -> bool:
    return head.startswith(MAGIC)


def record_data_offset(file: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where a stored record's bytes start: after its local header, name and extra field."""
    file.seek(info.header_offset)
    header = file.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != MAGIC:
        raise CorruptCheckpoint(f"zip record {info.filename!r} has a damaged local header")
    name_length: int = _LOCAL_HEADER.unpack(header)[-2]
    extra_length: int = _LOCAL_HEADER.unpack(header)[-1]
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def find_root(names: list[str]) -> str:
    """The archive's top folder (``archive`` now, the file's stem in older torch).

    >>> find_root(["model/data.pkl", "model/data/0", "model/version"])
    'model/'
    """
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise CorruptCheckpoint("a zip file, but not a PyTorch checkpoint (no <root>/data.pkl)")
    return pickles[0][: -len("data.pkl")]


def read_zip(path: Path, read_archive: Callable[[Path, BinaryIO, zipfile.ZipFile], Checkpoint]) -> Checkpoint:
    """``read_archive(path, file, archive)`` on the opened zip; a damaged zip is invalid input."""
    try:
        with open_binary(path) as file, zipfile.ZipFile(file) as archive:
            return read_archive(path, file, archive)
    except zipfile.BadZipFile as exc:
        raise CorruptCheckpoint(f"{path}: damaged or truncated zip archive ({exc})") from exc


def read(path: Path) -> Checkpoint:
    return read_zip(path, _read)


def _read(path: Path, file: BinaryIO, archive: zipfile.ZipFile) -> Checkpoint:
    infos = {info.filename: info for info in archive.infolist()}
    root = find_root(list(infos))
    byteorder = "little"
    if f"{root}byteorder" in infos:
        byteorder = archive.read(f"{root}byteorder").decode().strip() or "little"

    refs: dict[str, StorageRef] = {}

    def storage_ref(pid: tuple[Any, ...]) -> StorageRef:
        ref = storage_ref_from_pid(pid)
        refs.setdefault(ref.key, ref)
        return ref

    payload = restricted_load(archive.read(f"{root}data.pkl"), storage_ref)
    storages: dict[str, Storage] = {}
    for key, ref in refs.items():
        info = infos.get(f"{root}data/{key}")
        if info is None:
            raise CorruptCheckpoint(f"{path}: storage record data/{key} is missing")
        expected = ref.numel * lookup_dtype(ref.dtype).itemsize
        if info.file_size < expected:
            raise CorruptCheckpoint(
                f"{path}: storage data/{key} holds {info.file_size} bytes, needs {expected}"
            )
        offset = record_data_offset(file, info) if info.compress_type == zipfile.ZIP_STORED else None
        storages[key] = Storage(key, path, ref.dtype, expected, offset, ref.location)
    storages.update(inline_storages(payload, path, byteorder))
    payload, entries = name_tensors(payload)
    for entry in entries:
        check_entry_fits(entry, storages[entry.storage_key].nbytes)
    return Checkpoint(
        path=path,
        format=NAME,
        entries=entries,
        storages=storages,
        payload=payload,
        byteorder=byteorder,
    )
