"""Legacy torch files (``_use_new_zipfile_serialization=False``): payloads in each of the
five pickles, and the storage section broken every way."""

from __future__ import annotations

import collections
import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import torch
import torch._utils

from corpus import Item
from corpus.pickles import ROUTES, route_body, wrap
from corpus.zips import Writer
from paramctl.formats.torch_legacy.layout import MAGIC_NUMBER
from paramctl.formats.torch_legacy.read import PROTOCOL_VERSION

SYS_INFO = {
    "protocol_version": PROTOCOL_VERSION,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}


def legacy(
    objects: bytes,
    keys: list[object],
    storages: list[tuple[int, bytes]],
    *,
    pickles: dict[int, bytes] | None = None,
    after: bytes = b"",
) -> bytes:
    """A legacy file: five pickles (``pickles`` replaces any by position 0-4), then each
    storage as its 8-byte element count and its bytes."""
    parts = [
        pickle.dumps(MAGIC_NUMBER, protocol=2),
        pickle.dumps(PROTOCOL_VERSION, protocol=2),
        pickle.dumps(SYS_INFO, protocol=2),
        objects,
        pickle.dumps(keys, protocol=2),
    ]
    for position, replacement in (pickles or {}).items():
        parts[position] = replacement
    section = b"".join(count.to_bytes(8, "little", signed=True) + data for count, data in storages)
    return b"".join(parts) + section + after


def objects_pickle(pids: list[tuple[object, ...]], shapes: list[tuple[int, ...]] | None = None) -> bytes:
    """The object pickle of ``{"t0": tensor, ...}``, one float32 tensor per persistent id."""

    class Storage:
        def __init__(self, pid: tuple[object, ...]) -> None:
            self.pid = pid

    class Tensor:
        def __init__(self, pid: tuple[object, ...], shape: tuple[int, ...]) -> None:
            self.pid, self.shape = pid, shape

        def __reduce__(self) -> object:
            stride = tuple(1 for _ in self.shape)
            hooks: collections.OrderedDict[str, object] = collections.OrderedDict()
            return (torch._utils._rebuild_tensor_v2, (Storage(self.pid), 0, self.shape, stride, False, hooks))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return obj.pid if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    tensors = {
        f"t{index}": Tensor(pid, (shapes or [(4,)] * len(pids))[index]) for index, pid in enumerate(pids)
    }
    Pickler(buffer, protocol=2).dump(tensors)
    return buffer.getvalue()


def pid(key: object, numel: int = 4, view: object = None) -> tuple[object, ...]:
    return ("storage", torch.FloatStorage, key, "cpu", numel, view)


def items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "legacy")
    command = f"touch {canary}"
    good = legacy(objects_pickle([pid("0")]), ["0"], [(4, bytes(16))])
    for position, name in enumerate(["magic number", "protocol", "system info", "object", "storage keys"]):
        for route in ("GLOBAL", "STACK_GLOBAL", "BUILD"):
            protocol = 4 if route == "STACK_GLOBAL" else 2
            evil = wrap(route_body(route, command, protocol), protocol)
            # A file whose first pickle is not the magic number is no legacy checkpoint.
            code = 3 if position == 0 else 4
            content = legacy(objects_pickle([]), [], [], pickles={position: evil})
            yield write(f"the {name} pickle runs code ({route})", content, code)
    for route in ROUTES:
        if 2 in route.protocols and route.name not in ("GLOBAL", "BUILD"):
            evil = wrap(route_body(route.name, command, 2), 2)
            yield write(f"the object pickle runs code ({route.name})", legacy(evil, [], []), 4)
    for cut in sorted({1, 12, 30, 60, 100, len(good) // 2, len(good) - 16, len(good) - 9, len(good) - 1}):
        yield write(f"cut to {cut} of {len(good)} bytes", good[:cut], 3)
    yield write("bytes after the last storage", good + b"trailing", 3, "follow the last storage")
    yield write(
        "a storage listed twice",
        legacy(objects_pickle([pid("0")]), ["0", "0"], [(4, bytes(16))] * 2),
        3,
        "twice",
    )
    yield write(
        "a count unlike the pickle's",
        legacy(objects_pickle([pid("0")]), ["0"], [(3, bytes(12))]),
        3,
        "elements",
    )
    yield write("a negative count", legacy(objects_pickle([pid("0")]), ["0"], [(-4, b"")]), 3)
    yield write("a huge count", legacy(objects_pickle([pid("0")]), ["0"], [(1 << 62, bytes(16))]), 3)
    yield write(
        "a key listed, never used",
        legacy(objects_pickle([pid("0")]), ["0", "9"], [(4, bytes(16))] * 2),
        3,
        "never used",
    )
    yield write("a storage never listed", legacy(objects_pickle([pid("0")]), [], []), 3, "no data")
    yield write("an integer key", legacy(objects_pickle([pid(0)]), [0], [(4, bytes(16))]), 3)
    yield write(
        "keys that are not a list",
        legacy(
            objects_pickle([pid("0")]), ["0"], [(4, bytes(16))], pickles={4: pickle.dumps("0", protocol=2)}
        ),
        3,
    )
    two = objects_pickle([pid("0", 4), pid("0", 8)])
    yield write(
        "one key described with two sizes", legacy(two, ["0"], [(4, bytes(16))]), 3, "described twice"
    )
    outside = objects_pickle([pid("0", 4, ("v", 2, 8))])
    yield write("a view past its storage", legacy(outside, ["0"], [(4, bytes(16))]), 3, "view")
    clash = objects_pickle([pid("0", 4), pid("1", 8, ("0", 0, 4))])
    yield write("a view named like a storage", legacy(clash, ["0", "1"], [(4, bytes(16)), (8, bytes(32))]), 3)
    tensor_past_view = objects_pickle([pid("0", 8, ("v", 0, 2))], shapes=[(4,)])
    yield write("a tensor past its view", legacy(tensor_past_view, ["0"], [(8, bytes(32))]), 3)
    big_endian = {**SYS_INFO, "little_endian": False}
    yield write(
        "system info says big endian",
        legacy(
            objects_pickle([pid("0")]),
            ["0"],
            [(4, bytes(16))],
            pickles={2: pickle.dumps(big_endian, protocol=2)},
        ),
        0,
    )
    version = legacy(objects_pickle([]), [], [], pickles={1: pickle.dumps(1000, protocol=2)})
    yield write("protocol version 1000", version, 3, "protocol version")
    buffer = io.BytesIO()
    base = torch.arange(6.0)
    torch.save(
        {"w": base, "v": base[1:3], "n": {"b": torch.ones(2, dtype=torch.int64)}},
        buffer,
        _use_new_zipfile_serialization=False,
    )
    yield write("a plain legacy torch.save", buffer.getvalue(), 0)
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer, _use_new_zipfile_serialization=False, pickle_protocol=4)
    yield write("a legacy torch.save in protocol 4", buffer.getvalue(), 0)
