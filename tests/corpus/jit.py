"""TorchScript (``torch.jit.save``) and torch.export (``.pt2``) archives held to the same
one-reading rules as torch zips: payloads in their pickles, duplicate records, hostile
JSON in an export's tensor configs, archives cut short."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from corpus import Item
from corpus.pickles import route_body, wrap
from corpus.zips import Writer
from corpus.ziptools import Member, build_zip


def records(content: bytes) -> list[Member]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return [Member(info.filename, archive.read(info)) for info in archive.infolist()]


def scripted() -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), out)
    return out.getvalue()


def exported() -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(torch.nn.Linear(2, 3), (torch.ones(1, 2),))
        torch.export.save(program, out)
    return out.getvalue()


def replaced(members: list[Member], suffix: str, data: bytes) -> list[Member]:
    return [Member(m.name, data) if m.name.endswith(suffix) else m for m in members]


def items(folder: Path, canary: str) -> Iterator[Item]:
    write = Writer(folder, "jit", ".pt")
    valid = Writer(folder, "valid", ".pt", prefix="valid-jit")
    script = scripted()
    yield valid("a TorchScript archive", script, 0)
    members = records(script)
    evil = wrap(route_body("GLOBAL", f"touch {canary}", 2), 2)
    data = next(i for i, m in enumerate(members) if m.name.endswith("/data.pkl"))
    yield write("TorchScript data.pkl that runs code", build_zip(replaced(members, "/data.pkl", evil)), 4)
    yield write(
        "TorchScript constants.pkl that runs code", build_zip(replaced(members, "/constants.pkl", evil)), 4
    )
    twice = [*members[: data + 1], Member(members[data].name, evil), *members[data + 1 :]]
    yield write("TorchScript with two data.pkl, the second malicious", build_zip(twice), 4, "two records")
    for cut in (100, len(script) // 2, len(script) - 10):
        yield write(f"TorchScript cut to {cut} of {len(script)} bytes", script[:cut], 3)

    write = Writer(folder, "jit", ".pt2")
    valid = Writer(folder, "valid", ".pt2", prefix="valid-jit")
    program = exported()
    yield valid("a torch.export archive", program, 0)
    members = records(program)
    config = next(m for m in members if m.name.endswith("_weights_config.json"))
    bad_configs = [
        ("nested 100,000 deep", b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too"),
        ("of ten million values", b'{"config": {}, "x": [' + b"0," * 10_000_000 + b"0]}", "too large"),
        ("that is not JSON", b'{"config": ', "JSON"),
        ("with NaN", b'{"config": {}, "x": NaN}', "not JSON"),
    ]
    for name, raw, message in bad_configs:
        yield write(
            f"a torch.export config {name}", build_zip(replaced(members, config.name, raw)), 3, message
        )
    document = json.loads(config.data)
    first = next(iter(document["config"].values()))
    first["tensor_meta"]["sizes"] = [{"as_int": True}, {"as_int": -3}]
    yield write(
        "a torch.export size of true",
        build_zip(replaced(members, config.name, json.dumps(document).encode())),
        3,
        "sizes",
    )
    yield write(
        "a torch.export archive with a record twice", build_zip([*members, members[-1]]), 3, "two records"
    )
    yield write(f"a torch.export archive cut to {len(program) // 2} bytes", program[: len(program) // 2], 3)
