"""Large checkpoints written cheaply: the tensors' bytes are holes in a sparse file (zeros
that take no disk), only the headers are written. The files are what safetensors and
``torch.save`` write, byte for byte in layout (a test loads a small one with torch)."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

GiB = 1 << 30
_ZERO_BLOCK = bytes(1 << 24)
_ALIGN = 64


def sparse_safetensors(path: Path, tensors: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, int]]:
    """A safetensors file of float32 zeros of these shapes; each tensor's byte range in the file."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = 4 * _numel(shape)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    start = 8 + len(raw)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(raw)) + raw)
        out.truncate(start + offset)
    return {
        name: (start + b, start + e) for name, (b, e) in ((n, h["data_offsets"]) for n, h in header.items())
    }


def sparse_torch_zip(path: Path, tensors: dict[str, tuple[int, ...]]) -> None:
    """What ``torch.save`` writes for a dict of float32 zero tensors of these shapes."""
    members: list[tuple[str, bytes | int]] = [
        ("archive/data.pkl", _state_dict_pickle(tensors)),
        ("archive/.format_version", b"1"),
        ("archive/.storage_alignment", b"64"),
        ("archive/byteorder", b"little"),
    ]
    members += [(f"archive/data/{key}", 4 * _numel(shape)) for key, shape in enumerate(tensors.values())]
    members += [("archive/version", b"3\n"), ("archive/.data/serialization_id", b"0" * 40)]
    directory = io.BytesIO()
    with open(path, "wb") as out:
        for name, data in members:
            size = data if isinstance(data, int) else len(data)
            crc = _zeros_crc(data) if isinstance(data, int) else zlib.crc32(data)
            where = out.tell()
            encoded = name.encode()
            padding = -(where + 30 + len(encoded) + 4) % _ALIGN
            extra = struct.pack("<HH", 0x4650, padding) + b"Z" * padding
            out.write(
                struct.pack(
                    "<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, size, size, len(encoded), len(extra)
                )
            )
            out.write(encoded + extra)
            if isinstance(data, int):
                out.seek(data, 1)
            else:
                out.write(data)
            directory.write(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    0x02014B50,
                    20,
                    20,
                    0,
                    0,
                    0,
                    0,
                    crc,
                    size,
                    size,
                    len(encoded),
                    0,
                    0,
                    0,
                    0,
                    0,
                    where,
                )
                + encoded
            )
        start = out.tell()
        central = directory.getvalue()
        out.write(central)
        out.write(
            struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), start, 0)
        )


@cache
def _zeros_crc(size: int) -> int:
    crc = 0
    while size > 0:
        step = min(size, len(_ZERO_BLOCK))
        crc = zlib.crc32(memoryview(_ZERO_BLOCK)[:step], crc)
        size -= step
    return crc


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _state_dict_pickle(tensors: dict[str, tuple[int, ...]]) -> bytes:
    """``data.pkl`` as torch pickles a state dict: ``_rebuild_tensor_v2`` of storages by key."""
    import torch

    class Stored:
        def __init__(self, key: str, numel: int) -> None:
            self.key, self.numel = key, numel

    class Rebuilt:
        def __init__(self, stored: Stored, shape: tuple[int, ...]) -> None:
            self.stored, self.shape = stored, shape

        def __reduce__(self) -> Any:
            stride = tuple(_numel(self.shape[i + 1 :]) for i in range(len(self.shape)))
            args = (self.stored, 0, self.shape, stride, False, OrderedDict())
            return torch._utils._rebuild_tensor_v2, args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, Stored):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return None

    state = OrderedDict(
        (name, Rebuilt(Stored(str(key), _numel(shape)), shape))
        for key, (name, shape) in enumerate(tensors.items())
    )
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()
