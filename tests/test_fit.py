"""paramctl diff CKPT --model SPEC: the checkpoint's names and shapes against the model's
state_dict, and the convert command that renames it to fit."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from paramctl.compare.fit import best_renaming, fit_model
from paramctl.rename import NameMap

HERE = Path(__file__).resolve().parent
MODELS = str(HERE / "fit_models.py")
sys_path = str(HERE)


@pytest.fixture
def classifier():
    import sys

    sys.path.insert(0, sys_path)
    from fit_models import classifier

    torch.manual_seed(0)
    return classifier()


def fit_json(cli, path, factory, *args):
    result = cli("diff", path, "--model", f"{MODELS}:{factory}", *args, "-f", "json")
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def apply_command(command: str, state: dict) -> dict:
    """What the printed ``paramctl convert`` command does to the names."""
    words = shlex.split(command)
    assert words[:2] == ["paramctl", "convert"]
    options = words[4:]
    strips = [options[i + 1] for i, word in enumerate(options) if word == "--strip-prefix"]
    renames = [options[i + 1] for i, word in enumerate(options) if word == "--rename"]
    names = NameMap.parse(strip_prefixes=strips, renames=renames)
    return {names(name): value for name, value in state.items()}


def test_a_data_parallel_checkpoint_fits_once_module_is_cut(cli, save_pt, classifier):
    path = save_pt(nn.DataParallel(classifier).state_dict(), "dp.pt")
    code, report = fit_json(cli, path, "classifier")
    assert code == 1  # load_state_dict would refuse it as saved
    assert report["fits"] and report["matched"] == 9 and report["matched_as_saved"] == 0
    assert report["renaming"] == ["--strip-prefix", "module."]
    assert (
        report["command"] == f"paramctl convert {path} {path.with_name('dp.fit.pt')} --strip-prefix module."
    )
    # The command's renaming is the one load_state_dict needs, strictly.
    renamed = apply_command(report["command"], torch.load(path, weights_only=True))
    fresh = type(classifier)(*classifier.children())
    fresh.load_state_dict(renamed, strict=True)


def test_the_table_says_it_and_prints_the_command(cli, save_pt, classifier):
    path = save_pt(nn.DataParallel(classifier).state_dict(), "dp.pt")
    result = cli("diff", path, "--model", f"{MODELS}:classifier", "-f", "table", env={"COLUMNS": "200"})
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[-3:] == [
        f"{path} fits the model once renamed: 9 names (0 as saved)",
        "renamed: --strip-prefix module.; write the renamed checkpoint with:",
        f"  paramctl convert {path} {path.with_name('dp.fit.pt')} --strip-prefix module.",
    ]


def test_a_changed_head_size_is_a_shape_mismatch_no_renaming_fixes(cli, save_pt, classifier):
    path = save_pt(classifier.state_dict(), "ten.pt")
    code, report = fit_json(cli, path, "classifier", "--model-arg", "classes=5")
    assert code == 1 and not report["fits"]
    assert report["command"] is None and report["renaming"] == []
    assert report["mismatched"] == [
        {
            "name": "5.weight",
            "checkpoint_name": "5.weight",
            "checkpoint_shape": [10, 4],
            "model_shape": [5, 4],
        },
        {"name": "5.bias", "checkpoint_name": "5.bias", "checkpoint_shape": [10], "model_shape": [5]},
    ]
    assert report["missing"] == [] and report["unexpected"] == []
    assert report["summary"] == f"{path} does not fit the model: 2 shape mismatches (7 of 9 names fit)"
    tsv = cli("diff", path, "--model", f"{MODELS}:classifier", "--model-arg", "classes=5")
    assert tsv.stdout.splitlines() == [
        "name\tproblem\tcheckpoint_name\tcheckpoint_shape\tmodel_shape",
        "5.weight\tshape\t\t[10, 4]\t[5, 4]",
        "5.bias\tshape\t\t[10]\t[5]",
    ]
    assert "no renaming fixes a shape mismatch" in tsv.stderr


def test_a_data_parallel_checkpoint_with_another_head_needs_both(cli, save_pt, classifier):
    path = save_pt(nn.DataParallel(classifier).state_dict(), "dp.pt")
    code, report = fit_json(cli, path, "classifier", "--model-arg", "classes=3")
    assert code == 1 and report["renaming"] == ["--strip-prefix", "module."]
    assert [m["checkpoint_name"] for m in report["mismatched"]] == ["module.5.weight", "module.5.bias"]


def test_a_checkpoint_that_fits_exits_0(cli, save_pt, classifier):
    path = save_pt(classifier.state_dict(), "m.pt")
    result = cli("diff", path, "--model", f"{MODELS}:classifier")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"{path} fits the model: 9 names\n"


def test_a_lightning_checkpoint_loses_its_model_prefix(cli, save_pt, classifier):
    # Lightning keeps the LightningModule's state_dict: its attribute (model.) on every name.
    state = {f"model.{k}": v for k, v in classifier.state_dict().items()}
    path = save_pt({"state_dict": state, "epoch": 3, "optimizer_states": []}, "last.ckpt")
    code, report = fit_json(cli, path, "classifier")
    assert code == 1
    assert report["renaming"] == ["--strip-prefix", "model."] and report["fits"]
    assert report["command"].endswith("last.fit.ckpt --strip-prefix model.")
    code, chosen = fit_json(cli, path, "classifier", "--key", "state_dict")
    assert code == 1 and chosen["command"].endswith("last.fit.ckpt --key state_dict --strip-prefix model.")


def test_compiled_and_data_parallel_prefixes_are_cut_together(cli, save_pt, classifier):
    state = {f"module._orig_mod.{k}": v for k, v in classifier.state_dict().items()}
    code, report = fit_json(cli, save_pt(state, "c.pt"), "classifier")
    assert code == 1
    assert report["fits"] and report["renaming"] == ["--strip-prefix", "module._orig_mod."]


def test_a_prefix_the_model_has_is_added(cli, save_pt, classifier):
    code, report = fit_json(cli, save_pt(classifier.state_dict(), "m.pt"), "Wrapped")
    assert code == 1
    assert report["fits"] and report["renaming"] == ["--rename", "^=backbone."]
    back = fit_json(
        cli, save_pt({f"backbone.{k}": v for k, v in classifier.state_dict().items()}, "w.pt"), "classifier"
    )
    assert back[1]["renaming"] == ["--strip-prefix", "backbone."]


def test_a_prefix_swapped_for_another(cli, save_pt, classifier):
    state = {f"module.{k}": v for k, v in classifier.state_dict().items()}
    code, report = fit_json(cli, save_pt(state, "dp.pt"), "Wrapped")
    assert code == 1
    assert report["fits"] and report["renaming"] == ["--rename", r"^module\.=backbone."]
    assert set(apply_command(report["command"], state)) == {f"backbone.{k}" for k in classifier.state_dict()}


def test_old_normalization_names_are_renamed(save_pt, classifier):
    expected = {k: tuple(v.shape) for k, v in classifier.state_dict().items()}
    old = {k.replace("1.weight", "1.gamma").replace("1.bias", "1.beta"): s for k, s in expected.items()}
    fit = fit_model(old, expected, source="old.pt")
    assert fit.fits and fit.renaming.options() == [
        "--rename",
        r"\.gamma$=.weight",
        "--rename",
        r"\.beta$=.bias",
    ]


def test_missing_and_unexpected_names_are_listed(cli, save_pt, classifier):
    state = classifier.state_dict()
    del state["1.running_var"]
    state["aux.weight"] = torch.zeros(2)
    code, report = fit_json(cli, save_pt(state, "m.pt"), "classifier")
    assert code == 1 and report["missing"] == ["1.running_var"]
    assert report["unexpected"] == [{"name": "aux.weight", "checkpoint_name": "aux.weight"}]
    assert report["command"] is None


def test_a_renaming_given_is_used_as_given(cli, save_pt, classifier):
    path = save_pt(nn.DataParallel(classifier).state_dict(), "dp.pt")
    code, report = fit_json(cli, path, "classifier", "--rename", "^module\\.=")
    assert code == 1
    assert report["fits"] and not report["renaming_found"]
    assert report["renaming"] == ["--rename", "^module\\.="]


def test_a_lazy_model_matches_by_name(cli, save_pt):
    state = nn.Sequential(nn.Linear(7, 3), nn.ReLU(), nn.Linear(3, 1)).state_dict()
    code, report = fit_json(cli, save_pt(state, "m.pt"), "lazy")
    assert code == 0 and report["fits"]


def test_a_full_pickled_module_needs_trust(cli, save_pt, classifier):
    path = save_pt(nn.DataParallel(classifier), "whole.pt")
    refused = cli("diff", path, "--model", f"{MODELS}:classifier")
    assert refused.exit_code == 4 and "--trust" in refused.stderr
    code, report = fit_json(cli, path, "classifier", "--trust")
    assert code == 1
    assert report["fits"] and report["renaming"] == ["--strip-prefix", "module."]


def test_usage_errors(cli, save_pt, classifier):
    path = save_pt(classifier.state_dict(), "m.pt")
    assert cli("diff", path, path, "--model", f"{MODELS}:classifier").exit_code == 2
    assert cli("diff", path, "--model", f"{MODELS}:classifier", "--atol", "1").exit_code == 2
    assert cli("diff", path, "--model", f"{MODELS}:classifier", "-m", "5.*").exit_code == 2
    missing = cli("diff", path, "--model", f"{MODELS}:missing")
    assert missing.exit_code == 2 and "missing" in missing.stderr


@settings(max_examples=50, deadline=None)
@given(
    names=st.lists(
        st.from_regex(r"[a-z]{1,4}(\.[a-z0-9]{1,3}){0,2}", fullmatch=True),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    prefix=st.sampled_from(["module.", "model.", "_orig_mod.", "net.body."]),
)
def test_a_prefix_on_every_name_is_found(names, prefix):
    model = {name: (len(name),) for name in names}
    checkpoint = {prefix + name: shape for name, shape in model.items()}
    renaming = best_renaming(checkpoint, model)
    assert renaming.apply(list(checkpoint)) == {name: prefix + name for name in names}
    assert fit_model(checkpoint, model, source="m.pt").fits
