"""PyTorch zip checkpoints: everything ``torch.save`` has written since 1.6.

The archive holds ``<root>/data.pkl`` (the object tree, tensors as persistent ids) and one
record ``<root>/data/<key>`` per storage. Records are stored uncompressed, so each
storage's bytes sit at a fixed offset that the local file header gives. The file is read
once, in one way: :mod:`~paramctl.formats.torch_zip.archive` refuses zips that readers
could read differently, before the pickle is unpickled.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from paramctl.checkpoint import Checkpoint, Storage
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._pickle import restricted_load
from paramctl.formats._torch_pickle import check_entry_fits, name_tensors, storage_collector
from paramctl.formats.torch_zip.archive import TorchArchive, open_torch_zip

NAME = "torch-zip"
MAGIC = b"PK\x03\x04"


def sniff(head: bytes) -> bool:
    return head.startswith(MAGIC)


def find_root(names: list[str]) -> str:
    """The archive's top folder, as torch finds it: the first record's (``archive`` now,
    the file's stem in older torch).

    >>> find_root(["model/data.pkl", "model/data/0", "model/version"])
    'model/'
    """
    if not names or "/" not in names[0]:
        raise CorruptCheckpoint("a zip file, but not a PyTorch checkpoint (its first record is in no folder)")
    return names[0].partition("/")[0] + "/"


def read(path: Path, limits: Limits = LIMITS) -> Checkpoint:
    with open_torch_zip(path, limits) as archive:
        archive.refuse_problems()
        return _read(path, archive, limits)


def _read(path: Path, archive: TorchArchive, limits: Limits) -> Checkpoint:
    refs, storage_ref = storage_collector()
    data = archive.member("data.pkl", limits.pickle_bytes)
    payload, _ = restricted_load(data, storage_ref, limits=limits, what=f"{path}: data.pkl")
    storages: dict[str, Storage] = {}
    for key, ref in refs.items():
        record = archive.record(f"data/{key}")
        if record is None:
            raise CorruptCheckpoint(f"{path}: storage record data/{key} is missing")
        expected = ref.numel * lookup_dtype(ref.dtype).itemsize
        if record.info.file_size != expected:
            raise CorruptCheckpoint(
                f"{path}: storage data/{key} holds {record.info.file_size:,} bytes, its storage is "
                f"{expected:,} (torch.load refuses any other size)"
            )
        stored = record.info.compress_type == zipfile.ZIP_STORED
        storages[key] = Storage(
            key, path, ref.dtype, expected, record.data_offset if stored else None, ref.location
        )
    payload, entries = name_tensors(payload, limits=limits)
    for entry in entries:
        check_entry_fits(entry, storages[entry.storage_key].nbytes)
    return Checkpoint(
        path=path,
        format=NAME,
        entries=entries,
        storages=storages,
        payload=payload,
        byteorder=archive.byteorder(),
    )
