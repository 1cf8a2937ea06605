"""Fixtures: tiny checkpoints built in ``tmp_path``, the committed samples, and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from paramctl.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"
SAMPLE_FILES = sorted(path.name for path in SAMPLES.iterdir() if path.suffix in (".pt", ".safetensors"))


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def save_pt(tmp_path: Path) -> Callable[..., Path]:
    """``save_pt(obj, name="m.pt", legacy=False)`` -> path of a ``torch.save`` file."""

    def save(obj: Any, name: str = "m.pt", legacy: bool = False) -> Path:
        path = tmp_path / name
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        return path

    return save


@pytest.fixture
def save_st(tmp_path: Path) -> Callable[..., Path]:
    """``save_st(tensors, name="m.safetensors", metadata=None)`` -> path of a safetensors file."""
    from safetensors.torch import save_file

    def save(tensors: dict[str, torch.Tensor], name: str = "m.safetensors", metadata: Any = None) -> Path:
        path = tmp_path / name
        save_file(tensors, path, metadata=metadata)
        return path

    return save


class CliResult:
    def __init__(self, result: Any) -> None:
        self.exit_code: int = result.exit_code
        self.stdout: str = result.stdout
        self.stderr: str = result.stderr
        self.output_bytes: bytes = result.stdout_bytes
        self.exception = result.exception


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """``cli("list", path, "--format", "json", input=b"...", env={"COLUMNS": "80"})`` runs
    the app in-process."""
    runner = CliRunner()

    def run(*args: Any, input: bytes | str | None = None, env: dict[str, str] | None = None) -> CliResult:
        return CliResult(runner.invoke(app, [str(a) for a in args], input=input, env=env))

    return run
