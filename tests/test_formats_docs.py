"""docs/formats.md stays true: the Gluon lessons' commands print what the page shows."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "formats.md"
FIXTURES = Path(__file__).parent / "fixtures" / "mxnet"


def documented_runs() -> list[tuple[list[str], list[str]]]:
    """Each ``$ paramctl ...`` line of the page's console blocks and the lines shown after it."""
    runs: list[tuple[list[str], list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ paramctl "):
                runs.append((shlex.split(line)[2:], []))
            else:
                runs[-1][1].append(line)
    return runs


def test_the_lessons_commands_print_what_the_page_shows(cli, tmp_path, monkeypatch):
    shutil.copy(FIXTURES / "dense0.params", tmp_path)
    monkeypatch.chdir(tmp_path)
    runs = documented_runs()
    assert len(runs) == 5
    for args, shown in runs:
        table = "-f" not in args and args[0] == "list"
        result = cli(*args, *(["-f", "tsv"] if table else []))
        assert result.exit_code == 0, (args, result.stderr)
        printed = [line.rstrip() for line in (result.stdout + result.stderr).splitlines()]
        if table:  # the page shows the terminal's table: the same cells
            cells = [[cell for cell in re.split(r"[│ ]{2,}|│", line) if cell.strip()] for line in shown]
            rows = [row[:3] for row in cells if row and re.match(r"dense\d_", row[0].strip())]
            assert rows == [line.split("\t")[:3] for line in printed[1:5]]
        else:
            assert [_rounded(line) for line in printed] == [_rounded(line.rstrip()) for line in shown], args


def _rounded(line: str) -> str:
    """A line with its long floats cut to 6 significant digits: a float32 reduction's last
    digits follow the machine's BLAS kernels (AVX2 and AVX-512 sum in other orders)."""
    return re.sub(r"-?\d+\.\d{7,}(?:e-?\d+)?", lambda found: f"{float(found.group()):.6g}", line)
