"""safetensors files: an 8-byte header length, a JSON header, then the tensor bytes.

The header is parsed here rather than through ``safetensors.safe_open`` because that call
loads the framework bindings; the format is a documented JSON table, so reading it by hand
keeps ``paramctl list`` free of torch. Values are read later through ``safetensors``/torch.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.dtypes import BY_SAFETENSORS_CODE
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._source import open_binary

NAME = "safetensors"
METADATA_KEY = "__metadata__"
# The reference implementation refuses headers above 100 MB; so does this reader.
MAX_HEADER_BYTES = 100_000_000


def sniff(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= MAX_HEADER_BYTES and head[8:9] == b"{"


def contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides for ``shape``.

    >>> contiguous_stride((2, 3, 4))
    (12, 4, 1)
    """
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= max(size, 1)
    return tuple(reversed(stride))


def read_header(path: Path) -> tuple[dict[str, Any], int, int]:
    """Return the parsed header, the offset where data starts, and the data length."""
    with open_binary(path) as file:
        prefix = file.read(8)
        if len(prefix) != 8:
            raise CorruptCheckpoint(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        file_size = file.seek(0, 2)
        if length > MAX_HEADER_BYTES or 8 + length > file_size:
            raise CorruptCheckpoint(f"{path}: safetensors header length {length} is impossible")
        file.seek(8)
        raw = file.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpoint(f"{path}: safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise CorruptCheckpoint(f"{path}: safetensors header is not a JSON object")
    return header, 8 + length, file_size - 8 - length


def read(path: Path) -> Checkpoint:
    header, data_start, data_length = read_header(path)
    raw_metadata = header.pop(METADATA_KEY, None) or {}
    if not isinstance(raw_metadata, dict) or not all(isinstance(v, str) for v in raw_metadata.values()):
        raise CorruptCheckpoint(f"{path}: __metadata__ must map strings to strings")
    metadata: dict[str, str] = dict(raw_metadata)

    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    for name, info in header.items():
        entry, storage = _entry(path, name, info, data_start, data_length)
        entries.append(entry)
        storages[name] = storage
    entries.sort(key=lambda e: storages[e.storage_key].offset or 0)
    entries.extend(_aliases(metadata, {e.name: e for e in entries}))
    return Checkpoint(path, NAME, entries, storages, payload=None, metadata=metadata)


def _entry(
    path: Path, name: str, info: Any, data_start: int, data_length: int
) -> tuple[TensorEntry, Storage]:
    try:
        code, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        dt = BY_SAFETENSORS_CODE[code]
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptCheckpoint(f"{path}: header entry {name!r} is malformed ({exc!r})") from exc
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise CorruptCheckpoint(f"{path}: {name}: bad shape {list(shape)}")
    entry = TensorEntry(name, (name,), shape, dt.name, contiguous_stride(shape), name)
    if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data_length):
        raise CorruptCheckpoint(
            f"{path}: {name}: data offsets [{begin}, {end}] fall outside the {data_length}-byte data"
        )
    if end - begin != entry.nbytes:
        raise CorruptCheckpoint(
            f"{path}: {name}: data offsets span {end - begin} bytes, the shape needs {entry.nbytes}"
        )
    return entry, Storage(name, path, dt.name, entry.nbytes, data_start + begin)


def _aliases(metadata: dict[str, str], by_name: dict[str, TensorEntry]) -> list[TensorEntry]:
    """Names that ``safetensors.torch.save_model`` dropped as duplicates of a kept tensor.

    It records each dropped name in ``__metadata__`` as ``{dropped: kept}``; they are the
    same tensor, so they come back as entries on the kept tensor's storage.
    """
    aliases = []
    for dropped, kept in metadata.items():
        if dropped not in by_name and kept in by_name:
            target = by_name[kept]
            aliases.append(
                TensorEntry(
                    dropped,
                    (dropped,),
                    target.shape,
                    target.dtype,
                    target.stride,
                    target.storage_key,
                    recorded_alias=True,
                )
            )
    return aliases
