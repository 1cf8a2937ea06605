"""Writing a new torch zip from any checkpoint, in the layout ``torch.save`` writes: ``data.pkl``
with tensors as persistent ids and one 64-byte-aligned stored record per storage, loadable with
``torch.load(weights_only=True, mmap=True)``. Ties stay ties, and torch is not imported:
the storages' bytes are copied as they are.

>>> ALIGNMENT
64
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any, BinaryIO, ClassVar

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import UsageError
from paramctl.formats._io import read_chunks
from paramctl.formats._pickle import _Device, _DTypeName
from paramctl.formats._provenance import PROVENANCE_KEY

ALIGNMENT = 64
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_PADDING_FIELD_ID = b"FB"
_ZIP64_EXTRA = 20
_LOCAL_HEADER = 30


class _Global:
    """A global of torch's that the pickle names (``torch._utils._rebuild_tensor_v2``,
    ``torch.FloatStorage``, ``torch.float32``) without importing torch: pickle would import
    the module to check the name, so :class:`_Pickler` writes the opcode itself."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args: Any) -> Any:  # pickle asks that a reduce function be callable
        raise TypeError(f"{self.module}.{self.name} is written to a pickle, not called")


_REBUILD_V2 = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_V3 = _Global("torch._utils", "_rebuild_tensor_v3")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_UNTYPED_STORAGE = _Global("torch.storage", "UntypedStorage")
_DEVICE = _Global("torch", "device")


class _StorageOut:
    """A storage as ``data.pkl`` names it: its record key in the new archive."""

    def __init__(self, storage: Storage, key: str, dtype: str) -> None:
        self.storage, self.key, self.dtype = storage, key, dtype


class _TensorOut:
    """Pickles as torch pickles a tensor: ``_rebuild_tensor_v2`` over a persistent storage."""

    def __init__(self, entry: TensorEntry, storage: _StorageOut) -> None:
        self.entry, self.storage = entry, storage

    def __reduce_ex__(self, protocol: Any) -> Any:
        entry = self.entry
        hooks: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        args: tuple[Any, ...] = (
            self.storage,
            entry.storage_offset,
            tuple(entry.shape),
            tuple(entry.stride),
            entry.requires_grad,
            hooks,
        )
        tensor: tuple[Any, tuple[Any, ...]] = (_REBUILD_V2, args)
        if lookup_dtype(self.storage.dtype).storage_class is None:
            tensor = (_REBUILD_V3, (*args, _Global("torch", entry.dtype)))
        if entry.is_parameter:
            return (_REBUILD_PARAMETER, (_Reduced(tensor), entry.requires_grad, collections.OrderedDict()))
        return tensor


class _Reduced:
    def __init__(self, reduced: Any) -> None:
        self.reduced = reduced

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.reduced


class _Pickler(pickle._Pickler):
    """The pure-Python pickler, which lets :class:`_Global` be written as a ``GLOBAL``
    opcode (the C pickler offers no such hook); ``data.pkl`` is small beside the storages."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, protocol=2)

    def save_torch_global(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())  # type: ignore[attr-defined]
        self.memoize(obj)  # type: ignore[attr-defined]

    dispatch[_Global] = save_torch_global

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _StorageOut):
            info = lookup_dtype(obj.dtype)
            if info.storage_class is None:
                return ("storage", _UNTYPED_STORAGE, obj.key, obj.storage.device, obj.storage.nbytes)
            kind = _Global("torch", info.storage_class)
            return ("storage", kind, obj.key, obj.storage.device, obj.storage.nbytes // info.itemsize)
        return None


def _payload(checkpoint: Checkpoint) -> tuple[Any, list[_StorageOut]]:
    """The object tree to pickle, with torch's own dtype and device objects restored."""
    storages: dict[str, _StorageOut] = {}

    def storage_for(entry: TensorEntry) -> _StorageOut:
        if entry.storage_key not in storages:
            storage = checkpoint.storage_of(entry)
            storages[entry.storage_key] = _StorageOut(storage, str(len(storages)), entry.dtype)
        return storages[entry.storage_key]

    def convert(node: Any) -> Any:
        if isinstance(node, TensorEntry):
            return _TensorOut(node, storage_for(node))
        if isinstance(node, _DTypeName):
            return _Global("torch", str(node))
        if isinstance(node, _Device):
            return _Reduced((_DEVICE, (str(node),)))
        if isinstance(node, dict):
            rebuilt = type(node)() if type(node) in (dict, collections.OrderedDict) else {}
            for key, value in node.items():
                rebuilt[key] = convert(value)
            if hasattr(node, "__dict__"):
                rebuilt.__dict__.update({k: convert(v) for k, v in vars(node).items()})
            return rebuilt
        if isinstance(node, list):
            return [convert(value) for value in node]
        if isinstance(node, tuple):
            return tuple(convert(value) for value in node)
        return node

    if checkpoint.payload is None:
        tree: Any = {entry.name: convert(entry) for entry in checkpoint.entries}
    else:
        tree = convert(checkpoint.payload)
    return tree, list(storages.values())


def _aligned_info(out: BinaryIO, name: str, size: int) -> tuple[zipfile.ZipInfo, bool]:
    """A stored record whose data will start on a 64-byte boundary, as torch aligns them."""
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    zip64 = size * 1.05 > zipfile.ZIP64_LIMIT
    before_padding = out.tell() + _LOCAL_HEADER + len(name.encode()) + (_ZIP64_EXTRA if zip64 else 0) + 4
    padding = -before_padding % ALIGNMENT
    info.extra = _PADDING_FIELD_ID + padding.to_bytes(2, "little") + b"\0" * padding
    return info, zip64


def write_torch_zip(
    checkpoint: Checkpoint,
    out: BinaryIO,
    *,
    provenance: Mapping[str, Any] | None = None,
    source_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``checkpoint`` in the layout of ``torch.save`` (zip, stored, aligned)."""
    tree, storages = _payload(checkpoint)
    pickled = io.BytesIO()
    _Pickler(pickled).dump(tree)
    root = "archive/"
    records: list[tuple[str, bytes]] = [
        ("data.pkl", pickled.getvalue()),
        (".format_version", b"1"),
        (".storage_alignment", str(ALIGNMENT).encode()),
        ("byteorder", b"little"),
    ]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in records:
            info, zip64 = _aligned_info(out, root + name, len(data))
            with archive.open(info, "w", force_zip64=zip64) as record:
                record.write(data)
        for storage_out in storages:
            storage = storage_out.storage
            info, zip64 = _aligned_info(out, f"{root}data/{storage_out.key}", storage.nbytes)
            with archive.open(info, "w", force_zip64=zip64) as record:
                _stream(storage, record)
        for name, data in [("version", b"3")]:
            info, zip64 = _aligned_info(out, root + name, len(data))
            with archive.open(info, "w", force_zip64=zip64) as record:
                record.write(data)
        if provenance or source_metadata:
            document = dict(provenance or {})
            if source_metadata:
                document["source_metadata"] = dict(source_metadata)
            info = zipfile.ZipInfo(f"{root}{PROVENANCE_KEY}/1.json", date_time=_FIXED_TIME)
            archive.writestr(info, json.dumps(document, indent=1, sort_keys=True) + "\n")


def _stream(storage: Storage, record: Any) -> None:
    if storage.nbytes == 0:
        return
    if storage.offset is None:
        raise UsageError(f"storage {storage.key} is compressed; cannot copy it")
    with open(storage.file, "rb") as source:
        for chunk in read_chunks(source.fileno(), storage.offset, storage.nbytes):
            record.write(chunk)
