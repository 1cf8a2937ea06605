"""The click commands behind ``paramctl``, for tests that read their options and help."""

from __future__ import annotations

import typer
import typer.main

from paramctl.cli import app


def click_command(name: str) -> typer.main.TyperCommand:
    """The command ``name`` as click builds it (each is built when first asked for)."""
    group = typer.main.get_command(app)
    command = group.get_command(typer.Context(group), name)  # type: ignore[attr-defined]
    assert command is not None, name
    return command  # type: ignore[no-any-return]


def command_names() -> list[str]:
    group = typer.main.get_command(app)
    return list(group.list_commands(typer.Context(group)))  # type: ignore[attr-defined]
