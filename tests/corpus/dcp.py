"""torch.distributed.checkpoint directories whose ``.metadata`` runs code by every route a
pickle has, amplifies, or lies (wrong types, items outside the directory, overlapping
chunks), rank files cut short, and items (each a ``torch.save`` zip inside a rank file)
that readers could read two ways, each refused as the same zip is as a ``.pt`` file; each
a directory of its own."""

from __future__ import annotations

import dataclasses
import io
import pickle
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corpus import Item
from corpus.pickles import ROUTES, amplification, harmless_looking, route_body, wrap
from corpus.zips import helper_files
from corpus.ziptools import Layout, Member, build_zip

METADATA = ".metadata"


def real_checkpoint(directory: Path) -> None:
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(
            {"w": torch.arange(8.0).reshape(2, 4), "b": torch.ones(4), "step": 3}, checkpoint_id=directory
        )


class _Writer:
    def __init__(self, folder: Path, template: Path) -> None:
        self.folder, self.template, self.count = folder, template, 0

    def __call__(
        self, name: str, kind: str, metadata: bytes | None, code: int, message: str = "", **expect: Any
    ) -> Item:
        self.count += 1
        directory = self.folder / f"dcp-{self.count:03d}"
        shutil.copytree(self.template, directory)
        if metadata is not None:
            (directory / METADATA).write_bytes(metadata)
        return Item(name, kind, directory, code, message, output_suffix="", **expect)


def _changed(template: Path, change: Callable[[Any], None]) -> bytes:
    """The real ``.metadata`` (read here with pickle: the corpus wrote it) changed by ``change``."""
    metadata = pickle.loads((template / METADATA).read_bytes())
    change(metadata)
    return pickle.dumps(metadata)


def items(folder: Path, canary: str) -> Iterator[Item]:
    template = folder / "dcp-template"
    real_checkpoint(template)
    write = _Writer(folder, template)
    yield write("a DCP directory of one process", "valid", None, 0)
    command = f"touch {canary}"
    for route in ROUTES:
        for protocol in route.protocols[-1:]:
            body = wrap(route_body(route.name, command, protocol), protocol)
            yield write(f".metadata, {route.name}, protocol {protocol}", "code", body, 4)
    for name, (protocol, body) in list(harmless_looking(canary, helper_files(folder, canary)).items())[::3]:
        yield write(f".metadata calls {name}", "globals", wrap(body, protocol), 4, name.rsplit(".", 1)[-1])
    for name, data in amplification().items():
        # Fan-out and nesting build a dict, which is no Metadata; the others stop at a limit.
        limited = any(word in name for word in ("LONG_BINPUT", "200 times"))
        if limited or any(word in name for word in ("fan-out", "nested")):
            message = "too large or too complex" if limited else "not a torch.distributed.checkpoint"
            yield write(f".metadata: {name}", "amplification", data, 3, message)
    yield from _lies(write, template)
    yield from _items(write, template, canary)


