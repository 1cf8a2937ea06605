"""Writing a new MXNet NDArray file from any checkpoint, as ``mx.nd.save`` of a dict writes it.

Arrays get the V2 magic MXNet 1.x writes by default, so ``nd.load`` and Gluon's
``load_parameters`` read the file; when an array MXNet's legacy shapes cannot express (a
scalar, a zero-size dimension) is among them, every array gets the V3 magic of numpy shape
semantics, which MXNet loads under ``npx.set_np()`` (it refuses a file that mixes the two).
An NDArray file holds named arrays only: other values are refused, never
dropped, and tied names are stored as separate copies (the format records no sharing).

>>> array_header((2,), "float32").hex()
'c9fa93f900000000010000000200000000000000010000000000000000000000'
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint
from paramctl.errors import UsageError
from paramctl.formats._io import copy_range, write_at
from paramctl.formats.mxnet import layout as L


def legacy_shape(shape: tuple[int, ...]) -> bool:
    """Whether MXNet's legacy (V2) shape semantics can express ``shape``."""
    return bool(shape) and all(shape)


def array_header(shape: tuple[int, ...], dtype: str, *, legacy: bool | None = None) -> bytes:
    """Everything of one array before its data (``legacy``: the V2 magic; by default, where
    the shape allows it)."""
    if dtype not in L.WRITTEN:
        raise UsageError(f"an MXNet file cannot hold {dtype} (it holds {', '.join(sorted(L.WRITTEN))})")
    if legacy is None:
        legacy = legacy_shape(shape)
    header = io.BytesIO()
    if legacy:
        header.write(L.ARRAY_START.pack(L.V2_MAGIC, L.DENSE) + L.V2_NDIM.pack(len(shape)))
    else:
        header.write(L.ARRAY_START.pack(L.V3_MAGIC, L.DENSE) + L.V3_NDIM.pack(len(shape)))
    header.write(b"".join(L.DIM.pack(size) for size in shape))
    header.write(L.CONTEXT_AND_TYPE.pack(L.CPU, 0, L.FLAG_OF[dtype]))
    return header.getvalue()


def names_block(names: list[str]) -> bytes:
    encoded = [name.encode() for name in names]
    return L.U64.pack(len(encoded)) + b"".join(L.U64.pack(len(name)) + name for name in encoded)


def write_arrays(out: BinaryIO, arrays: Iterable[tuple[str, tuple[int, ...], str, bytes]]) -> None:
    """Write ``(name, shape, dtype, data)`` arrays held in memory (small files, tests)."""
    listed = list(arrays)
    legacy = all(legacy_shape(shape) for _, shape, _, _ in listed)
    out.write(L.HEADER.pack(L.LIST_MAGIC, 0) + L.U64.pack(len(listed)))
    for _, shape, dtype, data in listed:
        out.write(array_header(shape, dtype, legacy=legacy) + data)
    out.write(names_block([name for name, *_ in listed]))


def write_mxnet(
    checkpoint: Checkpoint,
    out: BinaryIO,
    *,
    provenance: Mapping[str, Any] | None = None,
    source_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``checkpoint`` as an NDArray file, one array per name, data copied in chunks."""
    extras = checkpoint.extras()
    if extras:
        shown = ", ".join(extra.name or "(root)" for extra in extras[:4]) + (
            ", ..." if len(extras) > 4 else ""
        )
        raise UsageError(
            f"{checkpoint.label}: an MXNet file holds named arrays only, and this checkpoint also has "
            f"{len(extras)} other values ({shown}); write a .pt file to keep them"
        )
    legacy = all(legacy_shape(entry.shape) for entry in checkpoint.entries)
    headers = [array_header(entry.shape, entry.dtype, legacy=legacy) for entry in checkpoint.entries]
    from paramctl.values import ValueReader

    out.write(L.HEADER.pack(L.LIST_MAGIC, 0) + L.U64.pack(len(headers)))
    with ValueReader(checkpoint) as reader:
        for entry, header in zip(checkpoint.entries, headers, strict=True):
            out.write(header)
            out.flush()
            position = out.tell()
            storage = checkpoint.storage_of(entry)
            start, end = entry.byte_span
            if entry.is_contiguous and end - start == entry.nbytes and storage.offset is not None:
                copy_range(
                    reader.fileno(storage.file), out.fileno(), storage.offset + start, position, entry.nbytes
                )
            elif entry.nbytes:
                tensor = reader.tensor(entry).contiguous()
                write_at(out.fileno(), memoryview(tensor.view(-1).view(_uint8()).numpy().data), position)
            out.seek(position + entry.nbytes)
    out.write(names_block(checkpoint.names()))
    out.truncate()


def _uint8() -> Any:
    import torch

    return torch.uint8
