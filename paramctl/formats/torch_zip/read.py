"""PyTorch zip checkpoints: everything ``torch.save`` has written since 1.6.

The archive holds ``<root>/data.pkl`` (the object tree, tensors as persistent ids) and one
record ``<root>/data/<key>`` per storage. Records are stored uncompressed, so each
storage's bytes sit at a fixed offset that the local file header gives. The file is read
once, in one way: :mod:`~paramctl.formats.torch_zip.archive` refuses zips that readers
could read differently, before the pickle is unpickled.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.errors import CorruptCheckpoint, LimitExceeded
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._numpy_pickle import inline_storages
from paramctl.formats._pickle import StorageRef, restricted_load
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors, storage_collector
from paramctl.formats.torch_zip.archive import TorchArchive, open_torch_zip
from paramctl.formats.torch_zip.layout import MAGIC, NAME

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


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
    """The archive's top folder, as torch finds it: the first record's (``archive`` now,
    the file's stem in older torch).

    >>> find_root(["model/data.pkl", "model/data/0", "model/version"])
    'model/'
    """
    if not names or "/" not in names[0]:
        raise CorruptCheckpoint("a zip file, but not a PyTorch checkpoint (its first record is in no folder)")
    return names[0].partition("/")[0] + "/"


def read_zip(path: Path, read_archive: Callable[[Path, BinaryIO, zipfile.ZipFile], Checkpoint]) -> Checkpoint:
    """``read_archive(path, file, archive)`` on the opened zip, once its structure is read
    one way (the checks of :mod:`~paramctl.formats.torch_zip.structure`); a damaged zip is
    invalid input."""
    with open_torch_zip(path, torch_rules=False) as archive:
        archive.refuse_problems()
        try:
            return read_archive(path, archive.file, archive.archive)
        except zipfile.BadZipFile as exc:
            raise CorruptCheckpoint(f"{path}: damaged or truncated zip archive ({exc})") from exc


def read_record(archive: zipfile.ZipFile, name: str, limits: Limits = LIMITS) -> bytes:
    """A small record (a pickle, a config) of an archive :func:`read_zip` opened, refused
    beyond ``limits.pickle_bytes`` before anything is inflated."""
    info = archive.getinfo(name)
    if info.file_size > limits.pickle_bytes:
        raise LimitExceeded(
            name, f"{info.file_size:,} bytes", f"paramctl reads at most {limits.pickle_bytes:,}"
        )
    return archive.read(info)


def read(path: Path, limits: Limits = LIMITS) -> Checkpoint:
    with open_torch_zip(path, limits) as archive:
        archive.refuse_problems()
        return _read(path, archive, limits)


def _read(path: Path, archive: TorchArchive, limits: Limits) -> Checkpoint:
    refs, storage_ref = storage_collector()
    data = archive.member("data.pkl", limits.pickle_bytes)
    payload = restricted_load(data, storage_ref, limits=limits, what=f"{path}: data.pkl")
    byteorder = archive.byteorder()
    storages = {
        key: Storage(key, path, ref.dtype, ref.nbytes, data_start(archive, key, ref, str(path)), ref.location)
        for key, ref in refs.items()
    }
    storages.update(inline_storages(payload, path, byteorder))
    return _checkpoint(path, payload, storages, byteorder, limits)


def data_start(archive: TorchArchive, key: str, ref: StorageRef, where: str) -> int | None:
    """Where the bytes of the storage record ``data/<key>`` start in ``archive`` (``None``
    when it is compressed); the record must be there, of the size torch insists on."""
    record = archive.record(f"data/{key}")
    if record is None:
        raise CorruptCheckpoint(f"{where}: storage record data/{key} is missing")
    if record.info.file_size != ref.nbytes:
        raise CorruptCheckpoint(
            f"{where}: storage data/{key} holds {record.info.file_size:,} bytes, its storage is "
            f"{ref.nbytes:,} (torch.load refuses any other size)"
        )
    return record.data_offset if record.info.compress_type == zipfile.ZIP_STORED else None


def _checkpoint(
    path: Path, payload: object, storages: dict[str, Storage], byteorder: str, limits: Limits
) -> Checkpoint:
    payload, entries = name_tensors(payload, limits=limits)
    for entry in entries:
        check_entry_fits(entry, storages[entry.storage_key].nbytes)
    return Checkpoint(
        path=path, format=NAME, entries=entries, storages=storages, payload=payload, byteorder=byteorder
    )
