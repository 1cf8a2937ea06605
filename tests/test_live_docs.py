"""docs/live.md: its examples run and print what it shows, and it documents every option."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import paramctl.formats
from paramctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "live.md"


def console_examples() -> list[tuple[list[str], str]]:
    """``$ paramctl ...`` lines of the console blocks, each with the text shown after it."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((command.split()[1:], output))
    return examples


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The repository's samples, and ``model_full.pt``, as the docs' working folder."""
    (tmp_path / "sample_models").symlink_to(ROOT / "sample_models")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "sample_models"))
    import make_samples

    torch.save(make_samples.mlp(), tmp_path / "model_full.pt")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "shown"), console_examples(), ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else ""
)
def test_console_examples_print_what_the_docs_show(workdir, monkeypatch, args, shown):
    monkeypatch.setattr(paramctl.formats, "_spooled", None)
    result = CliRunner().invoke(app, args)
    assert result.stderr + result.stdout == shown


def test_python_examples_run(workdir, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```pycon\n(.*?)```", DOC.read_text(), re.S)
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "live.md", str(DOC), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False) == (0, len(test.examples))
    assert len(test.examples) > 20


# Options the README documents: the shared selection and output options, and list's own.
README_OPTIONS = {"--match", "--regex", "--exclude", "--key", "--format", "--debug", "--help", "--version"}
README_OPTIONS |= {"--all", "--extras", "--tree", "--sort", "--verbose"}


@pytest.mark.parametrize("command", ["grads", "list"])
def test_every_live_option_is_documented(command):
    import typer.main

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    options = {opt for param in click_command.params for opt in param.opts if opt.startswith("--")}
    text = DOC.read_text()
    missing = [
        option
        for option in sorted(options - README_OPTIONS)
        if not re.search(r"`[^`\n]*" + re.escape(option) + r"(?![\w-])", text)
    ]
    assert missing == []
