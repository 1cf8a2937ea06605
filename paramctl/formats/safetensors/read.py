"""safetensors files: an 8-byte header length, a JSON header, then the tensor bytes.

The header is parsed here rather than through ``safetensors.safe_open`` because that call
loads the framework bindings; the format is a documented JSON table, so reading it by hand
keeps ``paramctl list`` free of torch. Values are read later through ``safetensors``/torch.

The file is held to what the reference loader demands, so that paramctl never reads a file
it refuses, or reads one differently: a header of at most 100 MB in UTF-8, JSON without
duplicate keys (the reference keeps the last of two, other parsers the first) or
non-standard constants, each entry a known dtype, a shape of plain non-negative integers
(``true`` is no size, though Python's ``bool`` is an ``int``) and two offsets, and the
entries tiling the data section exactly, in offset order, with no hole, overlap or byte
after the last. :func:`header_problems` lists every problem (``check`` reports them all);
:func:`read` refuses a file for the first.

>>> parse_header(b'{"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}')["w"]["shape"]
[2, 3]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, contiguous_stride
from paramctl.dtypes import BY_SAFETENSORS_CODE
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._json import load_json
from paramctl.formats._limits import LIMITS, Limits, check_count
from paramctl.formats._source import open_binary
from paramctl.formats.safetensors.layout import NAME

METADATA_KEY = "__metadata__"
# Sizes and offsets are unsigned 64-bit integers in the reference implementation.
_U64 = 1 << 64


@dataclass(frozen=True)
class HeaderProblem:
    """One way a header breaks the format: which check, which entry, what."""

    check: str
    name: str
    message: str


def parse_header(raw: bytes, limits: Limits = LIMITS) -> dict[str, Any]:
    """The JSON header, held to the limits before and while it is parsed."""
    # The key every entry has, spelled as writers spell it (the parse counts exactly).
    check_count("the safetensors header", "tensors", raw.count(b'"data_offsets"'), limits.tensors)
    header = load_json(raw, "the header", limits, objects=limits.tensors + 2)
    if not isinstance(header, dict):
        raise CorruptCheckpoint("the header is not a JSON object")
    check_count("the safetensors header", "tensors", len(header) - (METADATA_KEY in header), limits.tensors)
    return header


def read_header(path: Path, limits: Limits = LIMITS) -> tuple[dict[str, Any], int, int]:
    """Return the parsed header, the offset where data starts, and the data length."""
    with open_binary(path) as file:
        prefix = file.read(8)
        if len(prefix) != 8:
            raise CorruptCheckpoint(f"{path}: too short to be a safetensors file")
        (length,) = struct.unpack("<Q", prefix)
        file_size = file.seek(0, 2)
        if length > limits.header_bytes or 8 + length > file_size:
            raise CorruptCheckpoint(f"{path}: safetensors header length {length:,} is impossible")
        file.seek(8)
        raw = file.read(length)
    try:
        header = parse_header(raw, limits)
    except CorruptCheckpoint as exc:
        exc.args = (f"{path}: {exc}",)
        raise
    return header, 8 + length, file_size - 8 - length


@dataclass(frozen=True)
class _Span:
    name: str
    code: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _u64s(value: Any, count: int | None = None) -> tuple[int, ...] | None:
    if not isinstance(value, list) or (count is not None and len(value) != count):
        return None
    if all(type(item) is int and 0 <= item < _U64 for item in value):
        return tuple(value)
    return None


def _span(name: str, info: Any) -> _Span | HeaderProblem:
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        return HeaderProblem("header", name, "needs dtype, shape and two data_offsets")
    code, shape, offsets = info["dtype"], _u64s(info["shape"]), _u64s(info["data_offsets"], 2)
    if not isinstance(code, str) or code not in BY_SAFETENSORS_CODE:
        return HeaderProblem("header", name, f"unknown dtype {code!r:.40}")
    if shape is None:
        return HeaderProblem(
            "header", name, f"bad shape {info['shape']!r:.60} (sizes are non-negative integers)"
        )
    if offsets is None or offsets[0] > offsets[1]:
        return HeaderProblem("offsets", name, f"bad data offsets {info['data_offsets']!r:.60}")
    return _Span(name, code, shape, *offsets)


def header_problems(header: dict[str, Any], data_length: int) -> Iterator[HeaderProblem | _Span]:
    """Each entry's problem or its span, then each problem of how the spans tile the data."""
    metadata = header.get(METADATA_KEY)
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(value, str) for value in metadata.values())
    ):
        yield HeaderProblem("header", METADATA_KEY, "must map strings to strings")
    spans: list[_Span] = []
    for name, info in header.items():
        if name == METADATA_KEY:
            continue
        span = _span(name, info)
        if isinstance(span, _Span):
            numel = 1
            for size in span.shape:
                numel *= size
            needed = numel * BY_SAFETENSORS_CODE[span.code].itemsize
            if span.end > data_length:
                yield HeaderProblem(
                    "offsets",
                    name,
                    f"data offsets [{span.begin}, {span.end}] run past the {data_length} bytes of data",
                )
                continue
            if span.end - span.begin != needed:
                message = f"data offsets span {span.end - span.begin} bytes, the shape needs {needed}"
                yield HeaderProblem("offsets", name, message)
            spans.append(span)
        yield span
    yield from _coverage(spans, data_length)


