"""Errors are one line on stderr with the documented exit code; tracebacks only with --debug."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import pytest
import torch

from paramctl import ExitCode


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("paramctl: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_missing_file_is_an_io_error(cli, tmp_path):
    result = cli("list", tmp_path / "nope.pt")
    assert result.exit_code == ExitCode.IO
    assert "No such file or directory" in one_line_error(result)


def test_directory_is_an_io_error(cli, tmp_path):
    result = cli("list", tmp_path)
    assert result.exit_code == ExitCode.IO
    assert "is a directory" in one_line_error(result)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is not a checkpoint", b"PK\x03\x04garbage" * 10, struct.pack("<Q", 5000) + b"{}"],
    ids=["empty", "text", "broken-zip", "impossible-safetensors-header"],
)
def test_garbage_is_invalid_input(cli, tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    result = cli("list", path)
    assert result.exit_code == ExitCode.INVALID_INPUT
    one_line_error(result)


def test_truncated_zip_checkpoint_is_invalid_input(cli, save_pt):
    path = save_pt({"w": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:-200])
    result = cli("list", path)
    assert result.exit_code == ExitCode.INVALID_INPUT
    one_line_error(result)


def test_truncated_legacy_checkpoint_is_invalid_input(cli, save_pt):
    path = save_pt({"w": torch.zeros(1000)}, legacy=True)
    path.write_bytes(path.read_bytes()[:-100])
    result = cli("list", path)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "runs past the end" in one_line_error(result)


def test_zip_storage_record_shorter_than_its_tensor_is_invalid(cli, tmp_path, save_pt):
    source = save_pt({"w": torch.zeros(16)})
    damaged = tmp_path / "damaged.pt"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:8] if info.filename.endswith("data/0") else data)
    result = cli("list", damaged)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "holds 8 bytes, its storage is 64" in one_line_error(result)


def test_safetensors_offsets_outside_the_data_are_invalid(cli, tmp_path):
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    result = cli("list", path)
    assert result.exit_code == ExitCode.INVALID_INPUT
    assert "run past the 8 bytes of data" in one_line_error(result)


def test_nothing_matched_is_a_negative_result_with_close_names(cli, samples):
    result = cli("list", samples / "mlp.pt", "--match", "0.wieght")
    assert result.exit_code == ExitCode.NEGATIVE
    assert one_line_error(result) == (
        "paramctl: error: no tensor matches --match 0.wieght; close names: 0.weight, 2.weight"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--regex", "("],
        ["--all", "--key", "state_dict"],
        ["--key", "nothing.here"],
        ["--format", "xml"],
        ["--sort", "color"],
    ],
)
def test_usage_errors_exit_2(cli, samples, args):
    result = cli("list", samples / "training.pt", *args)
    assert result.exit_code == ExitCode.USAGE, result.stderr


def test_debug_shows_the_traceback(cli, tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"nope")
    result = cli("list", path, "--debug")
    assert result.exit_code != 0
    assert result.exception is not None and "not a checkpoint" in str(result.exception)


def test_terminal_stdin_without_a_path_is_a_usage_error(cli, monkeypatch):
    monkeypatch.setattr("paramctl.cli.options._stdin_isatty", lambda: True)
    result = cli("list")
    assert result.exit_code == ExitCode.USAGE
    assert "pass a path, or pipe one" in one_line_error(result)


def test_an_unexpected_exception_is_a_bug_with_its_own_code(cli, samples, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("listing exploded\nwith a second line of detail")

    monkeypatch.setattr("paramctl.cli.list_cmd.build_listing", broken)
    result = cli("list", samples / "mlp.pt")
    assert result.exit_code == ExitCode.BUG == 70
    assert one_line_error(result) == (
        "paramctl: error: unexpected RuntimeError: listing exploded; this is a bug in paramctl: "
        "rerun with --debug for the traceback"
    )
    debugged = cli("list", samples / "mlp.pt", "--debug")
    assert isinstance(debugged.exception, RuntimeError)


def test_every_exit_code_is_in_the_readme_table():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("## Exit codes") :].split("\n## ")[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    documented = {int(code) for code in rows if code.isdigit()}
    assert documented == {int(code) for code in ExitCode}
