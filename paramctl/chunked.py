"""Values of a tensor split into chunks across storages (a torch.distributed.checkpoint
tensor sharded over ranks): assembled from only the chunks a request needs.

Each :class:`~paramctl.checkpoint.Chunk` is a contiguous block of the whole tensor
(``offsets``/``sizes``) stored plainly in one storage. Chunks that are blocks of whole rows
(what ``Shard(0)`` and FSDP write) follow each other in element order, so streaming reads
them one after another and never holds the whole tensor; other layouts are assembled, and an
index (``show --slice``) reads only the chunks it meets.

>>> from paramctl.checkpoint import Chunk, TensorEntry
>>> entry = TensorEntry("w", ("w",), (4, 3), "float32", (3, 1), "w@chunks",
...                     chunks=(Chunk("a", (0, 0), (2, 3)), Chunk("b", (2, 0), (2, 3))))
>>> in_row_order(entry), index_bounds(entry.shape, (slice(3, None), 1))
(True, [(3, 4), (1, 2)])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Chunk, TensorEntry, contiguous_stride
from paramctl.formats._io import read_at
from paramctl.formats._source import fetch

if TYPE_CHECKING:
    import numpy as np
    import torch

    from paramctl.values import Array, ValueReader


def in_row_order(entry: TensorEntry) -> bool:
    """Whether the chunks are blocks of whole rows, so their elements follow in order."""
    return all(chunk.sizes[1:] == entry.shape[1:] for chunk in entry.chunks)


def chunk_entry(entry: TensorEntry, chunk: Chunk) -> TensorEntry:
    """One chunk as a plain contiguous entry on its own storage."""
    return replace(
        entry,
        shape=chunk.sizes,
        stride=contiguous_stride(chunk.sizes),
        storage_key=chunk.storage_key,
        storage_offset=0,
        chunks=(),
    )


def index_bounds(shape: Sequence[int], index: Any) -> list[tuple[int, int]] | None:
    """The box of elements a basic numpy index (ints and slices) reads, per dimension;
    ``None`` for any other index (every chunk is then read)."""
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > len(shape) or not all(isinstance(p, int | slice) for p in parts):
        return None
    bounds = []
    for size, part in zip(shape, (*parts, *[slice(None)] * (len(shape) - len(parts))), strict=True):
        if isinstance(part, int):
            position = part + size if part < 0 else part
            bounds.append((position, position + 1))
            continue
        start, stop, step = part.indices(size)
        if step != 1:
            return None
        bounds.append((start, max(start, stop)))
    return bounds


def pieces(reader: ValueReader, entry: TensorEntry) -> Iterator[TensorEntry]:
    """The chunks as entries, in element order (for entries :func:`in_row_order`)."""
    for chunk in entry.chunks:
        yield chunk_entry(entry, chunk)


def assemble(reader: ValueReader, entry: TensorEntry, stored: np.dtype[Any], index: Any = None) -> Array:
    """The stored elements of the whole tensor, from the chunks ``index`` meets (the
    elements of the chunks it does not meet are left zero, and are not indexed)."""
    import numpy as np

    bounds = None if index is None else index_bounds(entry.shape, index)
    whole = np.zeros(entry.shape, stored)
    for chunk in entry.chunks:
        if bounds is not None and not chunk.selects(bounds):
            continue
        storage = reader.checkpoint.storages[chunk.storage_key]
        block = bytearray(chunk.numel * stored.itemsize)
        assert storage.offset is not None
        fetch(storage.file, storage.offset, storage.offset + len(block))  # a remote file's bytes
        read_at(reader.fileno(storage.file), memoryview(block), storage.offset)
        region = tuple(slice(o, o + s) for o, s in zip(chunk.offsets, chunk.sizes, strict=True))
        whole[region] = np.frombuffer(block, stored).reshape(chunk.sizes)
    return whole


def _decoded(reader: ValueReader, entry: TensorEntry, index: Any = None) -> Array:
    import numpy as np

    from paramctl.values import decode

    whole = assemble(reader, entry, reader_stored(reader, entry), index)
    return decode(whole if index is None else np.asarray(whole[index]), entry.dtype)


def reader_stored(reader: ValueReader, entry: TensorEntry) -> np.dtype[Any]:
    from paramctl.values import stored_dtype

    return stored_dtype(entry.dtype, reader.checkpoint.byteorder)


def split_array(reader: ValueReader, entry: TensorEntry, index: Any = None) -> Array:
    """:meth:`ValueReader.array` of a split tensor: only the chunks ``index`` meets are read."""
    return _decoded(reader, entry, index)


def split_chunks(reader: ValueReader, entry: TensorEntry, max_elements: int) -> Iterator[Array]:
    """:meth:`ValueReader.chunks` of a split tensor: chunk after chunk where they are rows."""
    from paramctl.values import flat_chunks

    if not in_row_order(entry):
        yield from flat_chunks(_decoded(reader, entry), max_elements)
        return
    for part in pieces(reader, entry):
        yield from reader.chunks(part, max_elements)


def split_raw_chunks(reader: ValueReader, entry: TensorEntry, chunk_bytes: int) -> Iterator[memoryview]:
    """:meth:`ValueReader.raw_chunks` of a split tensor, in element order."""
    import numpy as np

    from paramctl.values import flat_chunks

    if not in_row_order(entry):
        whole = assemble(reader, entry, reader_stored(reader, entry))
        yield from (np.ascontiguousarray(c).data.cast("B") for c in flat_chunks(whole))
        return
    for part in pieces(reader, entry):
        yield from reader.raw_chunks(part, chunk_bytes)


def split_tensor(reader: ValueReader, entry: TensorEntry) -> torch.Tensor:
    """:meth:`ValueReader.tensor` of a split tensor: assembled, owning its bytes."""
    import numpy as np
    import torch

    from paramctl.torch_values import torch_dtype

    whole = assemble(reader, entry, reader_stored(reader, entry))
    raw = torch.from_numpy(np.ascontiguousarray(whole).view(np.uint8).reshape(-1).copy())
    return raw.view(torch_dtype(entry.dtype)).view(entry.shape)
