"""New bytes for the storages a conversion cannot copy: casts to another dtype, and tensors
the source does not store as one plain run (split into chunks, strided views, compressed
members, big-endian files), written one chunk at a time to a scratch file, with numpy.

bfloat16 is the upper half of a float32, rounded to nearest even by integer arithmetic
(numpy has no bfloat16), as torch rounds it:

>>> import numpy as np
>>> to_dtype(np.array([1.0, 1.00390625, -2.5, np.inf], np.float32), "bfloat16")
array([16256, 16256, 49184, 32640], dtype=uint16)
>>> to_dtype(np.array([0.1], np.float64), "float16").tobytes().hex()
'662e'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from paramctl.convert.plan import Materialize
    from paramctl.formats._format import Progress

_BFLOAT16_HALF = 0x7FFF
_QUIET_NAN = 0x0040


def to_dtype(numbers: NDArray[Any], dtype: str) -> NDArray[Any]:
    """``numbers`` as the stored elements of ``dtype`` (``bfloat16`` as its 16 bits); a
    number beyond the dtype's range becomes an infinity, as in torch."""
    import numpy as np

    if dtype == "bfloat16":
        with np.errstate(over="ignore"):
            bits = np.ascontiguousarray(numbers, dtype=np.float32).view(np.uint32)
        upper = bits >> np.uint32(16)
        rounded: NDArray[Any] = (
            (bits + np.uint32(_BFLOAT16_HALF) + (upper & np.uint32(1))) >> np.uint32(16)
        ).astype(np.uint16)
        nan = np.isnan(numbers)
        if nan.any():
            rounded[nan] = upper[nan].astype(np.uint16) | np.uint16(_QUIET_NAN)
        return rounded
    with np.errstate(over="ignore"):
        if numbers.dtype.itemsize > 4 and dtype == "float16":
            # torch makes a half of a double by way of a float: round twice, as it does.
            numbers = numbers.astype(np.float32)
        cast: NDArray[Any] = np.asarray(numbers, dtype=np.dtype(dtype).newbyteorder("<"))
    return cast


def materialize(
    checkpoint: Checkpoint,
    jobs: Mapping[str, Materialize],
    out: BinaryIO,
    path: Path,
    *,
    on_progress: Progress | None = None,
) -> dict[str, Storage]:
    """Write each job's bytes to ``out`` (the scratch file at ``path``), one after another,
    and return the storages that hold them."""
    from paramctl.values import ValueReader

    storages: dict[str, Storage] = {}
    with ValueReader(checkpoint) as reader:
        for key, job in jobs.items():
            entry = job.entry
            start = out.tell()
            if job.dtype == entry.dtype and checkpoint.byteorder == "little":
                for raw in reader.raw_chunks(entry):
                    out.write(raw)
            else:
                for numbers in reader.chunks(entry):
                    out.write(to_dtype(numbers, job.dtype).tobytes())
            written = out.tell() - start
            storages[key] = Storage(key, path, job.dtype, written, start)
            if on_progress is not None:
                on_progress(written)
    out.flush()
    return storages
