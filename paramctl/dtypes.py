"""The dtypes checkpoints hold, by their torch name, without importing torch.

One table maps the three spellings a checkpoint can use for the same dtype: torch's name
(``float32``), the legacy pickle storage class (``FloatStorage``) and the safetensors code
(``F32``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """One element type: its torch name, size in bytes and its other spellings."""

    name: str
    itemsize: int
    storage_class: str | None
    safetensors_code: str | None

    @property
    def is_floating(self) -> bool:
        return self.name.startswith(("float", "bfloat"))

    @property
    def is_complex(self) -> bool:
        return self.name.startswith("complex")


_TABLE = [
    DType("float64", 8, "DoubleStorage", "F64"),
    DType("float32", 4, "FloatStorage", "F32"),
    DType("float16", 2, "HalfStorage", "F16"),
    DType("bfloat16", 2, "BFloat16Storage", "BF16"),
    DType("float8_e4m3fn", 1, None, "F8_E4M3"),
    DType("float8_e5m2", 1, None, "F8_E5M2"),
    DType("float8_e4m3fnuz", 1, None, None),
    DType("float8_e5m2fnuz", 1, None, None),
    DType("float8_e8m0fnu", 1, None, "F8_E8M0"),
    DType("complex128", 16, "ComplexDoubleStorage", "C128"),
    DType("complex64", 8, "ComplexFloatStorage", "C64"),
    DType("int64", 8, "LongStorage", "I64"),
    DType("int32", 4, "IntStorage", "I32"),
    DType("int16", 2, "ShortStorage", "I16"),
    DType("int8", 1, "CharStorage", "I8"),
    DType("uint64", 8, None, "U64"),
    DType("uint32", 4, None, "U32"),
    DType("uint16", 2, None, "U16"),
    DType("uint8", 1, "ByteStorage", "U8"),
    DType("bool", 1, "BoolStorage", "BOOL"),
    # Quantized tensors reach paramctl only through torch.load's fallback path.
    DType("qint8", 1, "QInt8Storage", None),
    DType("quint8", 1, "QUInt8Storage", None),
    DType("qint32", 4, "QInt32Storage", None),
    DType("quint4x2", 1, "QUInt4x2Storage", None),
    DType("quint2x4", 1, "QUInt2x4Storage", None),
]

DTYPES: dict[str, DType] = {d.name: d for d in _TABLE}
BY_STORAGE_CLASS: dict[str, DType] = {d.storage_class: d for d in _TABLE if d.storage_class}
BY_SAFETENSORS_CODE: dict[str, DType] = {d.safetensors_code: d for d in _TABLE if d.safetensors_code}
# Storages written without a dtype (``torch.storage.UntypedStorage``) count bytes.
UNTYPED = DTYPES["uint8"]


def dtype(name: str) -> DType:
    """Look up a dtype by torch name (``"float32"`` or ``"torch.float32"``).

    >>> dtype("torch.bfloat16").itemsize
    2
    """
    return DTYPES[name.removeprefix("torch.")]
