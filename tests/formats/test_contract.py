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
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from paramctl.atomic import atomic_files
from paramctl.errors import UsageError
from paramctl.formats import REGISTRY, format_of, read_checkpoint
from paramctl.inspect.check import check_checkpoint
from paramctl.values import ValueReader

MXNET_TOOL = Path(__file__).parent.parent / "fixtures" / "mxnet" / "mxnet_tool.py"
MXNET_PYTHON = os.environ.get("PARAMCTL_MXNET_PYTHON", "")
NO_MXNET = os.environ.get("PARAMCTL_MXNET_UNAVAILABLE") or (
    "MXNet's own writer and reader need an interpreter with mxnet 1.9.1: set PARAMCTL_MXNET_PYTHON "
    "(.ci/run makes one)"
)


@dataclass(frozen=True)
class OwnLibrary:
    """A format's own writer and reader, the reference paramctl is held to."""

    write: Callable[[dict[str, torch.Tensor], Path], None]
    read: Callable[[Path], dict[str, torch.Tensor]]


def _tensors(node: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a nested dict by dotted name (a module tree converted keeps its shape)."""
    if isinstance(node, torch.Tensor):
        return {prefix: node}
    if not isinstance(node, dict):
        return {}
    found: dict[str, torch.Tensor] = {}
    for key, value in node.items():
        found.update(_tensors(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    return _tensors(torch.load(path, weights_only=True))


def _safe_load(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as file:
        return {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118


def _save_safetensors(state: dict[str, torch.Tensor], path: Path) -> None:
    # save_file refuses shared tensors; a tie is stored once and recorded as save_model does.
    kept = {name: t for name, t in state.items() if name != "head.weight"}
    save_file(kept, path, metadata={"head.weight": "embed.weight"})


class Holder(torch.nn.Module):
    """A module whose parameters and buffers are a state dict's tensors (ties kept)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def module_of(state: dict[str, torch.Tensor]) -> Holder:
    root = Holder()
    parameters: dict[int, torch.nn.Parameter] = {}
    for name, tensor in state.items():
        *parents, leaf = name.split(".")
        module: torch.nn.Module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if tensor.is_floating_point():
            module.register_parameter(leaf, parameters.setdefault(id(tensor), torch.nn.Parameter(tensor)))
        else:
            module.register_buffer(leaf, tensor)
    return root


def _jit_save(state: dict[str, torch.Tensor], path: Path) -> None:
    torch.jit.save(torch.jit.script(module_of(state)), path)


def _jit_load(path: Path) -> dict[str, torch.Tensor]:
    return {name: t.detach() for name, t in torch.jit.load(path).state_dict().items()}


def _export_save(state: dict[str, torch.Tensor], path: Path) -> None:
    torch.export.save(torch.export.export(module_of(state), (torch.zeros(1),)), path)


def _export_load(path: Path) -> dict[str, torch.Tensor]:
    program = torch.export.load(path)
    return {name: t.detach() for name, t in {**program.state_dict, **program.constants}.items()}


def _mxnet(*args: str) -> None:
    if not MXNET_PYTHON:
        pytest.skip(NO_MXNET)
    subprocess.run([MXNET_PYTHON, str(MXNET_TOOL), *args], check=True, capture_output=True)


_MXNET_WRITTEN: dict[bytes, bytes] = {}


def _mxnet_save(state: dict[str, torch.Tensor], path: Path) -> None:
    """MXNet's own npx.save of the arrays (each distinct state written by MXNet once a run:
    starting MXNet takes seconds)."""
    import numpy as np

    if not MXNET_PYTHON:
        pytest.skip(NO_MXNET)
    arrays = {name: tensor.numpy() for name, tensor in state.items()}
    key = b"".join(
        name.encode() + array.dtype.str.encode() + array.tobytes() for name, array in arrays.items()
    )
    if key not in _MXNET_WRITTEN:
        np.savez(path.with_suffix(".npz"), **arrays)
        _mxnet("save", str(path.with_suffix(".npz")), str(path))
        _MXNET_WRITTEN[key] = path.read_bytes()
    path.write_bytes(_MXNET_WRITTEN[key])


def _mxnet_load(path: Path) -> dict[str, torch.Tensor]:
    import numpy as np

    arrays = path.with_name(path.name + ".loaded.npz")
    _mxnet("load", str(path), str(arrays))
    with np.load(arrays) as loaded:
        return {name: torch.from_numpy(loaded[name].copy()) for name in loaded.files}


def _save_gguf(state: dict[str, torch.Tensor], path: Path) -> None:
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("contract sample")
    for name, tensor in state.items():
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16: GGUFWriter takes its bytes
            raw = tensor.contiguous().view(torch.int16).numpy().view(np.uint8)
            writer.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            writer.add_tensor(name, tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _gguf_load(path: Path) -> dict[str, torch.Tensor]:
    loaded = {}
    for tensor in gguf.GGUFReader(path).tensors:
        shape = tuple(reversed(tensor.shape.tolist()))
        if tensor.tensor_type == gguf.GGMLQuantizationType.BF16:
            loaded[tensor.name] = torch.from_numpy(tensor.data.copy()).view(torch.bfloat16).reshape(shape)
        else:
            loaded[tensor.name] = torch.from_numpy(tensor.data.copy()).reshape(shape)
    return loaded


def _npz_load(path: Path) -> dict[str, torch.Tensor]:
    with np.load(path) as archive:
        return {name: torch.from_numpy(archive[name]) for name in archive.files}


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
    "torchscript": OwnLibrary(_jit_save, _jit_load),
    "torch-export": OwnLibrary(_export_save, _export_load),
    "mxnet": OwnLibrary(_mxnet_save, _mxnet_load),
    "gguf": OwnLibrary(_save_gguf, _gguf_load),
    "npz": OwnLibrary(
        lambda state, path: np.savez(path, **{name: t.numpy() for name, t in state.items()}), _npz_load
    ),
    "npy": OwnLibrary(
        lambda state, path: np.save(path, next(iter(state.values())).numpy()),
        lambda path: {path.stem: torch.from_numpy(np.load(path))},
    ),
    "hf-sharded": OwnLibrary(_save_sharded, _load_sharded),
    "dcp": OwnLibrary(_dcp_save, _dcp_load),
}

FORMATS = [pytest.param(fmt, id=fmt.name) for fmt in REGISTRY]


def sample_state(dtypes: frozenset[str] | None = None) -> dict[str, torch.Tensor]:
    """The sample; a dtype the format does not hold (``dtypes``) is stored as float32."""
    generator = torch.Generator().manual_seed(0)
    embed = torch.randn(8, 4, generator=generator)
    norm = torch.randn(4, generator=generator).to(torch.bfloat16)
    if dtypes is not None and "bfloat16" not in dtypes:
        norm = norm.float()
    return {
        "embed.weight": embed,
        "layer.weight": torch.randn(4, 4, generator=generator),
        "layer.bias": torch.ones(4),
        "norm.weight": norm,
        "norm.steps": torch.tensor(7, dtype=torch.int64),
        "head.weight": embed,
    }


def sample_for(fmt) -> dict[str, torch.Tensor]:
    """The sample as far as the format holds it: one tensor for a one-tensor file, the tie
    as a copy where there are no ties, only the dtypes it stores."""
    state = sample_state()
    if fmt.holds.single_tensor:
        return {"layer.bias": state["layer.bias"]}
    if not fmt.holds.ties:
        state["head.weight"] = state["embed.weight"].clone()
    if fmt.holds.dtypes is not None:
        state = {n: t for n, t in state.items() if str(t.dtype).removeprefix("torch.") in fmt.holds.dtypes}
    return state


@pytest.fixture
def sample(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    fmt = request.getfixturevalue("fmt")
    state = sample_for(fmt)
    # A one-tensor file is named by its tensor.
    stem = next(iter(state)) if fmt.holds.single_tensor else "sample"
    path = tmp_path / f"{stem}{fmt.suffixes[0] if fmt.suffixes else ''}"
    OWN_LIBRARIES[fmt.name].write(state, path)
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
    target = checkpoint.entry("layer.weight" if "layer.weight" in checkpoint.names() else "layer.bias")
    (tmp_path / "edited").mkdir()
    out_path = tmp_path / "edited" / sample.name
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
    assert torch.equal(reread[target.name], torch.full(target.shape, 0.5))
    for name, tensor in sample_for(fmt).items():
        if name != target.name:
            assert torch.equal(expected(reread, name), tensor), name
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
    dtypes = {entry.dtype for entry in checkpoint.entries}
    unheld = target.holds.dtypes is not None and not dtypes <= target.holds.dtypes
    if (checkpoint.extras() and not target.holds.extras) or unheld:
        # What the target cannot hold is refused, never dropped.
        with open(out_path, "w+b") as out, pytest.raises(UsageError, match=r"other values|cannot hold"):
            target.write(checkpoint, out)
        return
    with open(out_path, "w+b") as out:
        target.write(checkpoint, out)
    converted = read_checkpoint(out_path)
    assert converted.format == target.name
    reference = OWN_LIBRARIES[fmt.name].read(sample)
    reread = OWN_LIBRARIES[target.name].read(out_path)
    for name, tensor in reread.items():
        if isinstance(tensor, torch.Tensor):  # the extras a format holds come along too
            assert torch.equal(tensor, expected(reference, name)), name
    assert set(converted.names()) == set(checkpoint.names())
    if target.holds.ties and fmt.holds.ties:
        assert converted.entry("embed.weight").storage_key == converted.entry("head.weight").storage_key
    assert math.isclose(float(reread["layer.bias"].sum()), 4.0)
