"""Reading never executes the pickle: globals outside the allowlist are refused (exit 4)."""

from __future__ import annotations

import os
import pickle
import sys
import zipfile

import pytest
import torch
from torch import nn

from paramctl import ExitCode, UnsafePickle, read_checkpoint


class Exploit:
    """Pickles as a call to os.system that would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_forbidden_global_is_refused_and_nothing_runs(cli, tmp_path, save_pt):
    marker = tmp_path / "pwned"
    path = save_pt({"w": torch.ones(2), "payload": Exploit(marker)})
    result = cli("list", path)
    assert result.exit_code == ExitCode.UNSAFE
    assert "'posix.system'" in result.stderr and "nothing was executed" in result.stderr
    assert not marker.exists()


def test_a_forbidden_global_in_a_legacy_file_is_refused(tmp_path, save_pt):
    marker = tmp_path / "pwned"
    path = save_pt({"payload": Exploit(marker)}, legacy=True)
    try:
        read_checkpoint(path)
    except UnsafePickle as exc:
        assert exc.global_name == "posix.system"
    else:
        raise AssertionError("the exploit was not refused")
    assert not marker.exists()


def test_a_full_pickled_module_is_refused(cli, save_pt):
    path = save_pt(nn.Sequential(nn.Linear(2, 2)))
    result = cli("list", path)
    assert result.exit_code == ExitCode.UNSAFE
    assert "torch.nn.modules.container.Sequential" in result.stderr


def test_importing_modules_by_name_in_a_plain_pickle_is_refused(cli, tmp_path):
    path = tmp_path / "m.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "archive/data.pkl",
            pickle.dumps({"f": sys.modules["subprocess"].call}, protocol=2, fix_imports=False),
        )
    result = cli("list", path)
    assert result.exit_code == ExitCode.UNSAFE
    assert "subprocess.call" in result.stderr


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_unmodelled_torch_tensors_fall_back_to_the_weights_only_loader(cli, save_pt):
    sparse = torch.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2))
    path = save_pt({"dense": torch.ones(3), "sparse": sparse})
    checkpoint = read_checkpoint(path)
    assert {e.name: e.shape for e in checkpoint.entries} == {"dense": (3,), "sparse": (2, 2)}
    assert checkpoint.notes and "weights_only=True" in checkpoint.notes[0]
    quiet = cli("list", path, "-f", "names")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    verbose = cli("list", path, "-f", "names", "--verbose")
    assert "torch.load(weights_only=True)" in verbose.stderr
