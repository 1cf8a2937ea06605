"""``paramctl.load``, the drop-in for ``torch.load(path, weights_only=True)``, and
``paramctl.save``: held to torch's own loader on every sample and to every writable format."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import paramctl
from paramctl.checkpoint import model_view
from paramctl.formats import REGISTRY, read_checkpoint
from tests.conftest import SAMPLE_FILES, SAMPLES
from tests.formats.test_contract import OWN_LIBRARIES, sample_for


def flat(node: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(node, torch.Tensor):
        return {prefix: node}
    items = (
        node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list | tuple) else ()
    )
    found: dict[str, torch.Tensor] = {}
    for key, value in items:
        found.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return found


def reference(path: Path) -> dict[str, torch.Tensor]:
    """What torch's own loaders give, as the names paramctl.load uses (the model dict's)."""
    if path.suffix == ".safetensors":
        # save_model stores a tie once and names the other in the metadata, as load_model reads it.
        with safe_open(path, "pt") as file:
            aliases = file.metadata() or {}
        loaded = load_file(path)
        return {**loaded, **{alias: loaded[kept] for alias, kept in aliases.items() if kept in loaded}}
    loaded = flat(torch.load(path, weights_only=True))
    prefix = model_view(read_checkpoint(path)).prefix_name
    return {name.removeprefix(f"{prefix}."): t for name, t in loaded.items() if name.startswith(prefix)}


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_load_gives_what_torch_load_gives_on_every_sample(name):
    path = SAMPLES / name
    expected = reference(path)
    loaded = paramctl.load(path)
    assert sorted(loaded) == sorted(expected)
    for key, tensor in loaded.items():
        assert tensor.dtype == expected[key].dtype, key
        assert tensor.shape == expected[key].shape and tensor.stride() == expected[key].stride(), key
        assert torch.equal(tensor, expected[key]), key
        assert type(tensor) is type(expected[key]), key


@pytest.mark.parametrize("protocol", [4, 5])
def test_load_reads_pickle_protocols_torch_load_refuses(tmp_path, protocol):
    path = tmp_path / "p.pt"
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    torch.save(state, path, pickle_protocol=protocol)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    loaded = paramctl.load(path)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_ties_come_back_as_one_tensor_and_views_share_storage(tmp_path):
    base = torch.arange(8.0)
    path = tmp_path / "t.pt"
    torch.save({"embed": base, "head": base, "half": base[4:]}, path)
    loaded = paramctl.load(path)
    assert loaded["embed"] is loaded["head"]
    assert loaded["half"].untyped_storage().data_ptr() == loaded["embed"].untyped_storage().data_ptr()
    loaded["half"][0] = -1  # the map is private: the file keeps its bytes
    assert loaded["embed"][4] == -1
    assert torch.load(path, weights_only=True)["embed"][4] == 4


def test_load_maps_the_file_rather_than_reading_it(tmp_path):
    path = tmp_path / "big.pt"
    torch.save({"w": torch.zeros(1 << 22)}, path)  # 16 MiB
    program = (
        "import resource, sys, paramctl\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "w = paramctl.load(sys.argv[1])['w']\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    grown = subprocess.run(
        [sys.executable, "-c", program, str(path)], check=True, capture_output=True, text=True
    )
    assert int(grown.stdout) < 8 * 1024  # KiB: nothing of the 16 MiB was touched


def test_key_select_and_dtype(tmp_path):
    path = tmp_path / "train.pt"
    state = {"a.weight": torch.randn(3), "a.bias": torch.randn(3), "steps": torch.tensor([2])}
    torch.save({"ema": state, "epoch": 1}, path)
    loaded = paramctl.load(path, key="ema", select="a.*", dtype=torch.float16)
    assert sorted(loaded) == ["a.bias", "a.weight"]
    assert loaded["a.weight"].dtype == torch.float16
    assert paramctl.load(path, key="ema", dtype=torch.float16)["steps"].dtype == torch.int64
    assert sorted(paramctl.load(path, select=["steps"])) == ["steps"]


def test_importing_paramctl_does_not_import_torch_for_load():
    program = "import sys, paramctl; paramctl.load; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", program], check=True)


WRITABLE = [fmt for fmt in REGISTRY if fmt.writer() is not None or fmt.set_writer() is not None]


@pytest.mark.parametrize("fmt", [pytest.param(fmt, id=fmt.name) for fmt in WRITABLE])
def test_save_writes_every_writable_format_and_load_reads_it_back(fmt, tmp_path):
    tied = torch.randn(4, 3)
    state = {"embed.weight": tied, "head.weight": tied, "steps": torch.arange(3)}
    path = tmp_path / f"out{fmt.suffixes[0] if fmt.suffixes else ''}"
    paramctl.save(state, path, to=fmt.name)
    loaded = paramctl.load(path)
    assert sorted(loaded) == sorted(state)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())
    if fmt.holds.ties:
        assert loaded["embed.weight"] is loaded["head.weight"]


def test_save_casts_and_refuses_what_the_format_cannot_hold(tmp_path):
    state = {"w": torch.randn(3), "n": torch.arange(3)}
    paramctl.save(state, tmp_path / "h.safetensors", dtype=torch.bfloat16)
    loaded = load_file(tmp_path / "h.safetensors")
    assert loaded["w"].dtype == torch.bfloat16 and loaded["n"].dtype == torch.int64
    with pytest.raises(paramctl.UsageError, match="--drop-extras"):
        paramctl.save({"w": torch.ones(1), "epoch": 3}, tmp_path / "e.safetensors")
    with pytest.raises(paramctl.UsageError, match="suffix"):
        paramctl.save(state, tmp_path / "nosuffix")


@pytest.mark.parametrize("fmt", [pytest.param(fmt, id=fmt.name) for fmt in REGISTRY])
def test_load_reads_every_format_as_its_own_library_does(fmt, tmp_path):
    state = sample_for(fmt)
    stem = next(iter(state)) if fmt.holds.single_tensor else "sample"
    path = tmp_path / f"{stem}{fmt.suffixes[0] if fmt.suffixes else ''}"
    OWN_LIBRARIES[fmt.name].write(state, path)
    reference = OWN_LIBRARIES[fmt.name].read(path)
    loaded = paramctl.load(path)
    for name, tensor in reference.items():
        assert loaded[name].dtype == tensor.dtype, name
        assert torch.equal(loaded[name], tensor), name
