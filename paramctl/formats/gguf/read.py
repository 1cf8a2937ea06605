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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, LongArray, Storage, TensorEntry
from paramctl.dtypes import BY_GGML_CODE
from paramctl.errors import CorruptCheckpoint
from paramctl.formats.safetensors.read import contiguous_stride

if TYPE_CHECKING:
    from gguf import GGUFReader

NAME = "gguf"
MAGIC = b"GGUF"
# GGUFReader's own bookkeeping fields, not key-values of the file.
_PSEUDO_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")
SHAPE_ORDER = "PyTorch order (GGUF's dimensions reversed)"


def sniff(head: bytes) -> bool:
    return head.startswith(MAGIC)


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


def read_header(path: Path) -> Header:
    """Parse the header with ``GGUFReader``; every failure is a damaged file."""
    try:
        reader = _info_reader()(path, "r")
    except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
        raise CorruptCheckpoint(f"{path}: not a readable GGUF file ({exc})") from exc
    fields = {name: _value(field) for name, field in reader.fields.items() if name not in _PSEUDO_FIELDS}
    header = Header(
        fields,
        list(reader.tensor_infos),  # type: ignore[attr-defined]
        int(reader.alignment),
        int(reader.data_offset),
        len(reader.data),
        "big" if reader.byte_order == "S" else "little",
    )
    del reader  # lets the package's memory map go
    return header


def _info_reader() -> type[GGUFReader]:
    import numpy as np
    from gguf import GGUFReader

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
            array = plain[offset : offset + element.itemsize * count].view(element)[:count]
            order = self.byte_order if override_order is None else override_order
            return array.view(array.dtype.newbyteorder(order))

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
