"""numpy arrays inside torch.save files: stand-ins from the pickle's bytes, never numpy's code."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from paramctl.errors import UnsafePickle
from paramctl.formats import read_checkpoint
from paramctl.formats._pickle import restricted_load
from paramctl.values import ValueReader


@pytest.fixture
def mixed(save_pt):
    """What a training script saves: tensors, numpy arrays (one twice), numpy scalars."""
    mask = np.arange(6, dtype=np.int32).reshape(2, 3)
    return save_pt(
        {
            "model": {"w": torch.ones(2, 2)},
            "mask": mask,
            "again": mask,
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "best_acc": np.float64(0.75),
            "steps": np.int64(12),
        }
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_arrays_list_with_their_shapes_dtypes_and_ties(save_pt, legacy):
    path = save_pt({"a": np.zeros((3, 4), np.float16), "w": torch.ones(1)}, legacy=legacy)
    checkpoint = read_checkpoint(path)
    assert [(e.name, e.shape, e.dtype) for e in checkpoint.entries] == [
        ("a", (3, 4), "float16"),
        ("w", (1,), "float32"),
    ]


def test_values_equal_numpys_own(mixed):
    checkpoint = read_checkpoint(mixed)
    reference = torch.load(mixed, weights_only=False)
    with ValueReader(checkpoint) as values:
        for name in ("mask", "again", "fortran"):
            entry = checkpoint.entry(name)
            np.testing.assert_array_equal(values.array(entry), reference[name])
            np.testing.assert_array_equal(values.tensor(entry).numpy(), reference[name])
    assert checkpoint.entry("mask").storage_key == checkpoint.entry("again").storage_key
    assert {x.name: x.value for x in checkpoint.extras()} == {"best_acc": 0.75, "steps": 12}


def test_list_stats_show_and_check(mixed, cli):
    stats = json.loads(cli("list", mixed, "--all", "--stats", "-f", "json").stdout)
    row = next(t for t in stats["tensors"] if t["name"] == "mask")
    assert (row["mean"], row["max"], row["shared_with"]) == (2.5, 5.0, ["again"])
    shown = cli("show", mixed, "fortran", "--all", "-f", "text")
    assert shown.exit_code == 0, shown.stderr
    assert "inside the pickle" in shown.stdout
    assert cli("check", mixed).exit_code == 0


def test_nothing_of_numpy_is_called(monkeypatch, mixed):
    def refuse(*args, **kwargs):
        raise AssertionError("numpy's reconstructor ran")

    monkeypatch.setattr(np._core.multiarray, "_reconstruct", refuse)
    assert read_checkpoint(mixed).entry("mask").shape == (2, 3)


def test_object_arrays_are_refused_as_unsafe(save_pt, cli):
    path = save_pt({"names": np.array(["a", None], dtype=object)})
    result = cli("list", path)
    assert result.exit_code == 4
    assert "numpy object array" in result.stderr


def test_other_ndarray_subclasses_are_refused():
    data = pickle.dumps(np.ma.masked_array([1.0, 2.0]), protocol=2)
    with pytest.raises(UnsafePickle, match=r"numpy\.ma\.core"):
        restricted_load(data)


@pytest.mark.parametrize("first", ["paramctl.formats._pickle", "paramctl.formats._numpy_pickle"])
def test_the_stand_ins_are_on_the_allowlist_whichever_module_loads_first(first):
    # Readers load when a file of their format is read, so the allowlist (which a DCP
    # .metadata or --trust consults too) cannot depend on which reader came first.
    code = (
        f"import {first}\n"
        "from paramctl.formats._pickle import refuses\n"
        "print(refuses('numpy', 'ndarray'), refuses('numpy._core.multiarray', '_reconstruct'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_edits_keep_the_arrays_and_refuse_to_rewrite_them(mixed, tmp_path, cli):
    out = tmp_path / "out.pt"
    assert cli("init", mixed, "-m", "model.w", "--all", "-s", "zeros", "-o", out).exit_code == 0
    loaded = torch.load(out, weights_only=False)
    assert not loaded["model"]["w"].any()
    np.testing.assert_array_equal(loaded["mask"], np.arange(6).reshape(2, 3))
    refused = cli("init", mixed, "-m", "mask", "--all", "-s", "zeros", "-o", tmp_path / "no.pt")
    assert refused.exit_code == 2
    assert "numpy array inside the checkpoint's pickle" in refused.stderr