def _lies(write: _Writer, template: Path) -> Iterator[Item]:
    def storage(change: Callable[[Any, Any], Any]) -> Callable[[Any], None]:
        def apply(metadata: Any) -> None:
            metadata.storage_data = {key: change(key, info) for key, info in metadata.storage_data.items()}

        return apply

    def chunk(change: Callable[[Any], None]) -> Callable[[Any], None]:
        def apply(metadata: Any) -> None:
            change(metadata.state_dict_metadata["w"].chunks[0])

        return apply

    original = (template / METADATA).read_bytes()
    lies: list[tuple[str, Callable[[Any], None], int, str]] = [
        (
            "an item outside the directory",
            storage(lambda k, i: dataclasses.replace(i, relative_path="../x")),
            4,
            "outside",
        ),
        ("an item past its rank file", storage(lambda k, i: dataclasses.replace(i, offset=1 << 40)), 3, ""),
        ("an item's offset as text", storage(lambda k, i: dataclasses.replace(i, offset="0")), 3, "as str"),
        ("chunk sizes as text", chunk(lambda c: object.__setattr__(c, "sizes", ("2", "4"))), 3, "sizes"),
        (
            "a negative chunk size",
            chunk(lambda c: object.__setattr__(c, "sizes", torch.Size([-2, 4]))),
            3,
            "",
        ),
        (
            "a chunk outside its tensor",
            chunk(lambda c: object.__setattr__(c, "offsets", torch.Size([9, 0]))),
            3,
            "",
        ),
        ("items as a list", lambda m: setattr(m, "state_dict_metadata", [1]), 3, "as list"),
        ("storage keys that are text", lambda m: setattr(m, "storage_data", {"w": 1}), 3, "storage_data"),
        (
            "an unknown dtype",
            lambda m: setattr(m.state_dict_metadata["w"].properties, "dtype", "float99"),
            3,
            "",
        ),
    ]
    for name, change, code, message in lies:
        yield write(f".metadata: {name}", "dcp", _changed(template, change), code, message)
    yield write(".metadata cut short", "dcp", original[: len(original) // 2], 3)
    yield write(".metadata BUILDs twice", "dcp", original[:-1] + b"}b.", 3)

    def overlapping(metadata: Any) -> None:
        from torch.distributed.checkpoint.metadata import ChunkStorageMetadata

        item = metadata.state_dict_metadata["b"]
        half = ChunkStorageMetadata(torch.Size([0]), torch.Size([2]))
        item.chunks = [half, ChunkStorageMetadata(torch.Size([0]), torch.Size([2]))]
        item.size = torch.Size([4])

    yield write(".metadata: two chunks over the same elements", "dcp", _changed(template, overlapping), 3)
    cut = write("a rank file cut short", "dcp", None, 3)
    for rank in cut.path.glob("*.distcp"):
        rank.write_bytes(rank.read_bytes()[:100])
    yield cut


def _item_records(template: Path, fqn: str) -> list[Member]:
    """The records of the item holding ``fqn`` (a tensor of one chunk), as torch wrote them."""
    metadata = pickle.loads((template / METADATA).read_bytes())
    (info,) = [info for index, info in metadata.storage_data.items() if index.fqn == fqn]
    data = (template / info.relative_path).read_bytes()[info.offset : info.offset + info.length]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [Member(record.filename, archive.read(record)) for record in archive.infolist()]


def replace_item(directory: Path, fqn: str, archive: bytes) -> None:
    """Put ``archive`` in place of the item holding ``fqn`` (a tensor of one chunk): it is
    appended to the item's rank file, and ``.metadata`` points at it."""
    metadata = pickle.loads((directory / METADATA).read_bytes())
    (index,) = [index for index in metadata.storage_data if index.fqn == fqn]
    info = metadata.storage_data[index]
    rank = directory / info.relative_path
    end = rank.stat().st_size
    with open(rank, "ab") as file:
        file.write(archive)
    metadata.storage_data[index] = dataclasses.replace(info, offset=end, length=len(archive))
    (directory / METADATA).write_bytes(pickle.dumps(metadata))


def item_archives(template: Path, canary: str) -> Iterator[tuple[str, bytes, int, str]]:
    """Archives to put in place of tensor b's item: (what it is, its bytes, paramctl list's
    exit code, a fragment of its error). Zips that readers could read two ways, or that
    torch.load refuses, are refused as a .pt file of the same bytes is."""
    records = _item_records(template, "b")
    pickled, *others = records
    evil = Member(pickled.name, wrap(route_body("GLOBAL", f"touch {canary}", 2), 2))
    renamed = Member(pickled.name, pickled.data, local_name="archive/other.pkl")
    resized = Member(pickled.name, pickled.data, local_sizes=(5, 5))
    twins = [*records[:2], Member(records[2].name, records[2].data, header_of=1), *records[3:]]
    nul = Member(pickled.name, pickled.data, raw_name=b"archive/data.pkl\0.txt")
    encrypted = Member(pickled.name, pickled.data, flags=1)
    unversioned = [record for record in records if not record.name.endswith("version")]
    undecodable = Member(pickled.name, pickled.data, raw_name=b"archive/\xff.pkl", flags=0x800)
    cases: list[tuple[str, list[Member], Layout | None, int, str]] = [
        ("an item written by another zip writer (no data descriptors, no padding)", records, None, 0, ""),
        ("an item with two records named data.pkl", [*records, pickled], None, 3, "two records"),
        ("an item whose second data.pkl runs code", [*records, evil], None, 4, "system"),
        ("an item whose local header names another record", [renamed, *others], None, 3, "local header"),
        ("an item whose local header gives other sizes", [resized, *others], None, 3, "other sizes"),
        ("an item with two records over one local header", twins, None, 3, "local header"),
        ("an item whose data.pkl's name holds a NUL byte", [nul, *others], None, 3, "NUL"),
        ("an item whose data.pkl is encrypted", [encrypted, *others], None, 3, "encrypted"),
        ("an item without a version record", unversioned, None, 3, "version"),
        ("an item with bytes after its end record", records, Layout(after=bytes(40)), 3, "follow"),
        ("an item with bytes before its first record", records, Layout(before=bytes(64)), 3, "directory"),
        ("an item whose end record counts other records", records, Layout(entries=3), 3, "counts"),
        ("an item whose name is flagged UTF-8 and is not", [*records, undecodable], None, 3, "damaged"),
    ]
    for name, members, layout, code, message in cases:
        yield name, build_zip(members, layout), code, message
    damaged = bytearray(build_zip(records))
    directory = damaged.rfind(b"PK\x01\x02")
    damaged[directory : directory + 4] = b"PK\x01\x09"
    yield "an item whose directory is damaged", bytes(damaged), 3, "damaged"


def big_endian(template: Path, fqn: str) -> bytes:
    """The item of float32 tensor ``fqn`` as a big-endian machine's torch.save writes it."""
    records = []
    for record in _item_records(template, fqn):
        if record.name.endswith("/byteorder"):
            record = Member(record.name, b"big")
        elif "/data/" in record.name:
            record = Member(record.name, np.frombuffer(record.data, "<f4").astype(">f4").tobytes())
        records.append(record)
    return build_zip(records)


def _items(write: _Writer, template: Path, canary: str) -> Iterator[Item]:
    for name, archive, code, message in item_archives(template, canary):
        item = write(name, "dcp", None, code, message)
        replace_item(item.path, "b", archive)
        yield item
    # Read in their byte order; written back only as a big-endian .pt file is (not in place).
    both = write("every item saved on a big-endian machine", "valid", None, 0, init=3)
    for fqn in ("w", "b"):
        replace_item(both.path, fqn, big_endian(template, fqn))
    yield both
    mixed = write("items saved in both byte orders", "dcp", None, 3, "both byte orders")
    replace_item(mixed.path, "b", big_endian(template, "b"))
    yield mixed
