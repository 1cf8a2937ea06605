"""Values of GGUF's block-quantized tensors (``Q8_0``, ``Q4_K``...), through ``gguf.quants``.

A block-quantized tensor stores ``block_size`` elements in a fixed number of bytes (scales
and packed codes), so its values are computed, not read: ``gguf.quants.dequantize`` does
it, a few rows at a time here so memory stays at a chunk. The ``gguf`` package is imported
only when such a tensor's values are asked for; where it has no dequantizer for a type,
:class:`NoDequantizer` says so.

>>> from paramctl.dtypes import DTYPES
>>> chunk_bytes(DTYPES["Q8_0"], (64, 4096), 1 << 20)  # 256 rows of 4,096 elements
1114112
>>> note("Q4_K"), note("float32")
('dequantized Q4_K values (4.5 bits per weight, through gguf.quants)', None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Storage, TensorEntry
from paramctl.dtypes import DTYPES, DType
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._io import read_chunks

if TYPE_CHECKING:
    from numpy.typing import NDArray


class NoDequantizer(CorruptCheckpoint):
    """``gguf.quants`` offers no dequantization for this type: its values cannot be read."""


def note(dtype: str) -> str | None:
    """What a block-quantized type's numbers are (``None`` for other types)."""
    element = DTYPES[dtype]
    if not element.is_block_quantized:
        return None
    return f"dequantized {dtype} values ({element.bits_per_weight:g} bits per weight, through gguf.quants)"


def row_elements(shape: tuple[int, ...]) -> int:
    """Elements per row: GGUF quantizes along the innermost dimension (PyTorch's last)."""
    return shape[-1] if shape else 1


def chunk_bytes(dtype: DType, shape: tuple[int, ...], max_elements: int) -> int:
    """Bytes of as many whole rows as make about ``max_elements`` values (one at least)."""
    rows = max(1, max_elements // max(1, row_elements(shape)))
    return rows * dtype.nbytes_for(row_elements(shape))


def dequantize(raw: NDArray[Any], dtype: DType, shape: tuple[int, ...]) -> NDArray[Any]:
    """Stored bytes of whole rows of a ``dtype`` tensor whose rows have ``shape[-1]``
    elements, as float32 values (one row per row of bytes)."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

    assert dtype.ggml_code is not None
    width = row_elements(shape)
    if width % dtype.block_size:
        raise CorruptCheckpoint(
            f"rows of {width} elements are not whole {dtype.name} blocks of {dtype.block_size}"
        )
    rows = raw.reshape(-1, dtype.nbytes_for(width))
    try:
        values = gguf_dequantize(rows, GGMLQuantizationType(dtype.ggml_code))
    except NotImplementedError as exc:
        raise NoDequantizer(
            f"the gguf package offers no dequantization of {dtype.name}: its values cannot be read"
        ) from exc
    return np.asarray(values, dtype=np.float32).reshape(-1, width)


def dequantized(
    storage: Storage, entry: TensorEntry, max_elements: int, fileno: Callable[[Path], int]
) -> Iterator[NDArray[Any]]:
    """The entry's values as 1-D float32 pieces of whole rows, about ``max_elements`` each,
    read with ``pread`` from the descriptor ``fileno`` gives for the storage's file."""
    import numpy as np

    if entry.numel == 0:
        return
    assert storage.offset is not None
    element = DTYPES[entry.dtype]
    size = chunk_bytes(element, entry.shape, max_elements)
    start = storage.offset + entry.byte_span[0]
    for block in read_chunks(fileno(storage.file), start, entry.nbytes, chunk_size=size):
        yield dequantize(np.frombuffer(block, np.uint8), element, entry.shape).reshape(-1)


def array(
    storage: Storage, entry: TensorEntry, fileno: Callable[[Path], int], index: Any = None
) -> NDArray[Any]:
    """The entry's values in its shape (or the ``index`` part of them)."""
    import numpy as np

    from paramctl.values import CHUNK_ELEMENTS

    parts = [np.array(piece) for piece in dequantized(storage, entry, CHUNK_ELEMENTS, fileno)]
    values = (np.concatenate(parts) if parts else np.empty(0, np.float32)).reshape(entry.shape)
    return values if index is None else np.asarray(values[index])
