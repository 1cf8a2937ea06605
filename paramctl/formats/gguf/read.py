"""GGUF files (llama.cpp): a header of key-value metadata and tensor infos, then aligned data.

The header is parsed by the ``gguf`` package's own ``GGUFReader`` (imported only here, when
a GGUF file is read). Its tensor step is replaced: the package builds a numpy view of each
tensor's data, which fails outright on a tensor that runs past the end of the file; here
each tensor's info (name, type, dimensions, offset) is kept as it is, so bounds are
reported rather than crash the read.

Shapes: GGUF stores dimensions innermost first (``ne[0]`` is the row length); entries
carry them reversed, in the order PyTorch and numpy use (``token_embd.weight`` of a
151,936-token, 896-wide model is ``(151936, 896)``).

>>> TensorInfo("token_embd.weight", ggml_code=1, dims=(896, 151936), offset=0).shape
(151936, 896)
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, LongArray, Storage, TensorEntry, contiguous_stride
from paramctl.dtypes import BY_GGML_CODE
from paramctl.errors import CorruptCheckpoint, LimitExceeded
from paramctl.formats._limits import LIMITS, Limits, check_count
from paramctl.formats.gguf.layout import NAME

if TYPE_CHECKING:
    from gguf import GGUFReader

# GGUFReader's own bookkeeping fields, not key-values of the file.
_PSEUDO_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor info record as the header states it (dims innermost first)."""

    name: str
    ggml_code: int
    dims: tuple[int, ...]
    offset: int  # from the start of the data section

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.dims))


@dataclass(frozen=True)
class Header:
    """What the header says: key-values, tensor infos, alignment, where data starts."""

    fields: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_start: int
    file_size: int
    byteorder: str


