"""PyTorch zip checkpoints: code-running and amplifying data.pkl, and zips broken every way."""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch._utils

from corpus import Item
from corpus.pickles import ROUTES, amplification, harmless_looking, route_body, wrap
from corpus.ziptools import DEFLATED, Layout, Member, bomb_size, build_zip, deflate_bomb

ROOT = "archive"


def from_torch(obj: object, **save: object) -> tuple[bytes, dict[str, bytes]]:
    """The data.pkl and storage records ``torch.save`` writes for ``obj``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer, **save)  # type: ignore[arg-type]
    with zipfile.ZipFile(buffer) as archive:
        root = archive.namelist()[0].split("/")[0]
        data = archive.read(f"{root}/data.pkl")
        storages = {
            name.rsplit("/", 1)[1]: archive.read(name)
            for name in archive.namelist()
            if name.startswith(f"{root}/data/")
        }
    return data, storages


def members(data: bytes, storages: dict[str, bytes] | None = None, **records: bytes | None) -> list[Member]:
    """The records of a torch zip, in torch's order; ``records`` adds or (None) removes."""
    table: dict[str, bytes | None] = {"data.pkl": data, "byteorder": b"little"}
    table.update({f"data/{key}": value for key, value in (storages or {}).items()})
    table["version"] = b"3"
    table.update(records)
    return [Member(f"{ROOT}/{name}", value) for name, value in table.items() if value is not None]


def tensor_pickle(shape: tuple[int, ...], stride: tuple[int, ...], numel: int, *, offset: int = 0) -> bytes:
    """A data.pkl of ``{"w": tensor}`` over one float32 storage of ``numel`` elements."""

    class Storage:
        pass

    class Tensor:
        def __reduce__(self) -> object:
            hooks: collections.OrderedDict[str, object] = collections.OrderedDict()
            return (torch._utils._rebuild_tensor_v2, (Storage(), offset, shape, stride, False, hooks))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if isinstance(obj, Storage) else None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump({"w": Tensor()})
    return buffer.getvalue()


class Writer:
    """Writes items into the corpus folder under numbered names."""

    def __init__(self, folder: Path, kind: str, suffix: str = ".pt", *, prefix: str | None = None) -> None:
        self.folder, self.kind, self.suffix, self.count = folder, kind, suffix, 0
        self.prefix = prefix or kind  # the files' names: one prefix per writer

    def __call__(self, name: str, content: bytes, code: int, message: str = "", **expect: object) -> Item:
        self.count += 1
        path = self.folder / f"{self.prefix}-{self.count:03d}{self.suffix}"
        path.write_bytes(content)
        return Item(name, self.kind, path, code, message, **expect)  # type: ignore[arg-type]


def helper_files(folder: Path, canary: str) -> dict[str, str]:
    """The files some harmless-looking payloads open: each creates the canary when used."""

    class Evil:
        def __reduce__(self) -> object:
            return (os.system, (f"touch {canary}",))

    helpers = folder / "helpers"
    (helpers / "hub").mkdir(parents=True, exist_ok=True)
    (helpers / "hub" / "hubconf.py").write_text(f"open({canary!r}, 'w').close()\ndef entry(): return 1\n")
    (helpers / "script.py").write_text(f"open({canary!r}, 'w').close()\n")
    np.save(helpers / "evil.npy", np.array([Evil()], dtype=object), allow_pickle=True)
    torch.save({"x": Evil()}, helpers / "evil.pt")
    return {
        "pt": str(helpers / "evil.pt"),
        "hub": str(helpers / "hub"),
        "npy": str(helpers / "evil.npy"),
        "script": str(helpers / "script.py"),
    }


# The refusal names the global that does the harm: these three only reach another one.
_REACHED = {"functools.partial": "posix.system", "operator.attrgetter": "__import__"}
_REACHED["operator.methodcaller"] = "__import__"


def _named_as(name: str) -> str:
    return _REACHED.get(name, name.rsplit(".", 1)[-1])


