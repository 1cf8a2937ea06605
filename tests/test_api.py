"""paramctl.open: the Python API, and the command line it agrees with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import paramctl
from paramctl.errors import IncompatibleTensors, NothingSelected


def test_names_entries_and_sharing_are_what_list_prints(cli, samples):
    for name in ("mlp.pt", "training.pt", "tied_transformer.pt", "cnn.safetensors"):
        ckpt = paramctl.open(samples / name)
        listed = json.loads(cli("list", samples / name, "-f", "json").stdout)
        assert ckpt.names() == [row["name"] for row in listed["tensors"]]
        assert [row.to_dict() for row in ckpt.entries()] == listed["tensors"]
    assert paramctl.open(samples / "tied_transformer.pt").shared() == [("embed.weight", "lm_head.weight")]
    assert paramctl.open(samples / "mlp.pt").shared() == []


def test_nested_checkpoints_choose_their_view_like_list(samples):
    assert paramctl.open(samples / "training.pt").names()[0] == "0.weight"
    assert "optimizer.state.0.exp_avg" in paramctl.open(samples / "training.pt", all_tensors=True).names()
    assert paramctl.open(samples / "training.pt", key="optimizer.state").names()[0] == "0.step"


def test_select_takes_globs_regexes_exclusions_and_names(samples):
    ckpt = paramctl.open(samples / "cnn.safetensors")
    assert ckpt.select(glob="*.weight", exclude="fc*").names() == ["conv1.weight", "conv2.weight"]
    assert ckpt.select(regex=r"^fc[12]\.bias$").names() == ["fc1.bias", "fc2.bias"]
    assert ckpt.select(glob=["conv1.*", "fc2.bias"]).names() == ["conv1.bias", "conv1.weight", "fc2.bias"]
    assert ckpt.select(names=["fc1.weight"]).names() == ["fc1.weight"]
    with pytest.raises(NothingSelected, match="close names"):
        ckpt.select(glob="*.wieght")


def test_opening_and_listing_import_no_torch(samples):
    code = (
        "import sys, paramctl\n"
        f"ckpt = paramctl.open({str(samples / 'training.pt')!r})\n"
        "print(ckpt.names()[:1], ckpt.shared(), len(ckpt.entries()), ckpt.select(glob='*.bias').names())\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["['0.weight'] [] 4 ['0.bias', '2.bias']", "False"]


def test_init_equals_torch_init_with_the_same_generator(samples, tmp_path):
    ckpt = paramctl.open(samples / "mlp.pt")
    ckpt.select(glob="*.weight").init_("normal", std=0.01, seed=0)
    result = ckpt.save(tmp_path / "out.pt")
    generator = torch.Generator().manual_seed(0)
    first = torch.nn.init.normal_(torch.empty(3, 4), std=0.01, generator=generator)
    second = torch.nn.init.normal_(torch.empty(1, 3), std=0.01, generator=generator)
    written = torch.load(tmp_path / "out.pt", weights_only=True)
    original = torch.load(samples / "mlp.pt", weights_only=True)
    assert torch.equal(written["0.weight"], first) and torch.equal(written["2.weight"], second)
    assert torch.equal(written["0.bias"], original["0.bias"])
    assert result.format == "torch-zip" and result.changes[0].seed == 0
    assert [row.name for row in result.changes[0].changed] == ["0.weight", "2.weight"]


def test_the_api_writes_exactly_what_the_command_writes(cli, samples, tmp_path):
    args = ("--match", "*.weight", "--scheme", "normal(std=0.01)", "--seed", "0")
    assert cli("init", samples / "mlp.pt", *args, "-o", tmp_path / "cli.pt", "-q").exit_code == 0
    ckpt = paramctl.open(samples / "mlp.pt")
    ckpt.select(glob="*.weight").init_("normal(std=0.01)", seed=0)
    ckpt.save(tmp_path / "api.pt")
    assert (tmp_path / "api.pt").read_bytes() == (tmp_path / "cli.pt").read_bytes()


def test_changes_chain_and_run_in_order(samples, tmp_path):
    ckpt = paramctl.open(samples / "mlp.pt")
    ckpt.select(glob="*.bias").init_("constant", val=2.0).edit_(scale=3.0, add=1.0)
    ckpt.select(glob="0.*").edit_(add=1.0)  # the lessons' param.data += 1
    assert [plan.change.describe() for plan in ckpt.pending()] == [
        "constant(val=2.0)",
        "x * 3.0 + 1.0",
        "x + 1.0",
    ]
    assert "3 changes pending" in repr(ckpt)
    ckpt.save(tmp_path / "out.safetensors")
    from safetensors.torch import load_file

    written, original = (
        load_file(tmp_path / "out.safetensors"),
        torch.load(samples / "mlp.pt", weights_only=True),
    )
    assert torch.equal(written["0.bias"], torch.full((3,), 8.0))
    assert torch.equal(written["2.bias"], torch.full((1,), 7.0))
    assert torch.equal(written["0.weight"], original["0.weight"] + 1)
    assert torch.equal(written["2.weight"], original["2.weight"])
    assert ckpt.pending() == []


def test_a_scheme_that_does_not_fit_fails_when_asked(samples):
    ckpt = paramctl.open(samples / "mlp.pt")
    with pytest.raises(IncompatibleTensors, match=r"0\.bias"):
        ckpt.select(glob="*").init_("xavier_uniform")
    assert ckpt.pending() == []
    ckpt.select(glob="*").init_("xavier_uniform", skip_incompatible=True, seed=1)
    assert [t.name for t in ckpt.pending()[0].tensors] == ["0.weight", "2.weight"]


def test_default_infers_each_layer_and_a_fresh_seed_is_reported(samples, tmp_path):
    ckpt = paramctl.open(samples / "mlp.pt")
    ckpt.select().init_("default")
    result = ckpt.save(tmp_path / "out.pt")
    assert isinstance(result.changes[0].seed, int)
    assert result.to_dict()["changes"][0]["tensors"][0]["action"].startswith("kaiming_uniform")


def test_a_generator_of_your_own(samples, tmp_path):
    generator = torch.Generator().manual_seed(7)
    ckpt = paramctl.open(samples / "mlp.pt")
    ckpt.select(regex=r"^2\.weight$").init_("uniform", a=-1, b=1, generator=generator)
    ckpt.save(tmp_path / "out.pt")
    expected = torch.empty(1, 3).uniform_(-1, 1, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True)["2.weight"], expected)


def test_saving_over_the_source_reloads_it(samples, tmp_path):
    path = tmp_path / "mlp.pt"
    path.write_bytes((samples / "mlp.pt").read_bytes())
    ckpt = paramctl.open(path)
    ckpt.select(glob="*.bias").init_("zeros").save(path)
    assert torch.equal(torch.load(path, weights_only=True)["0.bias"], torch.zeros(3))
    ckpt.select(glob="*.weight").init_("ones").save(path, backup=tmp_path / "mlp.pt.bak")
    written = torch.load(path, weights_only=True)
    assert torch.equal(written["0.bias"], torch.zeros(3)) and torch.equal(
        written["0.weight"], torch.ones(3, 4)
    )
    assert torch.equal(torch.load(tmp_path / "mlp.pt.bak", weights_only=True)["0.bias"], torch.zeros(3))


def test_ties_stay_ties(samples, tmp_path):
    ckpt = paramctl.open(samples / "tied_transformer.pt")
    ckpt.select(glob="lm_head.weight").init_("zeros")
    ckpt.save(tmp_path / "out.pt")
    written = torch.load(tmp_path / "out.pt", weights_only=True)
    assert torch.equal(written["embed.weight"], torch.zeros(32, 8))
    assert paramctl.open(tmp_path / "out.pt").shared() == [("embed.weight", "lm_head.weight")]


SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"


@settings(max_examples=20, deadline=None)
@given(picks=st.sets(st.sampled_from(["0.weight", "0.bias", "2.weight", "2.bias"]), min_size=1))
def test_unselected_tensors_keep_their_values(tmp_path_factory, picks):
    samples = SAMPLES
    out = tmp_path_factory.mktemp("api") / "out.pt"
    ckpt = paramctl.open(samples / "mlp.pt")
    ckpt.select(names=sorted(picks)).init_("normal", seed=0)
    ckpt.save(out)
    original, written = torch.load(samples / "mlp.pt", weights_only=True), torch.load(out, weights_only=True)
    for name, value in original.items():
        assert torch.equal(written[name], value) == (name not in picks)


def test_stats_are_what_list_stats_prints(cli, samples):
    pytest.importorskip("paramctl.stats", reason="the statistics of list --stats live in paramctl.stats")
    rows = paramctl.open(samples / "mlp.pt").stats()
    document = json.loads(cli("list", samples / "mlp.pt", "--stats", "-f", "json").stdout)
    assert [row.to_dict() for row in rows] == document["tensors"]
    weight = torch.load(samples / "mlp.pt", weights_only=True)["0.weight"]
    assert rows[0].name == "0.weight" and rows[0].stats["mean"] == pytest.approx(float(weight.mean()))
