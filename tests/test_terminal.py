"""What a person sees in a real terminal (a pseudo-terminal of a fixed size): the progress
bar of long work, init's one-line summary, and a show page that keeps its heading on the
screen. In a pipe, the same commands print no bar."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
import torch

pytestmark = pytest.mark.slow

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def in_terminal(args: list[str], *, columns: int = 80, lines: int = 24, cwd=None) -> str:
    """Run ``paramctl ARGS`` with stdin, stdout and stderr on a terminal of that size; what
    it wrote, its escape sequences kept."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": str(lines)}
    process = subprocess.Popen(
        [sys.executable, "-m", "paramctl", *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # the terminal closes with the process
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert process.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def plain(text: str) -> str:
    return _ESCAPES.sub("", text)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """24 tensors of 2 MiB: enough work for the bar, more tensors than a table for people."""
    path = tmp_path_factory.mktemp("terminal") / "big.pt"
    torch.save({f"layers.{i}.weight": torch.zeros(512, 1024) for i in range(24)}, path)
    return path


def test_init_shows_one_progress_bar_then_one_line(big, tmp_path):
    out = tmp_path / "out.pt"
    shown = in_terminal(["init", str(big), "-s", "normal(std=0.02)", "--seed", "1234", "-o", str(out)])
    text = plain(shown)
    # The bar counts bytes of the total, with the rate, while the work runs ...
    assert re.search(r"(loading torch|writing \S*out\.pt) .*/48\.0 MiB", text)
    assert re.search(r"MiB/s", text) or "?" in text
    # ... and gives way to one line: what changed, how, the seed, where.
    summary = f"changed 24 tensors (48.00 MiB) with normal(mean=0.0, std=0.02), seed 1234 → {out}"
    assert summary in " ".join(text.split())
    assert " ".join(text.split()).endswith("; --report for the table")
    assert "┏" not in text  # no table of 24 rows
    assert torch.load(out, weights_only=True)["layers.3.weight"].std() == pytest.approx(0.02, rel=0.05)


def test_report_gives_the_table_on_a_terminal(big, tmp_path):
    out = tmp_path / "out.pt"
    text = plain(
        in_terminal(["init", str(big), "-s", "zeros", "--report", "-o", str(out)], columns=100, lines=60)
    )
    assert "┏" in text and "layers.23.weight" in text


def test_in_a_pipe_there_is_no_bar(big, tmp_path):
    out = tmp_path / "out.pt"
    args = [sys.executable, "-m", "paramctl", "init", str(big), "-s", "zeros", "-o", str(out)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "━" not in result.stderr and "MiB/s" not in result.stderr
    assert result.stdout.startswith("name\tshape\tdtype\taction")  # the full report, for scripts


def test_show_keeps_its_heading_on_a_screen_of_50_lines(tmp_path):
    path = tmp_path / "m.pt"
    torch.manual_seed(0)
    torch.save({"block.weight": torch.randn(16, 16)}, path)
    text = plain(in_terminal(["show", str(path), "block.weight"], columns=80, lines=50))
    lines = text.rstrip("\n").split("\n")
    assert len(lines) < 50
    assert lines[0].startswith("block.weight  [16, 16] float32")
    assert "..." in text  # the 256 values are summarised to their edges
    assert "histogram of 256 finite values" in text


def test_list_stats_fits_80_columns(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(
        {f"encoder.layers.{i}.self_attention.in_proj_weight": torch.rand(8, 8) for i in range(3)}, path
    )
    text = plain(in_terminal(["list", str(path), "--stats"]))
    assert all(len(line) <= 80 for line in text.split("\n"))
    assert "…" not in text
    assert "mean" in text and "std" in text
