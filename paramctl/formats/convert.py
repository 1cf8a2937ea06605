"""Write a checkpoint in another format, one tensor at a time.

- to ``safetensors`` (from a torch file): a flat name → tensor table. Names that are one
  tensor (tied weights) are stored once and the others recorded in ``__metadata__`` as
  ``{dropped: kept}``, as ``safetensors.torch.save_model`` does. What safetensors cannot
  hold is refused with the reason, never dropped: non-tensor values (epoch, optimizer
  hyper-parameters), nested dicts, views that partly overlap, dtypes it has no code for.
- to ``torch-zip`` (from safetensors or a legacy file): the layout ``torch.save`` writes
  (``data.pkl`` with tensors as persistent ids, one 64-byte-aligned stored record per
  storage), loadable with ``torch.load(weights_only=True, mmap=True)``. Ties stay ties.
- to ``torch-legacy``: not written; nothing needs new files in the pre-1.6 format.

Public entry point: :func:`convert`.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import UsageError
from paramctl.formats import safetensors as safetensors_format
from paramctl.formats import torch_legacy, torch_zip
from paramctl.formats._pickle import _Device, _DTypeName
from paramctl.formats.patch import PROVENANCE_KEY, SpanReader, copy_range, encode_header, provenance_history

if TYPE_CHECKING:
    import torch

ALIGNMENT = 64
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_PADDING_FIELD_ID = b"FB"
_ZIP64_EXTRA = 20
_LOCAL_HEADER = 30


def convert(
    checkpoint: Checkpoint,
    out: BinaryIO,
    to: str,
    *,
    provenance: Mapping[str, Any] | None = None,
    source_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``checkpoint`` to ``out`` (seekable, positioned at 0) in format ``to``."""
    if to == safetensors_format.FORMAT:
        write_safetensors(checkpoint, out, provenance=provenance)
    elif to == torch_zip.FORMAT:
        write_torch_zip(checkpoint, out, provenance=provenance, source_metadata=source_metadata)
    elif to == torch_legacy.FORMAT:
        raise UsageError("paramctl does not write the legacy torch format; write torch-zip (.pt) instead")
    else:
        raise UsageError(f"unknown output format {to!r}")


# -- safetensors --------------------------------------------------------------------------


def _flat_names(checkpoint: Checkpoint) -> None:
    """Refuse what a flat safetensors table cannot represent."""
    if checkpoint.payload is None:
        return
    extras = checkpoint.extras()
    if extras:
        where = list(dict.fromkeys(str(extra.path[0]) if extra.path else "(root)" for extra in extras))
        shown = ", ".join(where[:6]) + (f" and {len(where) - 6} more" if len(where) > 6 else "")
        raise UsageError(
            f"{checkpoint.label}: safetensors holds tensors only, and this checkpoint also has "
            f"{len(extras)} other values (under {shown}); write a .pt file to keep them"
        )
    payload = checkpoint.payload
    if not isinstance(payload, dict) or not all(isinstance(v, TensorEntry) for v in payload.values()):
        raise UsageError(
            f"{checkpoint.label}: safetensors holds one flat name → tensor table, and this checkpoint is "
            "nested; write a .pt file to keep its structure"
        )


def write_safetensors(
    checkpoint: Checkpoint, out: BinaryIO, *, provenance: Mapping[str, Any] | None = None
) -> None:
    """Write a flat checkpoint as safetensors; tied names become ``__metadata__`` aliases."""
    _flat_names(checkpoint)
    kept, aliases = _dedupe(checkpoint)
    metadata: dict[str, str] = dict(aliases)
    if provenance:
        metadata[PROVENANCE_KEY] = json.dumps([*provenance_history({}), dict(provenance)], sort_keys=True)
    header: dict[str, Any] = {safetensors_format.METADATA_KEY: metadata} if metadata else {}
    position = 0
    for entry in kept:
        code = lookup_dtype(entry.dtype).safetensors_code
        if code is None:
            raise UsageError(f"{entry.name}: safetensors has no code for {entry.dtype}")
        header[entry.name] = {
            "dtype": code,
            "shape": list(entry.shape),
            "data_offsets": [position, position + entry.nbytes],
        }
        position += entry.nbytes
    out.write(encode_header(header))
    out.flush()
    base = out.tell()
    with SpanReader(checkpoint) as reader:
        written = 0
        for entry in kept:
            storage = checkpoint.storage_of(entry)
            start, end = entry.byte_span
            if entry.is_contiguous and end - start == entry.nbytes and storage.offset is not None:
                copy_range(
                    reader.fileno(), out.fileno(), storage.offset + start, base + written, entry.nbytes
                )
            elif entry.nbytes:
                _write_contiguous(out, reader.tensor(entry), base + written)
            written += entry.nbytes
    out.seek(base + written)
    out.truncate()


