"""The installed ``paramctl`` command and ``python -m paramctl`` work end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_installed_entry_point_lists_a_sample_through_a_pipe(samples):
    exe = shutil.which("paramctl") or str(__import__("pathlib").Path(sys.executable).parent / "paramctl")
    data = (samples / "mlp.pt").read_bytes()
    result = subprocess.run([exe, "list", "--format", "names"], input=data, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.slow
def test_python_dash_m_reports_errors_with_exit_codes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "paramctl", "list", str(tmp_path / "missing.pt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 5
    assert result.stderr.startswith("paramctl: error: ") and "Traceback" not in result.stderr
    version = subprocess.run(
        [sys.executable, "-m", "paramctl", "--version"], capture_output=True, text=True, check=False
    )
    assert version.stdout.startswith("paramctl ")
