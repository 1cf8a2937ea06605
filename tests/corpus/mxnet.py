"""MXNet NDArray files (``.params``): truncated at many points, counts no file holds,
dimensions, storage types and type flags MXNet does not write, trailing bytes."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from corpus import Item
from corpus.zips import Writer

V2 = 0xF993FAC9


def array(
    shape: tuple[int, ...], data: bytes, *, flag: int = 0, storage: int = 0, ndim: int | None = None
) -> bytes:
    dims = struct.pack(f"<I{len(shape)}q", len(shape) if ndim is None else ndim, *shape)
    return struct.pack("<Ii", V2, storage) + dims + struct.pack("<iii", 1, 0, flag) + data


def params(
    arrays: list[bytes], names: list[str], *, count: int | None = None, name_count: int | None = None
) -> bytes:
    head = struct.pack("<QQQ", 0x112, 0, len(arrays) if count is None else count)
    tail = struct.pack("<Q", len(names) if name_count is None else name_count)
    tail += b"".join(struct.pack("<Q", len(n.encode())) + n.encode() for n in names)
    return head + b"".join(arrays) + tail


def items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "mxnet", ".params")
    weight, bias = array((2, 3), bytes(24)), array((3,), bytes(12))
    good = params([weight, bias], ["dense0_weight", "dense0_bias"])
    valid = Writer(folder, "valid", ".params", prefix="valid-mxnet")
    yield valid("an MXNet .params of two arrays", good, 0)
    for cut in sorted({8, 20, 30, 40, 60, len(good) - 30, len(good) - 1}):
        yield write(f"cut to {cut} of {len(good)} bytes", good[:cut], 3)
    broken = [
        ("2**62 arrays counted", params([weight], ["w"], count=1 << 62), "more than"),
        ("2**62 names counted", params([weight], ["w"], name_count=1 << 62), "more than"),
        ("a name of 2**62 bytes", params([weight], [])[:-8] + struct.pack("<QQ", 1, 1 << 62), "more than"),
        ("three names for two arrays", params([weight, bias], ["a", "b", "c"]), "names"),
        ("a size of 2**40 x 2**40", params([array((1 << 40, 1 << 40), b"")], ["w"]), "needs"),
        ("a negative size", params([array((-4,), b"")], ["w"]), "size"),
        ("2**31 dimensions", params([array((2,), bytes(8), ndim=1 << 31)], ["w"]), ""),
        ("an unknown type flag", params([array((2,), bytes(8), flag=99)], ["w"]), "type flag"),
        ("a row_sparse array", params([array((2,), bytes(8), storage=1)], ["w"]), "dense"),
        ("bytes after the names", good + b"junk", "follow"),
        ("two arrays of one name", params([weight, bias], ["w", "w"]), "same name"),
        ("a name that is not UTF-8", params([weight], ["w"])[:-1] + b"\xff", "UTF-8"),
    ]
    for name, content, message in broken:
        yield write(name, content, 3, message)
