"""Writing a new GGUF file from any checkpoint, with the ``gguf`` package's ``GGUFWriter``:
its header, key-values and tensor infos, then each tensor's bytes copied into place (the
package would take each tensor as an array in memory; copying keeps memory flat).

Tensors keep their dtype where GGUF has a type for it (``F32``, ``F16``, ``BF16``, ``F64``,
the integers, and block-quantized types copied as they are); shapes are given in PyTorch
order and reversed by the writer, as GGUF stores them. The non-tensor values of the source
become key-values (strings, booleans, numbers, arrays; GGUF has no null, so a ``None`` is
left out); ``general.architecture`` is the source's, else ``unknown``. Ties are stored as
copies: GGUF records no sharing.

>>> kv_kind(3), kv_kind(-1), kv_kind(0.5), kv_kind("llama"), kv_kind([1, 2])
('uint32', 'int64', 'float32', 'string', 'array')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint, LongArray
from paramctl.dtypes import DTYPES
from paramctl.errors import UsageError
from paramctl.formats._io import copy_range

ARCHITECTURE = "general.architecture"
_UNSIGNED_32 = 1 << 32


def kv_kind(value: Any) -> str | None:
    """The GGUF value type a Python value is written as (``None``: none fits)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "uint32" if 0 <= value < _UNSIGNED_32 else "int64"
    if isinstance(value, float):
        return "float32"
    if isinstance(value, str):
        return "string"
    if isinstance(value, LongArray | list | tuple):
        return "array"
    return None


def _key_values(checkpoint: Checkpoint) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for extra in checkpoint.extras():
        if extra.value is None:  # GGUF has no null: a key without a value is left out
            continue
        if kv_kind(extra.value) is None:
            raise UsageError(
                f"{checkpoint.label}: {extra.name} is a {type(extra.value).__name__}, which GGUF cannot "
                "hold as a key-value; leave the other values out with --drop-extras"
            )
        values[extra.name] = list(extra.value.items) if isinstance(extra.value, LongArray) else extra.value
    return values


def write_gguf(
    checkpoint: Checkpoint,
    out: BinaryIO,
    *,
    provenance: Mapping[str, Any] | None = None,
    source_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``checkpoint`` (one plain storage per tensor) as a GGUF file."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.gguf_writer import WriterState

    values = _key_values(checkpoint)
    architecture = values.pop(ARCHITECTURE, "unknown")
    writer = GGUFWriter(path=None, arch=str(architecture))
    for key, value in values.items():
        getattr(writer, f"add_{kv_kind(value)}")(key, value)
    for entry in checkpoint.entries:
        code = DTYPES[entry.dtype].ggml_code
        if code is None:
            raise UsageError(f"{entry.name}: GGUF cannot hold {entry.dtype} (it has no type for it)")
        # With a raw type given, the writer takes the shape as it is (elements, not bytes).
        writer.add_tensor_info(
            entry.name, entry.shape, np.dtype(np.float32), entry.nbytes, raw_dtype=GGMLQuantizationType(code)
        )
    writer.fout = [out]  # type: ignore[list-item]
    writer.state = WriterState.EMPTY
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    from paramctl.values import ValueReader

    with ValueReader(checkpoint) as reader:
        for entry in checkpoint.entries:
            writer.write_padding(out, out.tell())
            out.flush()
            position = out.tell()
            storage = checkpoint.storage_of(entry)
            start, end = entry.byte_span
            if not entry.is_contiguous or end - start != entry.nbytes or storage.offset is None:
                raise UsageError(
                    f"{entry.name}: its bytes are not one plain run of the file; write the GGUF "
                    "file with paramctl convert, which lays each tensor out whole"
                )
            source = reader.fileno(storage.file)
            copy_range(source, out.fileno(), storage.offset + start, position, entry.nbytes)
            out.seek(position + entry.nbytes)
            writer.write_padding(out, entry.nbytes)
    out.truncate()
