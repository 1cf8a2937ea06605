"""NumPy .npy and .npz files, written by numpy and read back by numpy."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from paramctl.cli import app
from paramctl.formats import detect_format, read_checkpoint
from paramctl.inspect.check import check_checkpoint
from paramctl.values import ValueReader


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    path = tmp_path / "params.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path, **{"dense/kernel": rng.standard_normal((8, 4)).astype(np.float32), "dense/bias": np.ones(4)}
    )
    return path


def test_detection_tells_npz_from_a_torch_zip_and_npy_by_bytes(npz, tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "m.npz")  # a torch zip, whatever its name
    np.save(tmp_path / "a.bin", np.arange(3))
    npz.rename(tmp_path / "params.pt")
    assert detect_format(tmp_path / "params.pt").name == "npz"
    assert detect_format(tmp_path / "m.npz").name == "torch-zip"
    assert detect_format(tmp_path / "a.bin.npy").name == "npy"


def test_list_of_an_npz(npz, cli):
    result = cli("list", npz)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "name\tshape\tdtype\tnumel\tbytes\tshared_with",
        "dense/kernel\t[8, 4]\tfloat32\t32\t128\t",
        "dense/bias\t[4]\tfloat64\t4\t32\t",
    ]


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f2", "<i8", "|b1", ">c16"])
def test_npy_values_equal_what_numpy_loads(tmp_path, order, dtype):
    array = np.asarray(np.arange(12).reshape(3, 4) % 5, dtype=dtype, order=order)
    np.save(tmp_path / "a.npy", array)
    checkpoint = read_checkpoint(tmp_path / "a.npy")
    (entry,) = checkpoint.entries
    assert (entry.name, entry.shape) == ("a", (3, 4))
    with ValueReader(checkpoint) as values:
        np.testing.assert_array_equal(values.array(entry), np.load(tmp_path / "a.npy"))
        np.testing.assert_array_equal(values.tensor(entry).numpy(), array)


def test_header_versions_2_and_3(tmp_path):
    for version in ((2, 0), (3, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as file:
            np.lib.format.write_array(file, np.arange(6.0).reshape(2, 3), version=version)
        (entry,) = read_checkpoint(path).entries
        assert entry.shape == (2, 3) and entry.dtype == "float64"


def test_object_arrays_are_refused_as_unsafe(tmp_path, cli):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "o.npz", w=np.ones(2), o=np.array([print], dtype=object))
    for name in ("o.npy", "o.npz"):
        result = cli("list", tmp_path / name)
        assert result.exit_code == 4, result.stderr
        assert "refusing to read an array of Python objects" in result.stderr


def test_show_stats_and_check_of_an_npz(npz, cli):
    shown = cli("show", npz, "dense/bias", "-f", "json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["stats"]["mean"] == 1.0
    stats = json.loads(cli("list", npz, "--stats", "-f", "json").stdout)
    assert [row["norm"] for row in stats["tensors"]][1] == 2.0
    assert check_checkpoint(npz).passed()


def test_check_catches_a_flipped_byte_by_the_member_crc(npz):
    data = bytearray(npz.read_bytes())
    data[-400] ^= 0x01  # inside the bias member's data
    npz.write_bytes(bytes(data))
    findings = check_checkpoint(npz).findings
    assert any(f.check == "crc" and f.severity == "error" for f in findings), findings


def test_init_edits_a_stored_npz_in_place_and_numpy_loads_it(npz, tmp_path, cli):
    out = tmp_path / "out.npz"
    result = cli("init", npz, "-m", "dense/kernel", "-s", "zeros", "-o", out)
    assert result.exit_code == 0, result.stderr
    with np.load(out) as loaded, np.load(npz) as original:
        assert not loaded["dense/kernel"].any()
        np.testing.assert_array_equal(loaded["dense/bias"], original["dense/bias"])
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["dense/kernel.npy", "dense/bias.npy"]
    assert check_checkpoint(out).passed(strict=False)


def test_init_writes_an_npy_numpy_loads(tmp_path, cli):
    np.save(tmp_path / "w.npy", np.ones((4, 4), np.float32))
    result = cli(
        "init", tmp_path / "w.npy", "-s", "normal(std=0.5)", "--seed", "0", "-o", tmp_path / "out.npy"
    )
    assert result.exit_code == 0, result.stderr
    loaded = np.load(tmp_path / "out.npy")
    assert loaded.shape == (4, 4) and 0.2 < loaded.std() < 0.8
    assert (tmp_path / "out.npy").read_bytes()[:128] == (tmp_path / "w.npy").read_bytes()[:128]


def test_a_compressed_npz_is_read_by_inflating_each_member_but_not_edited(tmp_path, cli):
    path = tmp_path / "c.npz"
    weights = np.random.default_rng(0).standard_normal((30, 20)).astype(np.float32)
    np.savez_compressed(path, w=weights, bad=np.array([1.0, np.nan], np.float32))
    listed = cli("list", path, "--stats", "-f", "json", "-m", "w")
    (row,) = json.loads(listed.stdout)["tensors"]
    assert row["shape"] == [30, 20] and row["bytes"] == 2400
    assert row["mean"] == pytest.approx(float(weights.mean()), rel=1e-5)
    assert row["std"] == pytest.approx(float(weights.std(ddof=1)), rel=1e-5)
    assert "tensor([[" in cli("show", path, "w").stdout
    checked = check_checkpoint(path)
    assert [(f.check, f.name) for f in checked.findings] == [("nan", "bad")]
    assert "values" in checked.checked
    result = cli("init", path, "-s", "zeros", "-o", tmp_path / "out.npz")
    assert result.exit_code == 2
    assert "deflated (np.savez_compressed)" in result.stderr and "np.savez" in result.stderr


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chosen=st.sets(st.sampled_from(["a", "b", "c", "d"]), min_size=1))
def test_any_selection_leaves_every_other_member_byte_identical(tmp_path_factory, chosen):
    folder = tmp_path_factory.mktemp("npz")
    arrays = {name: np.full((3, i + 1), i + 1.0, np.float32) for i, name in enumerate("abcd")}
    np.savez(folder / "in.npz", **arrays)
    arguments = ["init", folder / "in.npz", "-s", "zeros", "-o", folder / "out.npz"]
    for name in sorted(chosen):
        arguments += ["-m", name]
    result = CliRunner().invoke(app, [str(a) for a in arguments])
    assert result.exit_code == 0, result.stderr
    with zipfile.ZipFile(folder / "in.npz") as before, zipfile.ZipFile(folder / "out.npz") as after:
        assert after.testzip() is None
        for name in arrays:
            same = before.read(f"{name}.npy") == after.read(f"{name}.npy")
            assert same == (name not in chosen), name
