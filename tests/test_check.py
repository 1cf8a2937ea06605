"""paramctl check: clean files pass, and each kind of damage is found and named."""

from __future__ import annotations

import json
import struct
import zipfile

import pytest
import torch
from conftest import SAMPLE_FILES

from paramctl import read_checkpoint
from paramctl.inspect.check import check_checkpoint

CLEAN = SAMPLE_FILES


@pytest.mark.parametrize("name", CLEAN)
def test_the_samples_pass(cli, samples, name):
    result = cli("check", samples / name, "-f", "table")
    assert result.exit_code == 0, result.stdout
    assert f"{samples / name}: ok: 0 errors, 0 warnings" in result.stdout


def test_zip_summary_counts_records_and_values(samples):
    result = check_checkpoint(samples / "mlp.pt")
    assert result.findings == []
    assert (result.tensors, result.value_bytes) == (4, 76)
    assert result.records == len(zipfile.ZipFile(samples / "mlp.pt").namelist())
    assert result.checked == ["zip structure", "zip CRC-32", "metadata", "values"]


def test_injected_nan_and_inf_are_errors_with_names(cli, save_pt):
    weight = torch.randn(4, 4)
    weight[1, 2] = float("nan")
    bias = torch.zeros(4)
    bias[0] = float("inf")
    path = save_pt({"fc.weight": weight, "fc.bias": bias, "ok": torch.ones(3)})
    result = cli("check", path, "-f", "table")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[:2] == [
        "error: nan: fc.weight: 1 NaN among 16 values",
        "error: inf: fc.bias: 1 Inf among 4 values",
    ]
    assert "FAILED: 2 errors, 0 warnings in 3 tensors" in result.stdout
    names = cli("check", path, "-f", "names").stdout.split()
    assert names == ["fc.weight", "fc.bias"]


def flip_bit(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_data_bit_is_found_though_torch_load_accepts_it(cli, save_pt):
    path = save_pt({"a": torch.randn(64), "b": torch.randn(8, 8)})
    checkpoint = read_checkpoint(path)
    storage = checkpoint.storage_of(checkpoint.entry("b"))
    flip_bit(path, storage.offset + 100)
    torch.load(path, weights_only=True)  # loads without a word
    result = cli("check", path, "-f", "json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    (finding,) = document["findings"]
    assert finding["check"] == "crc" and finding["severity"] == "error"
    assert finding["name"].endswith(f"data/{storage.key}")
    assert "CRC-32 mismatch" in finding["message"] and "(tensor b)" in finding["message"]
    assert document["ok"] is False


def test_a_flipped_bit_in_the_pickle_is_reported_not_raised(cli, save_pt):
    path = save_pt({"a": torch.randn(4)})
    data = path.read_bytes()
    flip_bit(path, data.index(b"data.pkl") + 60)
    result = cli("check", path, "-f", "tsv")
    assert result.exit_code == 1
    assert "\tcrc\t" in result.stdout or "\tread\t" in result.stdout


def test_a_truncated_zip_is_a_finding(cli, save_pt):
    path = save_pt({"a": torch.randn(1000)})
    path.write_bytes(path.read_bytes()[:2000])
    result = cli("check", path, "-f", "json")
    assert result.exit_code == 1
    checks = {f["check"] for f in json.loads(result.stdout)["findings"]}
    assert "zip" in checks


def write_safetensors(path, header, data_length):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data_length))
    return path


def test_safetensors_offset_past_the_data(cli, tmp_path):
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    path = write_safetensors(tmp_path / "bad.safetensors", header, 16)
    result = cli("check", path, "-f", "table")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "error: offsets: b: data offsets [8, 24] run past the 16 bytes of data"
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_safetensors_holes_overlaps_and_trailing_bytes(tmp_path):
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]},
        "c": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
        "d": {"dtype": "F32", "shape": [3], "data_offsets": [24, 32]},
    }
    path = write_safetensors(tmp_path / "bad.safetensors", header, 40)
    lines = [f.line() for f in check_checkpoint(path).findings]
    assert lines == [
        "error: offsets: d: data offsets span 8 bytes, the shape needs 12",
        "error: coverage: b: a hole of 4 bytes after a",
        "error: coverage: c: overlaps b by 4 bytes",
        "error: coverage: 8 bytes after the last tensor",
    ]


def test_safetensors_bad_values_are_found_too(cli, save_st):
    values = torch.ones(3, 3)
    values[0, 0] = float("nan")
    result = cli("check", save_st({"w": values, "z": torch.zeros(2, 2)}), "-f", "table")
    assert result.exit_code == 1
    assert "error: nan: w: 1 NaN among 9 values" in result.stdout
    assert "warning: zeros: z: all 4 values are zero" in result.stdout


def test_constant_matrices_warn_and_strict_fails(cli, save_pt):
    path = save_pt({"w": torch.full((3, 3), 0.5), "bias": torch.zeros(3), "norm": torch.ones(3)})
    result = cli("check", path, "-f", "table")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "warning: constant: w: all 9 values are 0.5"
    assert "ok: 0 errors, 1 warning" in result.stdout
    assert cli("check", path, "--strict").exit_code == 1


def test_optimizer_state_raises_no_constant_warning(samples):
    result = check_checkpoint(samples / "training.pt")
    assert result.findings == []


def test_no_values_checks_only_the_container(cli, save_pt):
    path = save_pt({"w": torch.tensor([float("nan")])})
    result = cli("check", path, "--no-values", "-f", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["checked"] == ["zip structure", "zip CRC-32", "metadata"]


def test_selection_narrows_the_value_scan(cli, save_pt):
    path = save_pt({"bad": torch.tensor([float("nan")]), "good": torch.ones(2)})
    assert cli("check", path, "-m", "good").exit_code == 0
    assert cli("check", path, "-m", "bad").exit_code == 1


def test_legacy_file_with_nan(cli, save_pt):
    path = save_pt({"w": torch.tensor([1.0, float("nan")])}, legacy=True)
    result = cli("check", path, "-f", "jsonl")
    assert result.exit_code == 1
    assert json.loads(result.stdout.splitlines()[0])["check"] == "nan"


def test_stdin(cli, samples):
    data = (samples / "mlp.pt").read_bytes()
    result = cli("check", "-", "-f", "json", input=data)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["file"] == "<stdin>"


def test_not_a_checkpoint_is_invalid_input(cli, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = cli("check", path)
    assert result.exit_code == 3
    assert result.stderr.startswith("paramctl: error:")
    assert cli("check", tmp_path / "missing.pt").exit_code == 5


def test_no_values_does_not_import_torch(samples):
    import subprocess
    import sys

    code = (
        "import sys; from paramctl.cli import app\n"
        "try:\n    app(['check', '--no-values', sys.argv[1]])\nexcept SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(samples / "cnn.safetensors")], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_recompressed_archive_passes_crc_and_says_values_went_unchecked(save_pt, tmp_path):
    plain = save_pt({"w": torch.ones(4, 4)})
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    result = check_checkpoint(deflated)
    assert result.errors == 0
    assert [(f.severity, f.check) for f in result.findings] == [("warning", "values")]
    assert "compressed" in result.findings[0].message