def code_items(folder: Path, canary: str) -> Iterator[Item]:
    # The EXT codes are written by hand; registering them here (copyreg) would change how
    # every later pickle.dumps in this process writes those globals.
    write = Writer(folder, "code")
    command = f"touch {canary}"
    for route in ROUTES:
        for protocol in route.protocols:
            data = wrap(route_body(route.name, command, protocol), protocol)
            yield write(f"data.pkl, {route.name}, protocol {protocol}", build_zip(members(data)), 4)
    write = Writer(folder, "globals")
    for name, (protocol, body) in harmless_looking(canary, helper_files(folder, canary)).items():
        yield write(f"data.pkl calls {name}", build_zip(members(wrap(body, protocol))), 4, _named_as(name))


def amplification_items(folder: Path) -> Iterator[Item]:
    write = Writer(folder, "amplification")
    for name, data in amplification().items():
        limit = any(
            word in name for word in ("fan-out", "LONG_BINPUT", "PUT", "LONG4", "200 times", "nested")
        )
        code = 4 if name == "_codecs.encode utf-7" else 3
        message = "too large or too complex" if limit else ""
        yield write(f"data.pkl: {name}", build_zip(members(data)), code, message)
    weights, storages = from_torch({"w": torch.zeros(4)})
    huge = 3_100_000_000 // 4 * 4
    bomb = Member(
        f"{ROOT}/data.pkl", b"", DEFLATED, packed=deflate_bomb(huge), declared_size=bomb_size(huge), crc=0
    )
    yield write("data.pkl a 3.1 GB DEFLATE bomb", build_zip([bomb, *members(b"")[1:]]), 3, "zip bomb")
    declared = Member(
        f"{ROOT}/data.pkl", b"", DEFLATED, packed=os.urandom(1 << 20), declared_size=80 << 20, crc=0
    )
    yield write("data.pkl declaring 80 MB", build_zip([declared, *members(b"")[1:]]), 3, "too large")
    liar = Member(
        f"{ROOT}/data.pkl", b"", DEFLATED, packed=deflate_bomb(256 << 20), declared_size=len(weights)
    )
    yield write(
        "data.pkl inflating past its declared size",
        build_zip([liar, *members(weights, storages)[1:]]),
        3,
        "inflates",
    )
    numel = bomb_size(huge) // 4
    storage = Member(
        f"{ROOT}/data/0", b"", DEFLATED, packed=deflate_bomb(huge), declared_size=numel * 4, crc=0
    )
    data = tensor_pickle((numel,), (1,), numel)
    yield write("a storage record that is a 3.1 GB bomb", build_zip([*members(data), storage]), 3, "zip bomb")
    for name, shape, stride, numel, code, values in [
        ("shape of 2**40 elements over 4 bytes (stride 0)", (1 << 40,), (0,), 1, 0, 3),
        ("shape of 10**12 elements over a 4-element storage", (10**12,), (1,), 4, 3, 0),
        ("shape whose product overflows 64 bits", (1 << 40, 1 << 40), (1, 1), 4, 3, 0),
        ("a negative stride", (4,), (-1,), 4, 3, 0),
        ("300 dimensions", (1,) * 300, (1,) * 300, 1, 3, 0),
    ]:
        data = tensor_pickle(shape, stride, numel)
        content = build_zip(members(data, {"0": bytes(4 * numel)}))
        yield write(f"data.pkl: {name}", content, code, values=values, init=values)
    weight = torch.zeros(1).expand(2**22, 2**20)
    data, stored = from_torch({"w": weight})
    yield write(
        "a real torch.save of a 16 TB expand()", build_zip(members(data, stored)), 0, values=3, init=3
    )


def _tensor_members() -> list[Member]:
    data, storages = from_torch({"w": torch.arange(8.0), "b": torch.ones(2)})
    return members(data, storages)


