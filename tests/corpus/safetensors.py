"""safetensors files broken every way the reference loader refuses, and some it reads."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from corpus import Item
from corpus.zips import Writer


def safetensors(header: dict[str, object] | str | bytes, data: bytes, *, length: int | None = None) -> bytes:
    """An 8-byte length, the header (a dict, or raw JSON text or bytes), the data."""
    raw = (
        header
        if isinstance(header, bytes)
        else (header if isinstance(header, str) else json.dumps(header)).encode()
    )
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def entry(dtype: object = "F32", shape: object = (2,), offsets: object = (0, 8)) -> dict[str, object]:
    return {
        "dtype": dtype,
        "shape": list(shape) if isinstance(shape, tuple) else shape,
        "data_offsets": list(offsets) if isinstance(offsets, tuple) else offsets,
    }


def items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "safetensors", ".safetensors")
    good_header = {"a": entry(offsets=(0, 8)), "b": entry("I64", (1,), (8, 16)), "__metadata__": {"k": "v"}}
    good = safetensors(good_header, bytes(16))
    for cut in sorted({1, 7, 8, 9, 20, len(good) - 17, len(good) - 16, len(good) - 8, len(good) - 1}):
        yield write(f"cut to {cut} of {len(good)} bytes", good[:cut], 3)
    yield write("a header longer than the file", safetensors(good_header, bytes(16), length=10**6), 3)
    yield write("a header of 200 MB claimed", safetensors(good_header, bytes(16), length=200_000_000), 3)
    bad: list[tuple[str, object, bytes, str]] = [
        ("offsets past the data", {"a": entry(offsets=(0, 16))}, bytes(8), "run past"),
        ("offsets past the data by 2**64", {"a": entry(offsets=(0, 2**64 + 8))}, bytes(8), "offsets"),
        (
            "two tensors overlapping",
            {"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))},
            bytes(12),
            "overlaps",
        ),
        (
            "one inside another",
            {"a": entry("F32", (4,), (0, 16)), "b": entry(offsets=(4, 12))},
            bytes(16),
            "overlaps",
        ),
        ("begin after end", {"a": entry(offsets=(8, 0))}, bytes(8), "bad data offsets"),
        (
            "a hole between tensors",
            {"a": entry(offsets=(0, 8)), "b": entry(offsets=(12, 20))},
            bytes(20),
            "hole",
        ),
        ("a hole at the start", {"a": entry(offsets=(4, 12))}, bytes(12), "hole"),
        ("bytes after the last tensor", {"a": entry(offsets=(0, 8))}, bytes(12), "after the last tensor"),
        ("data and no tensor", {"__metadata__": {"k": "v"}}, bytes(4), "no tensor"),
        ("a size the shape does not need", {"a": entry("F32", (3,), (0, 8))}, bytes(8), "the shape needs"),
        ("true in a shape", {"a": entry(shape=[True, 2], offsets=(0, 8))}, bytes(8), "bad shape"),
        ("a float in a shape", {"a": entry(shape=[2.0])}, bytes(8), "bad shape"),
        ("a string shape", {"a": entry(shape="2")}, bytes(8), "bad shape"),
        ("a negative size", {"a": entry(shape=[-2])}, bytes(8), "bad shape"),
        ("a size of 2**64", {"a": entry(shape=[2**64], offsets=(0, 8))}, bytes(8), "bad shape"),
        ("true in the offsets", {"a": entry(offsets=[False, 8])}, bytes(8), "bad data offsets"),
        ("one offset", {"a": entry(offsets=[8])}, bytes(8), "bad data offsets"),
        ("three offsets", {"a": entry(offsets=[0, 8, 8])}, bytes(8), "bad data offsets"),
        ("string offsets", {"a": entry(offsets=["0", "8"])}, bytes(8), "bad data offsets"),
        ("an unknown dtype", {"a": entry("F33")}, bytes(8), "unknown dtype"),
        ("a dtype that is a number", {"a": entry(5)}, bytes(8), "unknown dtype"),
        ("a missing dtype", {"a": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), "needs dtype"),
        ("an entry that is a list", {"a": [1, 2]}, bytes(8), "needs dtype"),
        ("metadata of numbers", {"a": entry(), "__metadata__": {"k": 1}}, bytes(8), "strings to strings"),
        ("metadata that is a list", {"a": entry(), "__metadata__": ["k"]}, bytes(8), "strings to strings"),
        ("a header that is a list", [1, 2], bytes(8), "not a checkpoint"),
    ]
    for name, header, data, message in bad:
        yield write(
            name, safetensors(header if isinstance(header, dict) else json.dumps(header), data), 3, message
        )
    raw = [
        (
            "a key twice",
            f'{{"a": {json.dumps(entry())}, "a": {json.dumps(entry("I32"))}}}',
            bytes(8),
            "twice",
        ),
        (
            "a field twice",
            '{"a": {"dtype": "F32", "dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}',
            bytes(8),
            "twice",
        ),
        (
            "NaN in the header",
            '{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 8]}}',
            bytes(8),
            "not JSON",
        ),
        (
            "Infinity in the header",
            '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, Infinity]}}',
            bytes(8),
            "not JSON",
        ),
        (
            "an integer of 5,000 digits",
            '{"a": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 8]}}',
            bytes(8),
            "not valid JSON",
        ),
        ("JSON nested 100,000 deep", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", bytes(8), "too"),
        ("invalid JSON", '{"a": {"dtype": "F32",', bytes(8), "not valid JSON"),
    ]
    for name, text, data, message in raw:
        yield write(name, safetensors(text, data), 3, message)
    yield write("a header that is not UTF-8", safetensors(b'{"a\xff": 1}', b""), 3, "UTF-8")
    many = (
        b"{"
        + b",".join(
            b'"t%d":{"dtype":"U8","shape":[1],"data_offsets":[%d,%d]}' % (i, i, i + 1)
            for i in range(1_000_000)
        )
        + b"}"
    )
    yield write("a million tensors", safetensors(many, bytes(1_000_000)), 3, "too large or too complex")
    yield write(
        "ten million tiny values",
        safetensors(b'{"a": [' + b"0," * 10_000_000 + b"0]}", b""),
        3,
        "too large or too complex",
    )
    # Read by the reference loader, and so by paramctl:
    valid = Writer(folder, "valid", ".safetensors")
    yield valid(
        "entries listed in reverse offset order",
        safetensors({"b": entry("I64", (1,), (8, 16)), "a": entry()}, bytes(16)),
        0,
    )
    yield valid("a header padded with spaces", safetensors(json.dumps(good_header) + "    ", bytes(16)), 0)
    yield valid("metadata null", safetensors({"a": entry(), "__metadata__": None}, bytes(8)), 0)
    yield valid(
        "a zero-size tensor between two",
        safetensors(
            {
                "a": entry(offsets=(0, 8)),
                "z": entry(shape=(0, 3), offsets=(8, 8)),
                "b": entry(offsets=(8, 16)),
            },
            bytes(16),
        ),
        0,
    )
    yield valid(
        "an entry with an unknown field", safetensors({"a": {**entry(), "note": [1, {"x": 2}]}}, bytes(8)), 0
    )
    import torch
    from safetensors.torch import save_file, save_model

    path = folder / "valid-st-real.safetensors"
    save_file(
        {"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.bfloat16), "i": torch.arange(3)},
        path,
        {"k": "v"},
    )
    yield Item("a safetensors save_file", "valid", path, 0)
    tied = torch.nn.Sequential(torch.nn.Embedding(4, 2), torch.nn.Linear(2, 4, bias=False))
    tied[1].weight = tied[0].weight
    path = folder / "valid-st-tied.safetensors"
    save_model(tied, str(path))
    yield Item("a safetensors save_model of tied weights", "valid", path, 0)
