"""The README stays true: every command is documented there, and its Python example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from commands import command_names

README = Path(__file__).resolve().parent.parent / "README.md"


def commands() -> list[str]:
    return sorted(command_names())


@pytest.mark.parametrize("command", commands())
def test_every_command_is_in_the_readme(command):
    assert f"`paramctl {command}`" in README.read_text()


def test_the_quickstart_has_exactly_two_commands():
    text = README.read_text()
    block = re.search(r"## Quickstart.*?```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 2
    assert "paramctl list sample_models/" in lines[0] and "pytest" in lines[1]


def test_the_python_example_runs(tmp_path, monkeypatch):
    code = re.search(r"## Python API.*?```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_models").symlink_to(README.parent / "sample_models")
    exec(compile(code.group(1), "README.md", "exec"), {})
    saved = torch.load(tmp_path / "out.pt", weights_only=True)
    original = torch.load(README.parent / "sample_models" / "mlp.pt", weights_only=True)
    assert torch.equal(saved["0.bias"], original["0.bias"] + 1)
    assert not torch.equal(saved["0.weight"], original["0.weight"])
