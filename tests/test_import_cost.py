"""Importing paramctl, and listing a checkpoint, never imports torch; a command imports the
reader of the format it reads, and no other."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def format_modules_loaded(code: str) -> list[str]:
    """The modules of format packages beyond detection (their ``layout``) that running
    ``code`` in a fresh interpreter leaves imported: readers, the zip and pickle machinery."""
    result = run_python(f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stderr.strip().splitlines()[-1])
    in_packages = [m for m in loaded if m.startswith("paramctl.formats.") and m.count(".") == 3]
    pickles = [m for m in loaded if m == "paramctl.formats._pickle"]
    return sorted(pickles + [m for m in in_packages if not m.endswith(".layout")])


def listing(path: str) -> str:
    return (
        "from paramctl.cli import app\n"
        "try:\n"
        f"    app(['list', {path!r}, '--format', 'tsv'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
    )


def test_import_paramctl_and_cli_leaves_torch_out():
    heavy = "('torch', 'numpy', 'safetensors', 'gguf')"
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


def test_import_paramctl_and_cli_leaves_the_formats_out():
    # Every command starts by importing these; the format registry waits for the command.
    result = run_python("import sys, paramctl, paramctl.cli; print('paramctl.formats' in sys.modules)")
    assert result.stdout.strip() == "False", result.stderr


def test_the_registry_imports_what_detection_needs_and_no_reader():
    assert format_modules_loaded("import paramctl.formats") == []


@pytest.mark.parametrize(
    ("sample", "readers"),
    [
        ("cnn.safetensors", ["paramctl.formats.safetensors.read"]),
        (
            "mlp.pt",
            [
                "paramctl.formats._pickle",
                "paramctl.formats.torch_zip.archive",
                "paramctl.formats.torch_zip.read",
                "paramctl.formats.torch_zip.structure",
            ],
        ),
    ],
)
def test_list_imports_the_reader_of_its_format_and_no_other(samples, sample, readers):
    assert format_modules_loaded(listing(str(samples / sample))) == readers
