"""torch.distributed.checkpoint directories whose ``.metadata`` runs code by every route a
pickle has, amplifies, or lies (wrong types, items outside the directory, overlapping
chunks), and rank files cut short; each a directory of its own."""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from corpus import Item
from corpus.pickles import ROUTES, amplification, harmless_looking, route_body, wrap
from corpus.zips import helper_files

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
