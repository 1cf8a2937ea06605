"""The dtypes checkpoints hold, by their torch name, without importing torch.

One table maps the three spellings a checkpoint can use for the same dtype: torch's name
(``float32``), the legacy pickle storage class (``FloatStorage``) and the safetensors code
(``F32``), and gives numpy's code for the stored elements. numpy has no bfloat16 or float8,
so those are stored as their bits; :data:`FLOAT8` describes the one-byte float layouts and
:func:`float8_values` decodes every code of one, without numpy or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Literal


@dataclass(frozen=True)
class DType:
    """One element type: its torch name, size in bytes and its other spellings."""

    name: str
    itemsize: int
    storage_class: str | None
    safetensors_code: str | None
    # numpy's type code for one stored element; None where only torch can read the values.
    array_code: str | None = None

    @property
    def is_floating(self) -> bool:
        return self.name.startswith(("float", "bfloat"))

    @property
    def is_complex(self) -> bool:
        return self.name.startswith("complex")


_TABLE = [
    DType("float64", 8, "DoubleStorage", "F64", "f8"),
    DType("float32", 4, "FloatStorage", "F32", "f4"),
    DType("float16", 2, "HalfStorage", "F16", "f2"),
    DType("bfloat16", 2, "BFloat16Storage", "BF16", "u2"),
    DType("float8_e4m3fn", 1, None, "F8_E4M3", "u1"),
    DType("float8_e5m2", 1, None, "F8_E5M2", "u1"),
    DType("float8_e4m3fnuz", 1, None, None, "u1"),
    DType("float8_e5m2fnuz", 1, None, None, "u1"),
    DType("float8_e8m0fnu", 1, None, "F8_E8M0", "u1"),
    DType("complex128", 16, "ComplexDoubleStorage", "C128", "c16"),
    DType("complex64", 8, "ComplexFloatStorage", "C64", "c8"),
    DType("int64", 8, "LongStorage", "I64", "i8"),
    DType("int32", 4, "IntStorage", "I32", "i4"),
    DType("int16", 2, "ShortStorage", "I16", "i2"),
    DType("int8", 1, "CharStorage", "I8", "i1"),
    DType("uint64", 8, None, "U64", "u8"),
    DType("uint32", 4, None, "U32", "u4"),
    DType("uint16", 2, None, "U16", "u2"),
    DType("uint8", 1, "ByteStorage", "U8", "u1"),
    DType("bool", 1, "BoolStorage", "BOOL", "b1"),
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


@dataclass(frozen=True)
class Float8:
    """The bit layout of a one-byte float: sign, exponent and mantissa bits, and its NaN rule.

    ``nan`` says which codes are not numbers: ``"ieee"`` (an all-ones exponent is Inf with a
    zero mantissa, NaN otherwise), ``"all-ones"`` (only the all-ones code, no Inf) or
    ``"negative-zero"`` (only ``0x80``, no Inf and no negative zero: the *fnuz* types).
    """

    exponent_bits: int
    mantissa_bits: int
    bias: int
    nan: Literal["ieee", "all-ones", "negative-zero"]
    signed: bool = True


FLOAT8: dict[str, Float8] = {
    "float8_e4m3fn": Float8(4, 3, 7, "all-ones"),
    "float8_e5m2": Float8(5, 2, 15, "ieee"),
    "float8_e4m3fnuz": Float8(4, 3, 8, "negative-zero"),
    "float8_e5m2fnuz": Float8(5, 2, 16, "negative-zero"),
    "float8_e8m0fnu": Float8(8, 0, 127, "all-ones", signed=False),
}


@cache
def float8_values(name: str) -> tuple[float, ...]:
    """The value of each of the 256 codes of the one-byte float type ``name``.

    >>> values = float8_values("float8_e4m3fn")
    >>> values[0x38], values[0x7E], values[0x01], values[0x7F]
    (1.0, 448.0, 0.001953125, nan)
    """
    layout = FLOAT8[name]
    return tuple(_float8_value(code, layout) for code in range(256))


def _float8_value(code: int, layout: Float8) -> float:
    sign = -1.0 if layout.signed and code & 0x80 else 1.0
    bits = code & 0x7F if layout.signed else code
    exponent, mantissa = bits >> layout.mantissa_bits, bits & ((1 << layout.mantissa_bits) - 1)
    if layout.nan == "negative-zero" and code == 0x80:
        return math.nan
    if layout.nan == "all-ones" and bits == (1 << (layout.exponent_bits + layout.mantissa_bits)) - 1:
        return math.nan
    if layout.nan == "ieee" and exponent == (1 << layout.exponent_bits) - 1:
        return sign * math.inf if mantissa == 0 else math.nan
    scale = 1 << layout.mantissa_bits
    if exponent == 0 and layout.mantissa_bits:  # subnormal: no implicit leading one
        return sign * math.ldexp(mantissa / scale, 1 - layout.bias)
    return sign * math.ldexp(1 + mantissa / scale, exponent - layout.bias)


def dtype(name: str) -> DType:
    """Look up a dtype by torch name (``"float32"`` or ``"torch.float32"``).

    >>> dtype("torch.bfloat16").itemsize
    2
    """
    return DTYPES[name.removeprefix("torch.")]
