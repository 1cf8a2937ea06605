"""docs/live.md: its examples run and print what it shows, and it documents every option."""

from __future__ import annotations

import doctest
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
from commands import click_command
from typer.testing import CliRunner

from paramctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "live.md"


def console_examples() -> list[tuple[list[str], str]]:
    """``$ paramctl ...`` lines of the console blocks, each with the text shown after it."""
    examples = []
    for block in re.findall(r"```console\n(.*?)```", DOC.read_text(), re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            examples.append((shlex.split(command)[1:], output))
    return examples


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory):
    """The repository's samples, and ``model_full.pt``: the docs' working folder, shared by
    the examples in document order (one may use a file an earlier one wrote)."""
    folder = tmp_path_factory.mktemp("docs")
    (folder / "sample_models").symlink_to(ROOT / "sample_models")
    sys.path.insert(0, str(ROOT / "sample_models"))
    try:
        import make_samples
    finally:
        sys.path.remove(str(ROOT / "sample_models"))
    torch.save(make_samples.mlp(), folder / "model_full.pt")
    return folder


@pytest.fixture
def workdir(docs_dir, monkeypatch):
    monkeypatch.chdir(docs_dir)
    return docs_dir


@pytest.mark.parametrize(
    ("args", "shown"), console_examples(), ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else ""
)
def test_console_examples_print_what_the_docs_show(workdir, args, shown):
    result = CliRunner().invoke(app, args)
    # Messages on stderr are shown where the docs show them: before the output (--trust's
    # notice, errors); examples showing only the output compare standard output.
    seen = result.stderr + result.stdout if shown.startswith("paramctl:") else result.stdout
    assert seen == shown


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
README_OPTIONS |= {"--all", "--extras", "--tree", "--sort", "--verbose", "--stats"}
LIVE_OPTIONS = {"--model", "--model-arg", "--trust", "--input-shape", "--input", "--input-value"}
LIVE_OPTIONS |= {"--grads", "--loss", "--seed", "--eval"}


def options_of(command: str) -> set[str]:

    built = click_command(command)
    return {opt for param in built.params for opt in param.opts if opt.startswith("--")}


@pytest.mark.parametrize("command", ["grads", "list", "init"])
def test_every_live_option_is_documented(command):
    options = options_of(command)
    wanted = options - README_OPTIONS if command == "grads" else options & LIVE_OPTIONS
    text = DOC.read_text()
    missing = [
        option
        for option in sorted(wanted)
        if not re.search(r"`[^`\n]*" + re.escape(option) + r"(?![\w-])", text)
    ]
    assert missing == []
