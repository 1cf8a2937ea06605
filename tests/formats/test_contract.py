"""The contract every registered format passes, by being registered.

Each format in :data:`paramctl.formats.REGISTRY` has an entry in :data:`OWN_LIBRARIES` here:
how its own library writes a sample and reads a file back. Registering a format without one
fails :func:`test_every_registered_format_has_its_own_library_here`.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from paramctl.atomic import atomic_files
from paramctl.formats import REGISTRY, format_of, read_checkpoint
from paramctl.inspect.check import check_checkpoint
from paramctl.values import ValueReader


@dataclass(frozen=True)
class OwnLibrary:
    """A format's own writer and reader, the reference paramctl is held to."""

    write: Callable[[dict[str, torch.Tensor], Path], None]
    read: Callable[[Path], dict[str, torch.Tensor]]


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, weights_only=True))


def _safe_load(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as file:
        return {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118


def _save_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    # save_file refuses shared tensors; a tie is stored once and recorded as save_model does.
    kept = {name: t for name, t in state.items() if name != "head.weight"}
    save_file(kept, path, metadata={"head.weight": "embed.weight"})


def _save_sharded(state: dict[str, torch.Tensor], path: Path) -> None:
    from huggingface_hub import save_torch_state_dict

    path.mkdir()
    # Small shards, so that the sample spans several.
    save_torch_state_dict(state, path, max_shard_size=200)


def _load_sharded(path: Path) -> dict[str, torch.Tensor]:
    import json

    (index,) = path.glob("*.index.json")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        state.update(_safe_load(path / shard))
    return state


def _dcp_save(state: dict[str, torch.Tensor], path: Path) -> None:
    import warnings

    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save(state, checkpoint_id=path)


def _dcp_load(path: Path) -> dict[str, torch.Tensor]:
    import warnings

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    metadata = dcp.FileSystemReader(path).read_metadata()
    state = {
        name: torch.empty(tuple(item.size), dtype=item.properties.dtype)
        for name, item in metadata.state_dict_metadata.items()
        if isinstance(item, TensorStorageMetadata)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(state, checkpoint_id=path)
    return state


OWN_LIBRARIES: dict[str, OwnLibrary] = {
    "torch-zip": OwnLibrary(lambda state, path: torch.save(state, path), _torch_load),
    "torch-legacy": OwnLibrary(
        lambda state, path: torch.save(state, path, _use_new_zipfile_serialization=False), _torch_load
    ),
    "safetensors": OwnLibrary(_save_safetensors, _safe_load),
    "hf-sharded": OwnLibrary(_save_sharded, _load_sharded),
    "dcp": OwnLibrary(_dcp_save, _dcp_load),
}

FORMATS = [pytest.param(fmt, id=fmt.name) for fmt in REGISTRY]


def sample_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    embed = torch.randn(8, 4, generator=generator)
    return {
        "embed.weight": embed,
        "layer.weight": torch.randn(4, 4, generator=generator),
        "layer.bias": torch.ones(4),
        "norm.weight": torch.randn(4, generator=generator).to(torch.bfloat16),
        "norm.steps": torch.tensor(7, dtype=torch.int64),
        "head.weight": embed,
    }


@pytest.fixture
def sample(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    fmt = request.getfixturevalue("fmt")
    path = tmp_path / f"sample{fmt.suffixes[0] if fmt.suffixes else ''}"
    OWN_LIBRARIES[fmt.name].write(sample_state(), path)
    return path


def expected(reference: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """The reference value of ``name``; a tie its own library stores once reads as its partner."""
    return reference[name] if name in reference else reference["embed.weight"]


def test_every_registered_format_has_its_own_library_here():
    assert sorted(OWN_LIBRARIES) == sorted(fmt.name for fmt in REGISTRY)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_format_is_detected_by_its_bytes(fmt, sample):
    assert read_checkpoint(sample).format == fmt.name
    # A checkpoint of several files is claimed by its layout, one file by its bytes.
    assert fmt.claims(sample) if sample.is_dir() else fmt.sniff(sample.read_bytes()[:64])


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_equals_what_its_own_library_reports(fmt, sample):
    reference = OWN_LIBRARIES[fmt.name].read(sample)
    checkpoint = read_checkpoint(sample)
    listed = {e.name: (e.shape, e.dtype) for e in checkpoint.entries}
    for name, tensor in reference.items():
        assert listed[name] == (tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))
    assert set(reference) <= set(listed)


@pytest.mark.parametrize("fmt", FORMATS)
def test_values_equal_what_its_own_library_reads(fmt, sample):
    reference = OWN_LIBRARIES[fmt.name].read(sample)
    checkpoint = read_checkpoint(sample)
    with ValueReader(checkpoint) as values:
        for entry in checkpoint.entries:
            assert torch.equal(values.tensor(entry), expected(reference, entry.name)), entry.name


@pytest.mark.parametrize("fmt", FORMATS)
def test_ties_are_kept(fmt, sample):
    if not fmt.holds.ties:
        pytest.skip(f"{fmt.name} cannot hold ties")
    checkpoint = read_checkpoint(sample)
    embed, head = checkpoint.entry("embed.weight"), checkpoint.entry("head.weight")
    assert embed.storage_key == head.storage_key


@contextlib.contextmanager
def edited_copy(checkpoint, target, out_path: Path) -> Iterator[BinaryIO]:
    """The file to write an edited copy of the one holding ``target`` into: ``out_path``,
    or for a checkpoint of several files, its file in a copy of the set at ``out_path``."""
    files = format_of(checkpoint).file_set(checkpoint)
    if files is None:
        with open(out_path, "w+b") as out:
            yield out
        return
    shutil.copytree(files.root, out_path)
    name = os.path.relpath(checkpoint.storage_of(target).file, files.root)
    with atomic_files(out_path, last=files.index) as written:
        yield written.open(name)


def _raw(checkpoint, entry) -> bytes:
    storage = checkpoint.storage_of(entry)
    start, end = entry.byte_span
    with open(storage.file, "rb") as file:
        file.seek(storage.offset + start)
        return file.read(end - start)


@pytest.mark.parametrize("fmt", FORMATS)
def test_editing_one_tensor_leaves_every_other_byte_identical(fmt, sample, tmp_path):
    checkpoint = read_checkpoint(sample)
    target = checkpoint.entry("layer.weight")
    out_path = tmp_path / f"edited{sample.suffix}"
    with edited_copy(checkpoint, target, out_path) as out:
        editor = format_of(checkpoint).editor(
            checkpoint, out, provenance={"command": "test"}, file=checkpoint.storage_of(target).file
        )
        start, end = target.byte_span
        with editor.span(target.storage_key, start, end, read=False) as raw:
            raw.view(torch.float32).fill_(0.5)
        editor.finish()
    edited = read_checkpoint(out_path)
    assert edited.format == fmt.name and edited.names() == checkpoint.names()
    for entry in checkpoint.entries:
        if entry.storage_key != target.storage_key:
            assert _raw(edited, edited.entry(entry.name)) == _raw(checkpoint, entry), entry.name
    assert [(x.name, x.value) for x in edited.extras()] == [(x.name, x.value) for x in checkpoint.extras()]
    unchanged = {k: v for k, v in edited.metadata.items() if k != "paramctl"}
    assert unchanged == {k: v for k, v in checkpoint.metadata.items() if k != "paramctl"}
    reread = OWN_LIBRARIES[fmt.name].read(out_path)
    assert torch.equal(reread["layer.weight"], torch.full((4, 4), 0.5))
    assert torch.equal(reread["embed.weight"], sample_state()["embed.weight"])
    assert check_checkpoint(out_path).passed()


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_catches_one_flipped_data_byte(fmt, sample):
    checkpoint = read_checkpoint(sample)
    assert check_checkpoint(sample).passed()
    bias = checkpoint.entry("layer.bias")  # ones: 00 00 80 3f; 3f -> 7f makes +Inf
    storage = checkpoint.storage_of(bias)
    data = bytearray(storage.file.read_bytes())
    position = storage.offset + bias.byte_span[0] + 3
    assert data[position] == 0x3F
    data[position] = 0x7F
    storage.file.write_bytes(bytes(data))
    result = check_checkpoint(sample)
    assert not result.passed()
    assert any(f.severity == "error" for f in result.findings)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("target", [pytest.param(t, id=f"to-{t.name}") for t in REGISTRY if t.writes_new])
def test_conversion_to_every_writable_format_round_trips(fmt, target, sample, tmp_path):
    if target.name == fmt.name:
        pytest.skip("the same format is an edit, not a conversion")
    checkpoint = read_checkpoint(sample)
    out_path = tmp_path / f"converted{target.suffixes[0]}"
    with open(out_path, "w+b") as out:
        target.write(checkpoint, out)
    converted = read_checkpoint(out_path)
    assert converted.format == target.name
    reference = OWN_LIBRARIES[fmt.name].read(sample)
    reread = OWN_LIBRARIES[target.name].read(out_path)
    for name, tensor in reread.items():
        assert torch.equal(tensor, expected(reference, name)), name
    assert set(converted.names()) == set(checkpoint.names())
    if target.holds.ties and fmt.holds.ties:
        assert converted.entry("embed.weight").storage_key == converted.entry("head.weight").storage_key
    assert math.isclose(float(reread["layer.bias"].sum()), 4.0)
