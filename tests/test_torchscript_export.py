"""TorchScript and torch.export archives, as ``torch.jit.save`` and ``torch.export.save`` write
them: names from the archive's own pickles or JSON, values, and ``init`` writing archives
that ``torch.jit.load`` and ``torch.export.load`` load."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from paramctl import ExitCode, read_checkpoint
from paramctl.values import ValueReader


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(20, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        self.norm = torch.nn.BatchNorm1d(10)
        self.register_buffer("offset", torch.arange(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.body(x)) + self.offset + torch.tensor(2.0)


def _net() -> Net:
    torch.manual_seed(0)
    return Net().eval()


@pytest.fixture
def jit_file(tmp_path: Path) -> Path:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(_net(), torch.randn(2, 20)), path)
    return path


@pytest.fixture
def export_file(tmp_path: Path) -> Path:
    path = tmp_path / "exported.pt2"
    torch.export.save(torch.export.export(_net(), (torch.randn(2, 20),)), path)
    return path


NAMES = [
    "body.0.weight",
    "body.0.bias",
    "body.2.weight",
    "body.2.bias",
    "norm.weight",
    "norm.bias",
    "norm.running_mean",
    "norm.running_var",
    "norm.num_batches_tracked",
    "offset",
]


def test_a_torchscript_archive_lists_its_parameters_buffers_and_constants(cli, jit_file):
    checkpoint = read_checkpoint(jit_file)
    assert checkpoint.format == "torchscript"
    assert sorted(checkpoint.names()) == sorted([*NAMES, "constants.0"])
    assert checkpoint.metadata["module"].startswith("__torch__.") and checkpoint.metadata["module"].endswith(
        ".Net"
    )
    module = torch.jit.load(jit_file)
    with ValueReader(checkpoint) as values:
        for name, tensor in module.state_dict().items():
            assert torch.equal(values.tensor(checkpoint.entry(name)), tensor), name
        assert float(values.tensor(checkpoint.entry("constants.0"))) == 2.0
    assert cli("list", str(jit_file)).exit_code == 0


def test_torchscript_init_loads_in_torch_jit_with_code_and_constants_untouched(cli, jit_file, tmp_path):
    out = tmp_path / "reinit.pt"
    result = cli(
        "init", str(jit_file), "--regex", r"body\..*weight", "-s", "normal(std=0.01)", "-o", str(out)
    )
    assert result.exit_code == 0, result.stderr
    before, after = torch.jit.load(jit_file), torch.jit.load(out)
    old, new = before.state_dict(), after.state_dict()
    assert 0.008 < float(new["body.0.weight"].std()) < 0.012
    assert torch.equal(new["body.0.bias"], old["body.0.bias"])
    assert after(torch.randn(2, 20)).shape == (2, 10)
    with zipfile.ZipFile(jit_file) as old, zipfile.ZipFile(out) as new:
        kept = [n for n in old.namelist() if "/code/" in n or "/constants" in n or n.endswith("data.pkl")]
        assert kept and all(old.read(name) == new.read(name) for name in kept)


def test_torchscript_stand_ins_never_run_code_and_other_globals_stay_refused(cli, tmp_path):
    path = tmp_path / "hostile.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hostile/data.pkl", pickle.dumps(os.system))
        archive.writestr("hostile/constants.pkl", pickle.dumps(()))
        archive.writestr("hostile/code/__torch__.py", "raise SystemExit('ran')\n")
    result = cli("list", str(path))
    assert result.exit_code == ExitCode.UNSAFE
    assert "posix.system" in result.stderr


def test_a_torch_export_archive_lists_weights_and_constants_from_its_json(cli, export_file):
    checkpoint = read_checkpoint(export_file)
    assert checkpoint.format == "torch-export"
    program = torch.export.load(export_file)
    reference = {**program.state_dict, **program.constants}
    assert sorted(checkpoint.names()) == sorted(reference)
    with ValueReader(checkpoint) as values:
        for name, tensor in reference.items():
            entry = checkpoint.entry(name)
            assert (entry.shape, entry.dtype) == (tuple(tensor.shape), str(tensor.dtype)[6:])
            assert torch.equal(values.tensor(entry), tensor.detach()), name
    assert checkpoint.entry("body.0.weight").is_parameter
    assert not checkpoint.entry("offset").is_parameter


def test_torch_export_init_loads_in_torch_export_and_runs(cli, export_file, tmp_path):
    out = tmp_path / "reinit.pt2"
    result = cli("init", str(export_file), "-m", "body.2.bias", "--set", "1", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    before, after = torch.export.load(export_file), torch.export.load(out)
    assert torch.equal(after.state_dict["body.2.bias"], torch.ones(10))
    assert torch.equal(after.state_dict["body.0.weight"], before.state_dict["body.0.weight"])
    x = torch.randn(2, 20)
    assert after.module()(x).shape == (2, 10)
    assert cli("check", str(out)).exit_code == 0


def test_zip_members_tell_the_torch_formats_apart(tmp_path, jit_file, export_file, cli):
    saved = tmp_path / "state.pt"
    torch.save(_net().state_dict(), saved)
    formats = [read_checkpoint(p).format for p in (saved, jit_file, export_file)]
    assert formats == ["torch-zip", "torchscript", "torch-export"]
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "hello")
    result = cli("list", str(other_zip))
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "a zip file, but not a PyTorch checkpoint" in result.stderr


def test_new_archives_of_these_formats_are_refused_with_the_reason(cli, tmp_path):
    saved = tmp_path / "state.pt"
    torch.save({"w": torch.ones(2)}, saved)
    for target in ("torchscript", "torch-export"):
        result = cli("init", str(saved), "-m", "w", "--set", "0", "--to", target, "-o", str(tmp_path / "x"))
        assert result.exit_code == ExitCode.USAGE
        assert "does not write new" in result.stderr


def test_a_pt2_output_from_another_format_says_why_it_cannot_be_written(cli, tmp_path):
    saved = tmp_path / "state.pt"
    torch.save({"w": torch.ones(2)}, saved)
    result = cli("init", str(saved), "-m", "w", "--set", "0", "-o", str(tmp_path / "out.pt2"))
    assert result.exit_code == ExitCode.USAGE
    assert "does not write new torch.export archives" in result.stderr
