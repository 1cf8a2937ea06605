"""Sharded Hugging Face checkpoints whose index JSON is hostile or broken: deep, huge,
of wrong types, naming shards outside its directory; each in a folder of its own, beside
two real safetensors shards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from corpus import Item

INDEX = "model.safetensors.index.json"
SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def good_index() -> dict[str, object]:
    return {"metadata": {"total_size": 40}, "weight_map": {"w": SHARDS[0], "b": SHARDS[1]}}


def items(folder: Path, canary: str) -> Iterator[Item]:
    count = 0

    def write(name: str, index: object, code: int, message: str = "", **expect: object) -> Item:
        nonlocal count
        count += 1
        directory = folder / f"sharded-{count:03d}"
        directory.mkdir()
        save_file({"w": torch.ones(2, 4)}, directory / SHARDS[0])
        save_file({"b": torch.ones(2)}, directory / SHARDS[1])
        path = directory / INDEX
        path.write_bytes(index if isinstance(index, bytes) else json.dumps(index).encode())
        kind = "valid" if code == 0 else "sharded"
        return Item(name, kind, path, code, message, output_suffix="", **expect)  # type: ignore[arg-type]

    yield write("an index of two shards", good_index(), 0)
    yield write("a total_size that is a float", {**good_index(), "metadata": {"total_size": 40.0}}, 0)
    broken: list[tuple[str, object, int, str]] = [
        (
            "an index nested 100,000 deep",
            b'{"weight_map": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            3,
            "too",
        ),
        (
            "an index of ten million values",
            b'{"weight_map": {}, "x": [' + b"0," * 10_000_000 + b"0]}",
            3,
            "too large",
        ),
        ("a weight map that is a list", {"weight_map": [SHARDS[0]]}, 3, "weight_map"),
        ("a shard named by a number", {"weight_map": {"w": 1}}, 3, "weight_map"),
        ("an index that is a list", b"[1, 2]", 3, "weight_map"),
        ("an index that is not JSON", b'{"weight_map": ', 3, "not valid JSON"),
        ("an index that is not UTF-8", b'{"weight_map": {"\xff": "a"}}', 3, "UTF-8"),
        ("NaN in an index", b'{"metadata": {"total_size": NaN}, "weight_map": {}}', 3, "not JSON"),
        ("a total_size of 2**70", {**good_index(), "metadata": {"total_size": 2**70}}, 3, "total_size"),
        ("a shard outside the directory", {"weight_map": {"w": "../" + SHARDS[0]}}, 4, "leaves"),
        ("a shard at an absolute path", {"weight_map": {"w": "/etc/passwd"}}, 4, "leaves"),
        ("a shard that does not exist", {"weight_map": {"w": "model-9.safetensors"}}, 3, "does not exist"),
        ("a tensor in the wrong shard", {"weight_map": {"w": SHARDS[1], "b": SHARDS[1]}}, 3, ""),
    ]
    for name, index, code, message in broken:
        yield write(name, index, code, message)
    # A total_size no writer gives is no size at all: nothing to compare the shards with.
    yield write("a total_size that is text", {**good_index(), "metadata": {"total_size": "forty"}}, 0)
