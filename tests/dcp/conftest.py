"""DCP directories written by torch's own writer: one process, and two ranks by torchrun."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MAKER = Path(__file__).with_name("make_dcp.py")


@pytest.fixture(scope="session")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dcp")
    subprocess.run([sys.executable, MAKER, root / "one"], check=True, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*torchrun, MAKER, root / "two"], check=True, capture_output=True, env=env)
    return {"one": root / "one", "two": root / "two"}


@pytest.fixture(params=["one", "two"])
def dcp_dir(request: pytest.FixtureRequest, saved: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / request.param
    shutil.copytree(saved[request.param], copy)
    return copy


@pytest.fixture
def two_ranks(saved: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "two"
    shutil.copytree(saved["two"], copy)
    return copy