def broken_items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "zip")
    good = _tensor_members()
    whole = build_zip(good)
    for cut in sorted(
        {
            1,
            4,
            22,
            30,
            64,
            len(whole) // 3,
            len(whole) // 2,
            len(whole) - 100,
            len(whole) - 22,
            len(whole) - 1,
        }
    ):
        yield write(f"cut to {cut} of {len(whole)} bytes", whole[:cut], 3)
    evil = wrap(route_body("GLOBAL", f"touch {canary}", 2), 2)
    benign = good[0]
    yield write(
        "two data.pkl, the first malicious", build_zip([Member(benign.name, evil), *good]), 4, "two records"
    )
    yield write(
        "two data.pkl, the second malicious", build_zip([*good, Member(benign.name, evil)]), 4, "two records"
    )
    yield write(
        "two data.pkl, both benign", build_zip([*good, Member(benign.name, benign.data)]), 3, "two records"
    )
    yield write(
        "two storage records data/0",
        build_zip([*good, Member(f"{ROOT}/data/0", bytes(32))]),
        3,
        "two records",
    )
    renamed = [Member(benign.name, evil, local_name=f"{ROOT}/evil.pkl"), *good[1:]]
    yield write("data.pkl's local header names another file", build_zip(renamed), 4, "local header")
    sized = [Member(benign.name, benign.data, local_sizes=(5, 5)), *good[1:]]
    yield write("local sizes differ from the directory", build_zip(sized), 3, "other sizes")
    method = [Member(benign.name, benign.data, local_method=DEFLATED), *good[1:]]
    yield write("local compression differs from the directory", build_zip(method), 3, "another compression")
    twins = [*good[:3], Member(good[3].name, good[3].data, header_of=2), *good[4:]]
    yield write("two records over one local header", build_zip(twins), 3)
    nul = [Member(benign.name, evil, raw_name=f"{ROOT}/data.pkl\0.txt".encode()), *good[1:]]
    yield write("a NUL byte in data.pkl's name", build_zip(nul), 4)
    yield write(
        "data.pkl encrypted",
        build_zip([Member(benign.name, benign.data, flags=1), *good[1:]]),
        3,
        "encrypted",
    )
    for method_code in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA, 99):
        packed = [Member(benign.name, benign.data, method=method_code, packed=benign.data), *good[1:]]
        yield write(f"data.pkl compressed with method {method_code}", build_zip(packed), 3, "method")
    yield write("prepended bytes", build_zip(good, Layout(before=b"MZ" + bytes(62))), 3)
    yield write("bytes after the end record", build_zip(good, Layout(after=b"\0" * 40)), 3, "follow")
    yield write("a second zip appended", whole + whole, 3)
    yield write("the end record counts other records", build_zip(good, Layout(entries=3)), 3)
    yield write(
        "the directory offset points outside the file", build_zip(good, Layout(directory_offset=10**9)), 3
    )
    yield write("the directory size is wrong", build_zip(good, Layout(directory_size=10)), 3)
    outside = [*good[:-1], Member(good[-1].name, good[-1].data, header_of=None)]
    content = bytearray(build_zip(outside))
    entry = content.rfind(b"PK\x01\x02")
    struct.pack_into("<L", content, entry + 42, 10**8)
    yield write("a record's local header outside the file", bytes(content), 3, "outside the file")
    locator = whole[:-22] + struct.pack("<4sLQL", b"PK\x06\x07", 0, 10**12, 1) + whole[-22:]
    yield write("a zip64 locator pointing outside the file", locator, 3)
    yield write(
        "no version record",
        build_zip(members(benign.data, {"0": bytes(32), "1": bytes(8)}, version=None)),
        3,
        "version",
    )
    yield write("version 'abc'", build_zip(members(benign.data, version=b"abc")), 3, "version")
    yield write("the first record in no folder", build_zip([Member("loose", b"x"), *good]), 3, "no folder")
    yield write(
        "data.pkl under another folder",
        build_zip([good[1], Member("other/data.pkl", benign.data), *good[2:]]),
        3,
        "no archive/data.pkl",
    )
    yield write(
        "a TorchScript archive (constants.pkl)",
        build_zip([*good, Member(f"{ROOT}/constants.pkl", wrap(b"N", 2))]),
        3,
        "TorchScript",
    )
    yield write(
        "byteorder 'little\\n'", build_zip(members(benign.data, byteorder=b"little\n")), 3, "byteorder"
    )
    yield write("byteorder not UTF-8", build_zip(members(benign.data, byteorder=b"\xff\xfe")), 3, "byteorder")
    yield write("a storage record missing", build_zip([good[0], good[1], *good[3:]]), 3, "missing")
    yield write(
        "a storage record too long",
        build_zip([*good[:2], Member(good[2].name, good[2].data + bytes(4)), *good[3:]]),
        3,
        "holds",
    )
    yield write(
        "a storage record too short",
        build_zip([*good[:2], Member(good[2].name, good[2].data[:4]), *good[3:]]),
        3,
        "holds",
    )
    flipped = bytearray(whole)
    flipped[whole.index(good[2].data) + 1] ^= 0xFF
    yield write("a flipped bit in tensor data", bytes(flipped), 0, check_fails=True)
    yield write(
        "version 999", build_zip([*good[:-1], Member(f"{ROOT}/version", b"999")]), 0, check_fails=True
    )
    tiny = build_zip([Member(f"{ROOT}/data.pkl", b"N.")])
    tiny = tiny[:-22] + struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 1) + tiny[-22:]
    yield write("a zip64 locator in a file too small for its record", tiny, 3)