def _write_contiguous(out: BinaryIO, values: torch.Tensor, offset: int) -> None:
    import torch

    from paramctl.formats.patch import write_at

    block = bytearray(values.numel() * values.element_size())
    torch.frombuffer(block, dtype=torch.uint8).view(values.dtype).view(values.shape).copy_(values)
    write_at(out.fileno(), memoryview(block), offset)


def _dedupe(checkpoint: Checkpoint) -> tuple[list[TensorEntry], dict[str, str]]:
    """One entry per distinct tensor; the other names of a tie map to the kept name.

    Like ``safetensors.torch.save_model``, the kept name is the first in sorted order.
    Views of one storage that overlap without being the same tensor cannot be stored.
    """
    groups: dict[tuple[Any, ...], list[TensorEntry]] = {}
    for entry in checkpoint.entries:
        identity = (entry.storage_key, entry.storage_offset, entry.shape, entry.stride, entry.dtype)
        groups.setdefault(identity, []).append(entry)
    kept_by_identity = {identity: min(group, key=lambda e: e.name) for identity, group in groups.items()}
    aliases = {
        entry.name: kept.name
        for identity, kept in kept_by_identity.items()
        for entry in groups[identity]
        if entry is not kept
    }
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for kept in kept_by_identity.values():
        start, end = kept.byte_span
        spans.setdefault(kept.storage_key, []).append((start, end, kept.name))
    for intervals in spans.values():
        reach, reaching = 0, ""
        for start, end, name in sorted(intervals):
            if start < reach:
                raise UsageError(
                    f"{reaching} and {name} share bytes without being the same tensor; "
                    "safetensors cannot store that (write a .pt file)"
                )
            if end > reach:
                reach, reaching = end, name
    order = {entry.name: index for index, entry in enumerate(checkpoint.entries)}
    return sorted(kept_by_identity.values(), key=lambda e: order[e.name]), aliases


# -- torch zip ----------------------------------------------------------------------------


class _StorageOut:
    """A storage as ``data.pkl`` names it: its record key in the new archive."""

    def __init__(self, storage: Storage, key: str, dtype: str) -> None:
        self.storage, self.key, self.dtype = storage, key, dtype


class _TensorOut:
    """Pickles as torch pickles a tensor: ``_rebuild_tensor_v2`` over a persistent storage."""

    def __init__(self, entry: TensorEntry, storage: _StorageOut) -> None:
        self.entry, self.storage = entry, storage

    def __reduce_ex__(self, protocol: Any) -> Any:
        import torch

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
        tensor: tuple[Any, tuple[Any, ...]] = (torch._utils._rebuild_tensor_v2, args)
        if lookup_dtype(self.storage.dtype).storage_class is None:
            tensor = (torch._utils._rebuild_tensor_v3, (*args, getattr(torch, entry.dtype)))
        if entry.is_parameter:
            return (
                torch._utils._rebuild_parameter,
                (_Reduced(tensor), entry.requires_grad, collections.OrderedDict()),
            )
        return tensor


class _Reduced:
    def __init__(self, reduced: Any) -> None:
        self.reduced = reduced

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.reduced


class _Pickler(pickle.Pickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file, protocol=2)

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _StorageOut):
            import torch

            info = lookup_dtype(obj.dtype)
            if info.storage_class is None:
                return (
                    "storage",
                    torch.storage.UntypedStorage,
                    obj.key,
                    obj.storage.device,
                    obj.storage.nbytes,
                )
            kind = getattr(torch, info.storage_class)
            return ("storage", kind, obj.key, obj.storage.device, obj.storage.nbytes // info.itemsize)
        return None


def _payload(checkpoint: Checkpoint) -> tuple[Any, list[_StorageOut]]:
    """The object tree to pickle, with torch's own dtype and device objects restored."""
    import torch

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
            return getattr(torch, str(node))
        if isinstance(node, _Device):
            return torch.device(str(node))
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
        with open(checkpoint.path, "rb") as source:
            for storage_out in storages:
                storage = storage_out.storage
                info, zip64 = _aligned_info(out, f"{root}data/{storage_out.key}", storage.nbytes)
                with archive.open(info, "w", force_zip64=zip64) as record:
                    _stream(source, storage, record)
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


def _stream(source: BinaryIO, storage: Storage, record: Any) -> None:
    if storage.nbytes == 0:
        return
    if storage.offset is None:
        raise UsageError(f"storage {storage.key} is compressed; cannot copy it")
    position, remaining = storage.offset, storage.nbytes
    while remaining:
        chunk = os.pread(source.fileno(), min(remaining, 8 << 20), position)
        if not chunk:
            raise UsageError(f"storage {storage.key} runs past the end of the file")
        record.write(chunk)
        position, remaining = position + len(chunk), remaining - len(chunk)
