"""MXNet NDArray files: committed files MXNet 1.9.1 wrote, the lessons' Gluon steps through
paramctl, and MXNet loading what paramctl wrote (when an MXNet interpreter is at hand).

The fixtures under ``tests/fixtures/mxnet`` were made by ``mxnet_tool.py make`` in that folder;
``expected.json`` is what ``nd.load`` reported for each (shape, dtype, SHA-256 of the values).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from paramctl import ExitCode, read_checkpoint
from paramctl.values import ValueReader

FIXTURES = Path(__file__).parent / "fixtures" / "mxnet"
TOOL = FIXTURES / "mxnet_tool.py"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
MXNET_PYTHON = os.environ.get("PARAMCTL_MXNET_PYTHON", "")
NO_MXNET = os.environ.get("PARAMCTL_MXNET_UNAVAILABLE") or (
    "no MXNet to load paramctl's output: set PARAMCTL_MXNET_PYTHON to a python with mxnet 1.9.1 "
    "(.ci/run makes one)"
)
needs_mxnet = pytest.mark.skipif(not MXNET_PYTHON, reason=NO_MXNET)


def mxnet(*args: str) -> dict:
    """Run the fixture tool under MXNet's interpreter and return the JSON it prints."""
    done = subprocess.run([MXNET_PYTHON, str(TOOL), *args], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def described(path: Path) -> dict:
    """What paramctl reads, in the shape ``mxnet_tool.py describe`` reports."""
    checkpoint = read_checkpoint(path)
    with ValueReader(checkpoint) as values:
        return {
            entry.name: {
                "shape": list(entry.shape),
                "dtype": entry.dtype,
                "sha256": hashlib.sha256(values.array(entry).tobytes()).hexdigest(),
            }
            for entry in checkpoint.entries
        }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_names_shapes_dtypes_and_values_are_what_mxnet_read(name):
    assert read_checkpoint(FIXTURES / name).format == "mxnet"
    assert described(FIXTURES / name) == EXPECTED[name]


def test_every_naming_mxnet_writes():
    names = {name: read_checkpoint(FIXTURES / name).names() for name in EXPECTED}
    assert names["gluon.params"] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert names["dense0.params"] == ["dense0_weight", "dense0_bias", "dense1_weight", "dense1_bias"]
    assert "arg:fc1_weight" in names["checkpoint-0000.params"]
    assert "aux:bn1_moving_var" in names["checkpoint-0000.params"]
    assert names["list.nd"] == ["0", "1"]  # a list is saved without names


def test_numpy_shape_arrays_hold_scalars():
    checkpoint = read_checkpoint(FIXTURES / "numpy_shapes.nd")
    assert [(e.name, e.shape) for e in checkpoint.entries] == [("scalar", ()), ("matrix", (2, 3))]
    with ValueReader(checkpoint) as values:
        assert float(values.array(checkpoint.entry("scalar"))) == 3.0


def test_the_lessons_listing(cli):
    result = cli("list", str(FIXTURES / "dense0.params"), "--format", "tsv")
    assert result.exit_code == 0
    rows = [line.split("\t")[:3] for line in result.stdout.splitlines()[1:]]
    assert rows == [
        ["dense0_weight", "[256, 20]", "float32"],
        ["dense0_bias", "[256]", "float32"],
        ["dense1_weight", "[10, 256]", "float32"],
        ["dense1_bias", "[10]", "float32"],
    ]


def test_sparse_storage_is_refused_clearly(cli):
    result = cli("list", str(FIXTURES / "sparse.nd"))
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "stored as csr (MXNet storage type 2)" in result.stderr
    assert "dense arrays only" in result.stderr


@pytest.mark.parametrize("cut", [4, 20, 60, 1000, -3])
def test_a_truncated_file_is_invalid_input(cli, tmp_path, cut):
    data = (FIXTURES / "gluon.params").read_bytes()
    path = tmp_path / "cut.params"
    path.write_bytes(data[:cut])
    result = cli("list", str(path))
    assert result.exit_code == ExitCode.INVALID_INPUT, result.stderr
    assert result.stderr.count("\n") == 1


def test_a_huge_array_count_is_refused_before_anything_is_allocated(cli, tmp_path):
    data = bytearray((FIXTURES / "list.nd").read_bytes())
    data[16:24] = (1 << 60).to_bytes(8, "little")
    path = tmp_path / "hostile.nd"
    path.write_bytes(bytes(data))
    result = cli("list", str(path))
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "more than the file can hold" in result.stderr


def test_shared_says_the_file_records_no_sharing_and_finds_copies_by_value(cli):
    path = str(FIXTURES / "checkpoint-0000.params")
    plain = cli("shared", path)
    assert "store every tensor apart and record no sharing; --by-value finds equal copies" in plain.stderr
    by_value = cli("shared", path, "--by-value", "--format", "json")
    document = json.loads(by_value.stdout)
    groups = [[n["name"] for n in group["names"]] for group in document["groups"]]
    # MXNet initializes the bias, beta and moving mean to zeros, gamma and moving var to ones.
    assert ["arg:fc1_bias", "arg:bn1_beta", "aux:bn1_moving_mean"] in groups
    assert ["arg:bn1_gamma", "aux:bn1_moving_var"] in groups


def test_check_passes_then_finds_a_nan(cli, tmp_path):
    assert cli("check", str(FIXTURES / "gluon.params")).exit_code == 0
    checkpoint = read_checkpoint(FIXTURES / "gluon.params")
    storage = checkpoint.storage_of(checkpoint.entry("1.bias"))
    data = bytearray((FIXTURES / "gluon.params").read_bytes())
    data[storage.offset : storage.offset + 4] = bytes.fromhex("0000c07f")  # a float32 NaN
    path = tmp_path / "nan.params"
    path.write_bytes(bytes(data))
    result = cli("check", str(path))
    assert result.exit_code == ExitCode.NEGATIVE
    assert "1.bias" in result.stdout


def _lessons_steps(cli, tmp_path: Path) -> tuple[Path, Path]:
    source = FIXTURES / "dense0.params"
    normal = tmp_path / "normal.params"
    args = ["init", str(source), "--regex", ".*weight", "-s", "normal(std=0.01)", "--seed", "0", "-o"]
    assert cli(*args, str(normal)).exit_code == 0
    plus_one = tmp_path / "plus_one.params"
    assert cli("init", str(normal), "-m", "dense0_bias", "--set", "1", "-o", str(plus_one)).exit_code == 0
    return normal, plus_one


def test_the_lessons_reinitialization_changes_only_the_selected_arrays(cli, tmp_path):
    source = FIXTURES / "dense0.params"
    normal, plus_one = _lessons_steps(cli, tmp_path)
    before, after = read_checkpoint(source), read_checkpoint(plus_one)
    assert len(normal.read_bytes()) == len(source.read_bytes())
    with ValueReader(after) as values:
        for name in ("dense0_weight", "dense1_weight"):
            std = float(values.array(after.entry(name)).std())
            assert math.isclose(std, 0.01, rel_tol=0.1), (name, std)
        assert set(values.array(after.entry("dense0_bias")).tolist()) == {1.0}
    old, new = source.read_bytes(), plus_one.read_bytes()
    unselected = before.storage_of(before.entry("dense1_bias"))
    span = slice(unselected.offset, unselected.offset + unselected.nbytes)
    assert old[span] == new[span]
    first_data = before.storage_of(before.entries[0]).offset
    assert old[:first_data] == new[:first_data]  # headers and names untouched


@needs_mxnet
def test_mxnet_loads_what_init_wrote(cli, tmp_path):
    normal, plus_one = _lessons_steps(cli, tmp_path)
    assert mxnet("describe", str(normal)) == described(normal)
    assert mxnet("describe", str(plus_one)) == described(plus_one)
    gluon = mxnet("gluon", str(plus_one))  # the lessons' net, parameters loaded from the file
    assert [p["shape"] for p in gluon.values()] == [[256, 20], [256], [10, 256], [10]]
    assert gluon["dense0_bias"]["sum"] == 256.0


@needs_mxnet
def test_gluon_load_parameters_accepts_an_edited_params_file(cli, tmp_path):
    out = tmp_path / "gluon_set.params"
    result = cli("init", str(FIXTURES / "gluon.params"), "-m", "0.bias", "--set", "1", "-o", str(out))
    assert result.exit_code == 0
    loaded = list(mxnet("gluon", str(out)).values())  # the net's parameters in order
    assert [p["shape"] for p in loaded] == [[256, 20], [256], [10, 256], [10]]
    assert loaded[1]["sum"] == 256.0


@needs_mxnet
def test_mxnet_loads_a_file_converted_from_torch(cli, tmp_path, save_pt):
    import torch

    source = save_pt(
        {"w": torch.arange(6.0).reshape(2, 3), "steps": torch.tensor([7]), "half": torch.ones(2).half()}
    )
    out = tmp_path / "converted.params"
    assert cli("init", str(source), "-m", "w", "--set", "2", "-o", str(out)).exit_code == 0
    assert read_checkpoint(out).format == "mxnet"
    assert mxnet("describe", str(out)) == described(out)
