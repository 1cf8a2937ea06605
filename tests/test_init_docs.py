"""docs/init.md stays true: every option and scheme is documented, and its code runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from commands import click_command

from paramctl.schemes.catalog import SCHEMES

DOC = Path(__file__).resolve().parent.parent / "docs" / "init.md"


def code_block_after(marker: str) -> str:
    text = DOC.read_text()
    start = text.index(marker)
    match = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert match is not None, marker
    return match.group(1)


def init_options() -> list[str]:
    command = click_command("init")
    return [opt for param in command.params for opt in param.opts if opt.startswith("--") and opt != "--help"]


@pytest.mark.parametrize("option", init_options())
def test_every_option_is_documented(option):
    assert f"`{option}" in DOC.read_text() or f"{option} " in DOC.read_text(), option


@pytest.mark.parametrize("scheme", [*SCHEMES, "default"])
def test_every_scheme_is_documented(scheme):
    assert f"`{scheme}" in DOC.read_text()


def test_the_custom_init_example_runs_as_documented(cli, samples, tmp_path, monkeypatch):
    (tmp_path / "my_init.py").write_text(code_block_after("<!-- custom-init-example -->"))
    shutil.copy(samples / "mlp.pt", tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    result = cli(
        "init", "m.pt", "--match", "*.weight", "--scheme", "my_init.py:half_zero", "--seed", 0, "-o", "out.pt"
    )
    assert result.exit_code == 0, result.stderr
    weights = [v for k, v in torch.load("out.pt", weights_only=True).items() if k.endswith("weight")]
    values = torch.cat([w.flatten() for w in weights])
    assert ((values == 0) | ((values.abs() >= 5) & (values.abs() <= 10))).all()
    assert (values == 0).any() and (values != 0).any()


def test_the_python_example_runs(samples, tmp_path, monkeypatch, capsys):
    shutil.copy(samples / "mlp.pt", tmp_path / "m.pt")
    monkeypatch.chdir(tmp_path)
    exec(code_block_after("## From Python"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("[('0.weight', ")
    assert torch.load("out.pt", weights_only=True)["0.bias"].equal(
        torch.load("m.pt", weights_only=True)["0.bias"]
    )
