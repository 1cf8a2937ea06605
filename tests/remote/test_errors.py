"""What goes wrong with a remote file is said in one line, with the I/O exit code (5),
never a traceback; nothing is downloaded whole unless asked."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from safetensors.torch import save_file

from paramctl.errors import CheckpointIOError, ExitCode
from paramctl.formats import read_checkpoint
from paramctl.values import ValueReader
from tests.remote.bigfiles import sparse_safetensors
from tests.remote.conftest import Nginx, free_port
from tests.remote.test_http import run


def one_line_error(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paramctl: error: "), stderr
    return lines[0]


def test_a_missing_file_is_an_io_error(nginx: Nginx) -> None:
    code, _, err = run("list", nginx.url("nowhere/model.safetensors"))
    assert code == ExitCode.IO
    assert "not found (HTTP 404)" in one_line_error(err)


@pytest.mark.parametrize(("folder", "status"), [("denied", 403), ("private", 401)])
def test_access_denied_hints_at_hf_token(nginx: Nginx, folder: str, status: int) -> None:
    code, _, err = run("list", nginx.url(f"{folder}/model.safetensors"))
    assert code == ExitCode.IO
    line = one_line_error(err)
    assert f"HTTP {status}" in line and "HF_TOKEN" in line


def test_a_server_ignoring_range_is_refused_with_the_size(nginx: Nginx) -> None:
    sparse_safetensors(nginx.file("norange/model.safetensors"), {"w": (64 << 20,)})
    nginx.mark()
    code, _, err = run("list", nginx.url("norange/model.safetensors"))
    assert code == ExitCode.IO
    line = one_line_error(err)
    assert "ignores Range" in line and "--download" in line and "(256 MiB)" in line
    assert nginx.fetched() < 128 << 20  # the answer was not read


def test_download_reads_a_server_ignoring_range_whole(nginx: Nginx) -> None:
    save_file({"w": torch.zeros(1000)}, nginx.file("norange/whole.safetensors"))
    code, out, _ = run("list", "--download", nginx.url("norange/whole.safetensors"))
    assert code == 0 and "[1000]" in out


def test_a_server_that_does_not_answer_times_out(silent_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARAMCTL_TIMEOUT", "0.3")
    code, _, err = run("list", silent_server)
    assert code == ExitCode.IO
    assert "no answer within 0.3 s" in one_line_error(err)


def test_no_server_at_all_is_an_io_error() -> None:
    code, _, err = run("list", f"http://127.0.0.1:{free_port()}/model.pt")
    assert code == ExitCode.IO
    assert "cannot reach the server" in one_line_error(err)


def test_a_file_changed_while_it_is_read_is_an_io_error(nginx: Nginx) -> None:
    path = nginx.file("changing/model.safetensors")
    save_file({"w": torch.zeros(100_000)}, path)
    checkpoint = read_checkpoint(nginx.url("changing/model.safetensors"))
    save_file({"w": torch.ones(100_000)}, path)
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 10))  # a new ETag
    with ValueReader(checkpoint) as reader, pytest.raises(CheckpointIOError, match="ETag changed") as caught:
        reader.array(checkpoint.entry("w"))
    assert caught.value.exit_code == ExitCode.IO


def test_a_file_changed_between_commands_is_read_again(nginx: Nginx) -> None:
    path = nginx.file("replaced/model.safetensors")
    save_file({"old": torch.zeros(10)}, path)
    assert "old" in run("list", nginx.url("replaced/model.safetensors"))[1]
    save_file({"new": torch.zeros(10)}, path)
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))
    code, out, _ = run("list", nginx.url("replaced/model.safetensors"))
    assert code == 0 and "new" in out and "old" not in out


def test_writing_to_a_url_is_a_usage_error(nginx: Nginx, tmp_path: os.PathLike[str]) -> None:
    torch.save({"w": torch.zeros(3)}, nginx.file("write/model.pt"))
    code, _, err = run(
        "init", nginx.url("write/model.pt"), "-o", "https://example.org/out.pt", "--scheme", "zeros"
    )
    assert code == ExitCode.USAGE
    assert "writes local files only" in one_line_error(err)
    code, _, err = run("init", nginx.url("write/model.pt"), "--in-place", "--scheme", "zeros")
    assert code == ExitCode.USAGE


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if it were not installed
    code, _, err = run("list", "s3://bucket/model.safetensors")
    assert code == ExitCode.IO
    assert "pip install 'paramctl[remote]'" in one_line_error(err)
