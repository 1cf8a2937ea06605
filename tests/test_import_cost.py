"""Importing paramctl, and listing a checkpoint, never imports torch."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_import_paramctl_and_cli_leaves_torch_out():
    heavy = "('torch', 'numpy', 'safetensors')"
    result = run_python(
        f"import sys, paramctl, paramctl.cli; print([m for m in {heavy} if m in sys.modules])"
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_list_of_every_format_needs_no_torch(samples):
    code = (
        "import sys\n"
        "from paramctl.cli import app\n"
        f"for name in ('mlp.pt', 'mlp_legacy.pt', 'training.pt', 'cnn.safetensors'):\n"
        f"    try:\n"
        f"        app(['list', {str(samples)!r} + '/' + name, '--all', '--extras', '-f', 'json'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code in (0, None), exit.code\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    result = run_python(code)
    assert result.stderr.strip().splitlines()[-1] == "False", result.stderr


def test_commands_that_only_read_values_need_no_torch(samples, tmp_path):
    # list --stats, show, check and shared --by-value on a zip, a legacy and a safetensors file
    code = (
        "import sys\n"
        "from paramctl.cli import app\n"
        f"folder = {str(samples)!r}\n"
        "for name, tensor in (('mlp.pt', '0.weight'), ('mlp_legacy.pt', '0.weight'),\n"
        "                     ('cnn.safetensors', 'conv1.weight')):\n"
        "    path = folder + '/' + name\n"
        "    for args in (['list', path, '--stats'], ['show', path, tensor], ['check', path],\n"
        "                 ['shared', path, '--by-value']):\n"
        "        try:\n"
        "            app(args)\n"
        "        except SystemExit as exit:\n"
        "            assert exit.code in (0, None), (args, exit.code)\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    result = run_python(code)
    assert result.stderr.strip().splitlines()[-1] == "False", result.stderr
    assert "tensor([[" in result.stdout and "0 errors" in result.stdout + result.stderr
