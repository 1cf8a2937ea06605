"""docs/inspect.md documents every option of the commands it covers."""

from __future__ import annotations

from pathlib import Path

import pytest
from commands import click_command

DOC = (Path(__file__).resolve().parent.parent / "docs" / "inspect.md").read_text()


def options(command_name: str) -> list[str]:
    command = click_command(command_name)
    names = []
    for param in command.params:
        names += [opt for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")]
    return [name for name in names if name != "--help"]


@pytest.mark.parametrize("command", ["shared", "show", "check"])
def test_every_option_is_documented(command):
    assert f"paramctl {command}" in DOC
    missing = [option for option in options(command) if f"`{option}" not in DOC]
    assert missing == []


def test_list_stats_is_documented():
    assert "`paramctl list --stats`" in DOC
    for key in ("mean", "std", "min", "max", "absmax", "norm", "zeros", "nan", "inf"):
        assert f"`{key}`" in DOC
