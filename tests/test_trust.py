"""Full pickled modules: refused without --trust (nothing runs), loaded with it after the
globals are shown."""

from __future__ import annotations

import collections
import json
import pickle
import sys
import textwrap
from pathlib import Path

import live_models
import pytest
import torch

from paramctl.errors import UnsafePickle
from paramctl.live.model import open_model
from paramctl.live.trust import checkpoint_globals, pickle_globals

MODELS = Path(__file__).resolve().parent / "live_models.py"

EVIL = """
    import pathlib
    from torch import nn

    MARKER = pathlib.Path({marker!r})


    class Evil(nn.Linear):
        def __setstate__(self, state):
            MARKER.write_text("ran")
            if MARKER.with_suffix(".fail").exists():
                raise RuntimeError("refusing to finish")
            super().__setstate__(state)
"""


@pytest.fixture
def evil(tmp_path, monkeypatch):
    """A full-module pickle whose loading writes a marker file; its module is then forgotten."""
    marker = tmp_path / "marker.txt"
    (tmp_path / "evilmod.py").write_text(textwrap.dedent(EVIL.format(marker=str(marker))))
    monkeypatch.syspath_prepend(str(tmp_path))
    import evilmod

    path = tmp_path / "evil.pt"
    torch.save(evilmod.Evil(2, 3), path)
    del sys.modules["evilmod"]
    return path, marker


@pytest.mark.parametrize(
    "args",
    [
        ("list", "{path}"),
        ("list", "{path}", "--model", f"{MODELS}:mlp"),
        ("grads", "{path}", "--input-shape", "1,2"),
        ("list", "{path}", "--input-shape", "1,2"),
    ],
)
def test_without_trust_nothing_runs(cli, evil, args, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # torch's switch is not ours
    path, marker = evil
    result = cli(*(arg.format(path=path) for arg in args))
    assert result.exit_code == 4
    assert "evilmod.Evil" in result.stderr and "--trust" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not marker.exists()
    assert "evilmod" not in sys.modules


def test_with_trust_the_globals_are_shown_before_anything_runs(cli, evil):
    path, marker = evil
    marker.with_suffix(".fail").write_text("")
    result = cli("list", path, "--trust")
    assert marker.read_text() == "ran"
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert lines[0].startswith("paramctl: --trust: loading runs code from")
    assert "  evilmod.Evil" in lines
    assert lines[-1].startswith("paramctl: error:") and "refusing to finish" in lines[-1]


def test_a_trusted_module_is_listed_and_probed(cli, evil):
    path, marker = evil
    listed = cli("list", path, "--trust", "-f", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in json.loads(listed.stdout)["tensors"]] == ["weight", "bias"]
    assert marker.exists()
    probed = cli("grads", path, "--trust", "--input-shape", "4,2", "-f", "json")
    assert [row["status"] for row in json.loads(probed.stdout)["parameters"]] == ["ok", "ok"]


def test_the_library_refuses_unless_trust_is_given(evil):
    path, marker = evil
    with pytest.raises(UnsafePickle):
        open_model(path)
    assert not marker.exists()
    seen: list[list[str]] = []
    live = open_model(path, trust=True, on_globals=seen.append)
    assert "evilmod.Evil" in seen[0] and marker.exists()
    assert live.module.weight.shape == (3, 2)


def test_a_trusted_pickle_can_fill_a_model_built_from_code(cli, save_pt):
    torch.manual_seed(0)
    net = live_models.mlp()
    path = save_pt({"model": net, "epoch": 3})
    refused = cli("list", path, "--model", f"{MODELS}:mlp")
    assert refused.exit_code == 4
    live = open_model(path, model=f"{MODELS}:mlp", trust=True)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in live.module.state_dict().items())
    wrapped = cli("list", path, "--trust", "-f", "names")
    assert wrapped.stdout.split() == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_trust_is_not_needed_for_plain_tensors(cli, samples):
    result = cli("list", samples / "mlp.pt", "--trust", "-f", "names")
    assert result.exit_code == 0
    assert result.stdout.split() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "--trust" not in result.stderr


def test_legacy_full_pickles_are_scanned_and_loaded(save_pt, cli):
    path = save_pt(live_models.mlp(), legacy=True)
    names = checkpoint_globals(path)
    assert "torch.nn.modules.container.Sequential" in names
    assert "torch.nn.modules.linear.Linear" in names
    assert cli("list", path).exit_code == 4
    assert cli("list", path, "--trust", "-f", "names").stdout.split()[0] == "0.weight"


def test_a_pickle_from_standard_input(cli, save_pt):
    data = save_pt(live_models.mlp()).read_bytes()
    assert cli("list", input=data).exit_code == 4
    result = cli("list", "-", "--trust", "-f", "names", input=data)
    assert result.exit_code == 0 and result.stdout.split()[0] == "0.weight"


def test_globals_are_named_through_the_memo_in_newer_protocols():
    data = pickle.dumps([collections.Counter(), collections.OrderedDict(), collections.Counter()], protocol=4)
    assert pickle_globals(data) == ["collections.Counter", "collections.OrderedDict"]
    protocol2 = pickle.dumps({1, 2}, protocol=2)
    assert pickle_globals(protocol2) == ["builtins.set"]  # written as __builtin__.set
