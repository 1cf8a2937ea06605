"""torch.export archives (``torch.export.save``, ``.pt2``): tensors from the archive's JSON.

A PT2 archive is a zip under one root folder: ``archive_format`` holds ``pt2``,
``models/<model>.json`` the serialized graph, and for each model
``data/weights/<model>_weights_config.json`` and ``data/constants/<model>_constants_config.json``
map every parameter, buffer and tensor constant (by its dotted name) to a record
(``path_name``) and a ``tensor_meta``: ``dtype`` (torch's ``ScalarType`` code in
``torch/_export/serde/schema.py``), ``sizes``, ``strides`` and ``storage_offset`` (each
``{"as_int": n}``), ``layout`` (7 is strided) and ``requires_grad``. Each record holds a whole
untyped storage, stored uncompressed; tensors sharing a storage share a record. A tensor
subclass is pickled instead (``use_pickle``): that one paramctl does not read.

>>> SCALAR_TYPES[7], SCALAR_TYPES[13]
('float32', 'bfloat16')
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._json import load_json
from paramctl.formats._torch_pickle import check_entry_fits
from paramctl.formats.torch_export.layout import ARCHIVE_FORMAT, NAME, export_root
from paramctl.formats.torch_zip.read import read_record, read_zip, record_data_offset

_STRIDED = 7
_MAIN_MODEL = "model"
# torch/_export/serde/schema.py ScalarType: the code each dtype is serialized as.
SCALAR_TYPES = {
    1: "uint8",
    2: "int8",
    3: "int16",
    4: "int32",
    5: "int64",
    6: "float16",
    7: "float32",
    8: "float64",
    10: "complex64",
    11: "complex128",
    12: "bool",
    13: "bfloat16",
    28: "uint16",
    29: "float8_e4m3fn",
    30: "float8_e5m2",
    31: "float8_e4m3fnuz",
    32: "float8_e5m2fnuz",
    33: "float8_e8m0fnu",
    34: "uint32",
    35: "uint64",
}
# Where each kind of tensor's config and records are, below the root.
_KINDS = (
    ("weights", "data/weights/{}_weights_config.json"),
    ("constants", "data/constants/{}_constants_config.json"),
)


def read(path: Path) -> Checkpoint:
    return read_zip(path, _read)


def _read(path: Path, file: BinaryIO, archive: zipfile.ZipFile) -> Checkpoint:
    infos = {info.filename: info for info in archive.infolist()}
    root = export_root(list(infos))
    if root is None:
        raise CorruptCheckpoint(f"{path}: a zip file, but not a torch.export archive (no archive_format)")
    if read_record(archive, f"{root}{ARCHIVE_FORMAT}").strip() != b"pt2":
        raise CorruptCheckpoint(f"{path}: archive_format is not pt2")
    models = sorted(
        n[len(root) + 7 : -5] for n in infos if n.startswith(f"{root}models/") and n.endswith(".json")
    )
    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    for model in models:
        prefix = "" if model == _MAIN_MODEL or len(models) == 1 else f"{model}."
        for kind, config_name in _KINDS:
            config_path = root + config_name.format(model)
            if config_path not in infos:
                continue
            config = _config(path, read_record(archive, config_path))
            for fqn, meta in config.items():
                entry, storage = _entry(path, file, infos, root, kind, prefix + str(fqn), meta)
                first = storages.setdefault(storage.key, storage)
                check_entry_fits(entry, first.nbytes)
                entries.append(entry)
    return Checkpoint(path, NAME, entries, storages)


def _config(path: Path, raw: bytes) -> dict[str, Any]:
    document = load_json(raw, f"{path}: a tensor config")
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise CorruptCheckpoint(f"{path}: a tensor config has no 'config' mapping")
    return config


def _ints(values: Any, what: str) -> tuple[int, ...]:
    numbers = [value.get("as_int") if isinstance(value, dict) else None for value in values or ()]
    if (
        not isinstance(values, list)
        or len(values) > 64
        or not all(type(n) is int and n >= 0 for n in numbers)
    ):
        raise CorruptCheckpoint(f"{what} is not a list of sizes (symbolic sizes are not weights)")
    return tuple(numbers)  # type: ignore[arg-type]


def _entry(
    path: Path, file: BinaryIO, infos: dict[str, zipfile.ZipInfo], root: str, kind: str, name: str, meta: Any
) -> tuple[TensorEntry, Storage]:
    try:
        record, tensor_meta = str(meta["path_name"]), meta["tensor_meta"]
        code, layout = int(tensor_meta["dtype"]), int(tensor_meta.get("layout", _STRIDED))
    except (TypeError, KeyError, ValueError) as exc:
        raise CorruptCheckpoint(f"{path}: {name}: the tensor config lacks {exc}") from exc
    if meta.get("use_pickle"):
        raise CorruptCheckpoint(f"{path}: {name} is a pickled tensor subclass, which paramctl does not read")
    if layout != _STRIDED or code not in SCALAR_TYPES:
        raise CorruptCheckpoint(f"{path}: {name}: layout {layout} / dtype code {code} is not a dense tensor")
    dtype = SCALAR_TYPES[code]
    key = f"{kind}/{record}"
    info = infos.get(f"{root}data/{key}")
    if info is None:
        raise CorruptCheckpoint(f"{path}: {name}: record data/{key} is missing")
    if info.compress_type != zipfile.ZIP_STORED:
        raise CorruptCheckpoint(f"{path}: {name}: record data/{key} is compressed")
    itemsize = lookup_dtype(dtype).itemsize
    storage = Storage(
        key, path, dtype, info.file_size - info.file_size % itemsize, record_data_offset(file, info)
    )
    offset = tensor_meta.get("storage_offset", {"as_int": 0})
    entry = TensorEntry(
        name=name,
        path=(name,),
        shape=_ints(tensor_meta["sizes"], f"{name}: sizes"),
        dtype=dtype,
        stride=_ints(tensor_meta["strides"], f"{name}: strides"),
        storage_key=key,
        storage_offset=_ints([offset], f"{name}: storage_offset")[0],
        requires_grad=bool(tensor_meta.get("requires_grad")),
        is_parameter=bool(meta.get("is_param")),
    )
    return entry, storage