def _coverage(spans: list[_Span], data_length: int) -> Iterator[HeaderProblem]:
    """The reference loader sorts entries by offsets and demands they follow each other."""
    spans = sorted(spans, key=lambda span: (span.begin, span.end))
    position, previous = 0, ""
    for span in spans:
        if span.begin > position:
            after = f" after {previous}" if previous else " at the start"
            yield HeaderProblem("coverage", span.name, f"a hole of {span.begin - position} bytes{after}")
        elif span.begin < position:
            yield HeaderProblem(
                "coverage", span.name, f"overlaps {previous} by {position - span.begin} bytes"
            )
        position, previous = max(position, span.end), span.name
    if position < data_length:
        where = "after the last tensor" if spans else "that no tensor claims"
        yield HeaderProblem("coverage", "", f"{data_length - position} bytes {where}")


def read(path: Path, limits: Limits = LIMITS) -> Checkpoint:
    header, data_start, data_length = read_header(path, limits)
    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    for found in header_problems(header, data_length):
        if isinstance(found, HeaderProblem):
            where = f"{found.name}: " if found.name else ""
            raise CorruptCheckpoint(f"{path}: {where}{found.message}")
        dt = BY_SAFETENSORS_CODE[found.code]
        entry = TensorEntry(
            found.name, (found.name,), found.shape, dt.name, contiguous_stride(found.shape), found.name
        )
        entries.append(entry)
        storages[found.name] = Storage(found.name, path, dt.name, entry.nbytes, data_start + found.begin)
    metadata: dict[str, str] = dict(header.get(METADATA_KEY) or {})
    entries.sort(key=lambda e: storages[e.storage_key].offset or 0)
    entries.extend(_aliases(metadata, {e.name: e for e in entries}))
    return Checkpoint(path, NAME, entries, storages, payload=None, metadata=metadata)


def _aliases(metadata: dict[str, str], by_name: dict[str, TensorEntry]) -> list[TensorEntry]:
    """Names that ``safetensors.torch.save_model`` dropped as duplicates of a kept tensor.

    It records each dropped name in ``__metadata__`` as ``{dropped: kept}``; they are the
    same tensor, so they come back as entries on the kept tensor's storage.
    """
    aliases = []
    for dropped, kept in metadata.items():
        if dropped not in by_name and kept in by_name:
            target = by_name[kept]
            aliases.append(
                TensorEntry(
                    dropped,
                    (dropped,),
                    target.shape,
                    target.dtype,
                    target.stride,
                    target.storage_key,
                    recorded_alias=True,
                )
            )
    return aliases
