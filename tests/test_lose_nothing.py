"""The rule behind every write: whatever was not selected comes out byte-identical.

Hypothesis builds random checkpoints (dtypes, shapes, ties, views into a shared storage) in
each format and picks random selections; after `init`, every tensor outside the selection
(and not sharing bytes with it) is bit-for-bit what it was, and so is every zip record and
safetensors byte that no selected tensor owns.
"""

from __future__ import annotations

import struct
import tempfile
import zipfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from paramctl import Selection, read_checkpoint
from paramctl.change import Change, plan_change, reinit
from paramctl.checkpoint import model_view
from paramctl.schemes.catalog import parse_scheme
from paramctl.select import select

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@st.composite
def checkpoints(draw, allow_sharing: bool):
    count = draw(st.integers(2, 6))
    tensors: dict[str, torch.Tensor] = {}
    for index in range(count):
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
        dtype = draw(st.sampled_from(DTYPES))
        numel = int(torch.tensor(shape).prod()) if shape else 1
        tensors[f"layer{index}.w"] = (-7 - torch.arange(numel, dtype=torch.float64)).reshape(shape).to(dtype)
    if allow_sharing and draw(st.booleans()):
        tied = draw(st.sampled_from(sorted(tensors)))
        tensors["tied"] = tensors[tied]
    if allow_sharing and draw(st.booleans()):
        base = -3 - torch.arange(12.0)
        tensors["base"] = base
        tensors["view"] = base[2:8].view(2, 3).t()
    selected = draw(st.sets(st.sampled_from(sorted(tensors)), min_size=1))
    return tensors, frozenset(selected)


def run(path: Path, selected: frozenset[str], out: Path):
    checkpoint = read_checkpoint(path)
    view = model_view(checkpoint)
    targets = select(view.entries, Selection(names=selected))
    plan = plan_change(checkpoint, targets, Change(scheme=parse_scheme("normal")), context=view.entries)
    reinit(checkpoint, plan, out, seed=0)
    return checkpoint, plan


def bits(tensor: torch.Tensor) -> list[float]:
    return tensor.detach().to(torch.float64).flatten().tolist()


def check_values(checkpoint, plan, before: dict, after: dict):
    changed_spans = [(t.entry.storage_key, *t.entry.byte_span) for t in plan.tensors]
    for entry in checkpoint.entries:
        start, end = entry.byte_span
        touched = any(key == entry.storage_key and s < end and start < e for key, s, e in changed_spans)
        assert after[entry.name].dtype == before[entry.name].dtype
        assert after[entry.name].shape == before[entry.name].shape
        if touched:
            assert bits(after[entry.name]) != bits(before[entry.name]), entry.name
        else:
            assert bits(after[entry.name]) == bits(before[entry.name]), entry.name
    return {key for key, _, _ in changed_spans}


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(checkpoints(allow_sharing=True), st.booleans())
def test_torch_files_keep_every_unselected_byte(case, legacy):
    tensors, selected = case
    with tempfile.TemporaryDirectory() as directory:
        path, out = Path(directory) / "in.pt", Path(directory) / "out.pt"
        torch.save(tensors, path, _use_new_zipfile_serialization=not legacy)
        checkpoint, plan = run(path, selected, out)
        after = torch.load(out, weights_only=True)
        changed = check_values(checkpoint, plan, torch.load(path, weights_only=True), after)
        if "tied" in tensors:
            assert after["tied"].untyped_storage().data_ptr() in {
                after[name].untyped_storage().data_ptr() for name in after if name != "tied"
            }
        if legacy:
            assert path.stat().st_size == out.stat().st_size
            return
        with zipfile.ZipFile(path) as old, zipfile.ZipFile(out) as new:
            root = old.namelist()[0].split("/")[0]
            assert [i.filename for i in new.infolist()] == [*old.namelist(), f"{root}/paramctl/1.json"]
            for info in old.infolist():
                rewritten = info.filename in {f"{root}/data/{key}" for key in changed}
                same = old.read(info) == new.read(info.filename)
                assert same != rewritten or old.read(info) == b"", info.filename
                assert new.getinfo(info.filename).header_offset == info.header_offset
        torch.load(out, weights_only=True, mmap=True)


@SETTINGS
@given(checkpoints(allow_sharing=False))
def test_safetensors_files_keep_every_unselected_byte(case):
    tensors, selected = case
    with tempfile.TemporaryDirectory() as directory:
        path, out = Path(directory) / "in.safetensors", Path(directory) / "out.safetensors"
        save_file(tensors, path, metadata={"format": "pt", "note": "kept"})
        checkpoint, plan = run(path, selected, out)
        check_values(checkpoint, plan, load_file(path), load_file(out))
        old, new = path.read_bytes(), out.read_bytes()
        old_start = 8 + struct.unpack("<Q", old[:8])[0]
        new_start = 8 + struct.unpack("<Q", new[:8])[0]
        changed = bytearray(len(old) - old_start)
        for tensor in plan.tensors:
            storage = checkpoint.storage_of(tensor.entry)
            begin = storage.offset - old_start
            changed[begin : begin + storage.nbytes] = b"\1" * storage.nbytes
        for index, flag in enumerate(changed):
            if not flag:
                assert old[old_start + index] == new[new_start + index]
        metadata = read_checkpoint(out).metadata
        assert metadata["format"] == "pt" and metadata["note"] == "kept" and "paramctl" in metadata
