"""The dtypes checkpoints hold, by their torch name, without importing torch.

One table maps the three spellings a checkpoint can use for the same dtype: torch's name
(``float32``), the legacy pickle storage class (``FloatStorage``) and the safetensors code
(``F32``), and gives numpy's code for the stored elements. numpy has no bfloat16 or float8,
so those are stored as their bits; :data:`FLOAT8` describes the one-byte float layouts and
:func:`float8_values` decodes every code of one, without numpy or torch.

GGUF's block-quantized types (``Q8_0``, ``Q4_K``, ``IQ2_XXS``...) store ``block_size``
elements in ``itemsize`` bytes, so their byte count is not ``numel * itemsize``:

>>> q8 = DTYPES["Q8_0"]
>>> q8.nbytes_for(4096), q8.bits_per_weight, DTYPES["float16"].nbytes_for(4096)
(4352, 8.5, 8192)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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
    # Elements per block of a block-quantized type (``itemsize`` is then one block's bytes).
    block_size: int = 1
    # GGUF's code for the type (``GGMLQuantizationType``), where GGUF stores it.
    ggml_code: int | None = None

    @property
    def is_block_quantized(self) -> bool:
        return self.block_size > 1

    def nbytes_for(self, numel: int) -> int:
        """The bytes ``numel`` elements take: whole blocks for a block-quantized type."""
        return -(-numel // self.block_size) * self.itemsize

    @property
    def bits_per_weight(self) -> float:
        return self.itemsize * 8 / self.block_size

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

# GGUF's block-quantized types: (name, code, elements per block, bytes per block), as
# ``gguf.constants.GGML_QUANT_SIZES`` gives them (a test holds this table to it); written
# out so that listing a GGUF file's metadata needs no import of the package.
_GGML_BLOCKS = [
    ("Q4_0", 2, 32, 18),
    ("Q4_1", 3, 32, 20),
    ("Q5_0", 6, 32, 22),
    ("Q5_1", 7, 32, 24),
    ("Q8_0", 8, 32, 34),
    ("Q8_1", 9, 32, 40),
    ("Q2_K", 10, 256, 84),
    ("Q3_K", 11, 256, 110),
    ("Q4_K", 12, 256, 144),
    ("Q5_K", 13, 256, 176),
    ("Q6_K", 14, 256, 210),
    ("Q8_K", 15, 256, 292),
    ("IQ2_XXS", 16, 256, 66),
    ("IQ2_XS", 17, 256, 74),
    ("IQ3_XXS", 18, 256, 98),
    ("IQ1_S", 19, 256, 50),
    ("IQ4_NL", 20, 32, 18),
    ("IQ3_S", 21, 256, 110),
    ("IQ2_S", 22, 256, 82),
    ("IQ4_XS", 23, 256, 136),
    ("IQ1_M", 29, 256, 56),
    ("TQ1_0", 34, 256, 54),
    ("TQ2_0", 35, 256, 66),
    ("MXFP4", 39, 32, 17),
    ("NVFP4", 40, 64, 36),
    ("Q1_0", 41, 128, 18),
]
# GGUF's plain element types, by the torch name paramctl uses for them.
_GGML_PLAIN = {
    "float32": 0,
    "float16": 1,
    "int8": 24,
    "int16": 25,
    "int32": 26,
    "int64": 27,
    "float64": 28,
    "bfloat16": 30,
}
_TABLE = [
    replace(entry, ggml_code=_GGML_PLAIN[entry.name]) if entry.name in _GGML_PLAIN else entry
    for entry in _TABLE
]
_TABLE += [
    # Stored as bytes ("u1"): their values come from gguf.quants, never from a numpy view.
    DType(name, size, None, None, "u1", block, code)
    for name, code, block, size in _GGML_BLOCKS
]

DTYPES: dict[str, DType] = {d.name: d for d in _TABLE}
BY_STORAGE_CLASS: dict[str, DType] = {d.storage_class: d for d in _TABLE if d.storage_class}
BY_SAFETENSORS_CODE: dict[str, DType] = {d.safetensors_code: d for d in _TABLE if d.safetensors_code}
# Storages written without a dtype (``torch.storage.UntypedStorage``) count bytes.
UNTYPED = DTYPES["uint8"]
# numpy's dtype codes (kind and size, ``f4``) for the types numpy itself has.
BY_NUMPY_CODE: dict[str, DType] = {
    d.array_code: d
    for d in _TABLE
    if d.array_code and not d.name.startswith(("bfloat", "float8")) and d.block_size == 1
}
BY_GGML_CODE: dict[int, DType] = {d.ggml_code: d for d in _TABLE if d.ggml_code is not None}


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
