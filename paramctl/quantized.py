"""Values of GGUF's block-quantized tensors (``Q8_0``, ``Q4_K``...), through ``gguf.quants``.

A block-quantized tensor stores ``block_size`` elements in a fixed number of bytes (scales
and packed codes), so its values are computed, not read: ``gguf.quants.dequantize`` does
it, a few rows at a time here so memory stays at a chunk. The ``gguf`` package is imported
only when such a tensor's values are asked for; where it has no dequantizer for a type
(some ``IQ`` types), :class:`NoDequantizer` says so.

>>> from paramctl.dtypes import DTYPES
>>> rows_per_chunk(DTYPES["Q8_0"], (64, 4096), 1 << 20)
256
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from paramctl.dtypes import DType
from paramctl.errors import CorruptCheckpoint

if TYPE_CHECKING:
    from numpy.typing import NDArray


class NoDequantizer(CorruptCheckpoint):
    """``gguf.quants`` offers no dequantization for this type: its values cannot be read."""


def note(dtype: DType) -> str:
    return f"dequantized {dtype.name} values ({dtype.bits_per_weight:g} bits per weight, gguf.quants)"


def row_elements(shape: tuple[int, ...]) -> int:
    """Elements per row: GGUF quantizes along the innermost dimension (PyTorch's last)."""
    return shape[-1] if shape else 1


def rows_per_chunk(dtype: DType, shape: tuple[int, ...], max_elements: int) -> int:
    return max(1, max_elements // max(1, row_elements(shape)))


def dequantize(raw: NDArray[Any], dtype: DType, shape: tuple[int, ...]) -> NDArray[Any]:
    """Stored bytes of whole rows of a ``dtype`` tensor whose rows have ``shape[-1]``
    elements, as float32 values (one row per row of bytes)."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize as gguf_dequantize

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


def chunks(
    blocks: Iterator[memoryview], dtype: DType, shape: tuple[int, ...]
) -> Iterator[NDArray[Any]]:
    """Dequantized values of ``blocks`` of stored bytes, each a whole number of rows."""
    import numpy as np

    for block in blocks:
        yield dequantize(np.frombuffer(block, np.uint8), dtype, shape).reshape(-1)
