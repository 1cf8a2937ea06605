"""docs/diff.md documents every option of ``paramctl diff``, and its examples are true."""

from __future__ import annotations

from pathlib import Path

import torch
from commands import click_command
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "diff.md").read_text()


def test_every_option_is_documented():
    command = click_command("diff")
    names = [opt for param in command.params for opt in (*param.opts, *param.secondary_opts)]
    missing = [name for name in names if name.startswith("--") and name != "--help" and f"`{name}" not in DOC]
    assert missing == []


def block_after(marker: str) -> list[str]:
    """The lines of the console block that starts with the command ``marker``."""
    lines = DOC.split(f"$ {marker}\n", 1)[1].split("```", 1)[0].split("\n$ ", 1)[0]
    return [line.rstrip() for line in lines.rstrip("\n").splitlines()]


def test_the_init_example_prints_what_the_page_shows(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "before.pt").write_bytes((ROOT / "sample_models" / "tied_transformer.pt").read_bytes())
    init = [
        "init",
        "before.pt",
        "-m",
        "attn.*",
        "-m",
        "embed.weight",
        "-s",
        "normal",
        "--seed",
        "1",
        "-o",
        "after.pt",
        "-q",
    ]
    assert cli(*init).exit_code == 0
    result = cli("diff", "before.pt", "after.pt", "-f", "table", env={"COLUMNS": "90"})
    assert result.exit_code == 1
    assert [line.rstrip() for line in result.stdout.splitlines()] == block_after(
        "paramctl diff before.pt after.pt -f table"
    )


def test_the_model_examples_print_what_the_page_shows(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets.py").write_text(
        "from torch import nn\n\n\ndef mlp(hidden: int = 3, out: int = 1):\n"
        "    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, out))\n"
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    torch.save(nn.DataParallel(model).state_dict(), tmp_path / "dp.pt")
    for extra in ([], ["--model-arg", "out=2"]):
        args = ["diff", "dp.pt", "--model", "nets.py:mlp", *extra, "-f", "table"]
        result = cli(*args, env={"COLUMNS": "90"})
        assert result.exit_code == 1
        shown = block_after("paramctl " + " ".join(args))
        assert [line.rstrip() for line in result.stdout.splitlines()] == shown