def valid_items(folder: Path) -> Iterator[Item]:
    write = Writer(folder, "valid")
    nested = {
        "model": {"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.float64)},
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0)}},
            "param_groups": [{"lr": 0.1, "params": [0]}],
        },
        "extras": {
            "set": {1, 2},
            "bytes": b"\x00\x01",
            "bytearray": bytearray(b"ab"),
            "complex": 1 + 2j,
            "slice": slice(1, 5, 2),
            "frozenset": frozenset("ab"),
            "counter": collections.Counter("aab"),
            "tuple": (1, "a"),
            "none": None,
            "big": 2**100,
            "float": float("inf"),
        },
    }
    for protocol in (2, 3, 4, 5):
        data, storages = from_torch(nested, pickle_protocol=protocol)
        yield write(f"a training checkpoint, protocol {protocol}", build_zip(members(data, storages)), 0)
    base = torch.arange(12.0)
    views = {
        "base": base,
        "part": base[2:6],
        "t": base.view(3, 4).t(),
        "tied": base,
        "empty": torch.empty(0, 3),
        "scalar": torch.tensor(7),
        "param": torch.nn.Parameter(torch.ones(2)),
        "int8": torch.arange(4, dtype=torch.int8),
    }
    data, storages = from_torch(views)
    yield write("views, ties, a parameter, empty and 0-d tensors", build_zip(members(data, storages)), 0)
    good = _tensor_members()
    yield write("a zip comment", build_zip(good, Layout(comment=b"written by hand")), 0)
    yield write(
        "the directory in reverse order", build_zip(good, Layout(order=list(range(len(good)))[::-1])), 0
    )
    packed = [Member(m.name, m.data, DEFLATED) for m in good]
    yield write("every record deflated", build_zip(packed), 0, values=3, init=2)
    data, storages = from_torch({"w": torch.ones(4)})
    # Big-endian values are read (swapped); they are not written in place.
    yield write("byteorder big", build_zip(members(data, storages, byteorder=b"big")), 0, init=3)
    for name, obj in _real_objects():
        raw = io.BytesIO()
        torch.save(obj, raw)
        yield write(
            name,
            raw.getvalue(),
            0,
            init=2 if "sparse" in name or "quantized" in name else 0,
        )


def _real_objects() -> Iterator[tuple[str, object]]:
    """Objects real checkpoints hold, saved by torch.save as it is."""
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    yield "a module's state_dict (with _metadata)", net.state_dict()
    optimizer = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    yield (
        "a training checkpoint with Adam state",
        {"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3},
    )
    yield (
        "every dtype",
        {
            str(dtype): torch.zeros(2, dtype=dtype)
            for dtype in (
                torch.float16,
                torch.bfloat16,
                torch.float64,
                torch.complex64,
                torch.int16,
                torch.int32,
                torch.uint8,
                torch.bool,
                torch.float8_e4m3fn,
            )
        },
    )
    yield (
        "tensors in nested lists and tuples",
        {"layers": [[torch.ones(1), (torch.zeros(2), {"x": torch.ones(3)})]]},
    )
    yield "a tensor that requires grad", {"w": torch.ones(2, requires_grad=True)}
    yield "unicode and dotted names", {"ünï.cödé": torch.ones(1), "a.b.c": torch.ones(1), "": torch.ones(1)}
    yield "a sparse tensor (read through torch)", {"s": torch.eye(3).to_sparse(), "w": torch.ones(2)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated; files still hold them
        quantized = torch.quantize_per_tensor(torch.ones(4), 0.1, 0, torch.qint8)
    yield "a quantized tensor (read through torch)", {"q": quantized}
    yield "a plain torch.save", {"w": torch.ones(3)}


def items(folder: Path, canary: str) -> Iterator[Item]:
    yield from code_items(folder, canary)
    yield from amplification_items(folder)
    yield from broken_items(folder, canary)
    yield from valid_items(folder)