def read_header(path: Path, limits: Limits = LIMITS) -> Header:
    """Parse the header with ``GGUFReader``, within paramctl's limits; every failure of
    the package on the file is a damaged file (it calls nothing the file names)."""
    _check_counts(path, limits)
    try:
        reader = _info_reader(limits)(path, "r")
        fields = {name: _value(field) for name, field in reader.fields.items() if name not in _PSEUDO_FIELDS}
        header = Header(
            fields,
            list(reader.tensor_infos),  # type: ignore[attr-defined]
            int(reader.alignment),
            int(reader.data_offset),
            len(reader.data),
            "big" if reader.byte_order == "S" else "little",
        )
    except CorruptCheckpoint as exc:
        exc.args = (f"{path}: {exc}",)
        raise
    except MemoryError as exc:
        raise LimitExceeded(f"{path}: the GGUF header", "more than memory holds", "see the limits") from exc
    # ValueError, IndexError, UnicodeDecodeError, ZeroDivisionError (an alignment of 0), ...
    except Exception as exc:
        raise CorruptCheckpoint(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from exc
    del reader  # lets the package's memory map go
    return header


# GGUF v2 and later: magic, version (u32), tensor count and key-value count (u64 each).
_COUNTS = struct.Struct("<4sIQQ")
# The fewest bytes one tensor info takes (a name's length, dimension count, type, offset)
# and one key-value (a key's length, a type, a value of one byte).
_SMALLEST_TENSOR_INFO, _SMALLEST_KEY_VALUE = 24, 13


def _check_counts(path: Path, limits: Limits) -> None:
    """The header's counts fit the file and the limits, before the package loops over them."""
    with open(path, "rb") as file:
        head = file.read(_COUNTS.size)
        size = os.fstat(file.fileno()).st_size
    if len(head) < _COUNTS.size:
        raise CorruptCheckpoint(f"{path}: too short to be a GGUF file")
    _, version, tensors, values = _COUNTS.unpack(head)
    if version & 0xFFFF == 0:  # written on a big-endian machine
        _, version, tensors, values = struct.unpack(">4sIQQ", head)
    check_count(f"{path}: the GGUF header", "tensors", tensors, limits.tensors)
    if tensors * _SMALLEST_TENSOR_INFO + values * _SMALLEST_KEY_VALUE > size:
        raise CorruptCheckpoint(
            f"{path}: the header counts {tensors:,} tensors and {values:,} key-values, "
            f"more than {size:,} bytes hold"
        )


def _info_reader(limits: Limits) -> type[GGUFReader]:
    import numpy as np
    from gguf import GGUFReader, GGUFValueType

    budget = {"elements": 0}

    class InfoReader(GGUFReader):
        """``GGUFReader`` keeping tensor infos as stated, without a data view each.

        Its header reads slice a plain array over the package's map rather than the
        ``np.memmap`` itself: the same bytes and byte order, without the memmap subclass's
        bookkeeping on each of the hundreds of thousands of slices a vocabulary takes (most
        of the package's time on a large vocabulary).
        """

        def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> Any:
            plain = self.__dict__.get("_plain")
            if plain is None:
                plain = self.__dict__["_plain"] = self.data.view(np.ndarray)
            element = np.dtype(dtype)
            count = int(count)
            raw = plain[offset : offset + element.itemsize * count]
            if len(raw) < element.itemsize * count:  # the package would go on with a short array
                raise CorruptCheckpoint(f"the header runs past the end of the file at byte {offset:,}")
            array = raw.view(element)
            order = self.byte_order if override_order is None else override_order
            return array.view(array.dtype.newbyteorder(order))

        def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
            """The package's parse of one value; an array's length is checked against the
            budget first, and an array of numbers is read as one slice (the package
            reads it element by element)."""
            if raw_type != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype, length = self._get(orig_offs, np.uint32), self._get(orig_offs + 4, np.uint64)
            count = int(length[0])
            budget["elements"] += count
            check_count("the GGUF header", "array elements", budget["elements"], limits.metadata_elements)
            kind = GGUFValueType(int(raw_itype[0]))
            numbers = self.gguf_scalar_to_np.get(kind)
            if count == 0 or (numbers is None and kind != GGUFValueType.STRING):
                return super()._get_field_parts(orig_offs, raw_type)
            types = [GGUFValueType.ARRAY, kind]
            if numbers is None:
                size, parts = self._strings(orig_offs + 12, count)
                return 12 + size, [raw_itype, length, *parts], list(range(2, 2 + count)), types
            values = self._get(orig_offs + 12, numbers, count)
            return 12 + int(values.nbytes), [raw_itype, length, values], [2], types

        def _strings(self, start: int, count: int) -> tuple[int, list[Any]]:
            """``count`` strings from ``start``, each a view of its bytes (what the
            package's ``contents`` decodes), without a numpy array per length."""
            plain = self._get(0, np.uint8, len(self.data)).data.cast("B")
            little = (self.byte_order == "I") == (sys.byteorder == "little")
            length = struct.Struct("<Q" if little else ">Q")
            parts, position, size = [], start, len(plain)
            try:
                for _ in range(count):
                    (taken,) = length.unpack_from(plain, position)
                    end = position + 8 + taken
                    if end > size:
                        raise struct.error
                    parts.append(plain[position + 8 : end])
                    position = end
            except struct.error:
                raise CorruptCheckpoint(
                    f"the header runs past the end of the file at byte {position:,}"
                ) from None
            return position - start, parts

        def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
            infos = []
            for field in fields:
                _, name, _, dims, ggml_type, offset = field.parts
                infos.append(
                    TensorInfo(
                        bytes(name).decode("utf-8"),
                        int(ggml_type[0]),
                        tuple(int(d) for d in dims),
                        int(offset[0]),
                    )
                )
            self.tensor_infos = infos
            self.tensors = []

    return InfoReader


def _value(field: Any) -> Any:
    from gguf import GGUFValueType

    value = field.contents()
    if field.types and field.types[0] == GGUFValueType.ARRAY:
        kind = field.types[-1].name.lower()
        return LongArray(tuple(value), "strings" if kind == "string" else kind)
    return value


def read(path: Path) -> Checkpoint:
    header = read_header(path)
    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    payload: dict[str, Any] = dict(header.fields)
    for info in header.tensors:
        entry, storage = _entry(path, info, header)
        if info.name in payload:
            raise CorruptCheckpoint(f"{path}: the name {info.name!r} is used twice")
        entries.append(entry)
        storages[entry.storage_key] = storage
        payload[info.name] = entry
    return Checkpoint(path, NAME, entries, storages, payload=payload, byteorder=header.byteorder)


def _entry(path: Path, info: TensorInfo, header: Header) -> tuple[TensorEntry, Storage]:
    element = BY_GGML_CODE.get(info.ggml_code)
    if element is None:
        raise CorruptCheckpoint(f"{path}: {info.name}: unknown GGML type {info.ggml_code}")
    shape = info.shape
    entry = TensorEntry(info.name, (info.name,), shape, element.name, contiguous_stride(shape), info.name)
    start = header.data_start + info.offset
    if start + entry.nbytes > header.file_size:
        raise CorruptCheckpoint(
            f"{path}: {info.name}: its {entry.nbytes} bytes at offset {start} run past the end of "
            f"the {header.file_size}-byte file"
        )
    return entry, Storage(info.name, path, element.name, entry.nbytes, start)
