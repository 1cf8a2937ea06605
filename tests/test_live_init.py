"""init --model: exact defaults by reset_parameters(), lazy layers materialized, files kept whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

import live_models
import pytest
import torch
from live_models import spec
from safetensors.torch import load_file

from paramctl import read_checkpoint


def run_init(cli, *args):
    result = cli("init", *args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_default_of_a_model_from_code_equals_a_fresh_module_with_the_same_seed(cli, tmp_path):
    out = tmp_path / "net.pt"
    report = run_init(cli, "--model", spec("Mixed"), "--scheme", "default", "--seed", "3", "-o", out)
    torch.manual_seed(3)
    fresh = live_models.Mixed().state_dict()
    written = load(out)
    assert list(written) == list(fresh)
    assert all(torch.equal(written[name], value) for name, value in fresh.items())
    actions = {row["name"]: row["action"] for row in report["tensors"]}
    assert actions["used.weight"] == "Linear.reset_parameters()"
    assert actions["bn.running_var"] == "BatchNorm1d.reset_parameters()"
    assert report["seed"] == 3 and report["model"] == f"--model {spec('Mixed')}"


def test_default_on_a_checkpoint_resets_only_the_selection(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    args = (samples / "mlp.pt", "--model", spec("mlp"), "--scheme", "default", "-m", "*.weight")
    run_init(cli, *args, "--seed", "5", "-o", out)
    original, written = load(samples / "mlp.pt"), load(out)
    torch.manual_seed(5)
    fresh = live_models.mlp().state_dict()
    for name in ("0.weight", "2.weight"):
        assert torch.equal(written[name], fresh[name])
    for name in ("0.bias", "2.bias"):
        assert torch.equal(written[name], original[name])
    # unselected bytes are the input's own bytes
    before, after = read_checkpoint(samples / "mlp.pt"), read_checkpoint(out)
    assert [e.name for e in after.entries] == [e.name for e in before.entries]


def test_a_training_checkpoint_keeps_its_optimizer_and_epoch(cli, samples, tmp_path):
    out = tmp_path / "training.pt"
    run_init(cli, samples / "training.pt", "--model", spec("mlp"), "--scheme", "default", "-o", out)
    original, written = load(samples / "training.pt"), load(out)
    assert written["epoch"] == 3
    assert written["optimizer"]["param_groups"] == original["optimizer"]["param_groups"]
    for index, state in original["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(written["optimizer"]["state"][index][name], value)
    assert not torch.equal(written["state_dict"]["0.weight"], original["state_dict"]["0.weight"])


def test_random_schemes_follow_a_seeded_generator_in_module_order(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    args = ("--model", spec("mlp"), "--scheme", "normal(std=0.02)", "-m", "*.weight", "--seed", "9")
    run_init(cli, samples / "mlp.pt", *args, "-o", out)
    generator = torch.Generator().manual_seed(9)
    first = torch.nn.init.normal_(torch.empty(3, 4), std=0.02, generator=generator)
    second = torch.nn.init.normal_(torch.empty(1, 3), std=0.02, generator=generator)
    written = load(out)
    assert torch.equal(written["0.weight"], first) and torch.equal(written["2.weight"], second)


def test_the_lessons_deferred_initialization_from_the_command_line(cli, tmp_path):
    out = tmp_path / "net.pt"
    report = run_init(cli, "--model", spec("lazy"), "--input-shape", "2,20", "--seed", "4", "-o", out)
    assert report["materialized"] == ["0.weight", "0.bias"]
    written = load(out)
    assert {name: list(value.shape) for name, value in written.items()} == {
        "0.weight": [256, 20],
        "0.bias": [256],
        "2.weight": [10, 256],
        "2.bias": [10],
    }
    torch.manual_seed(4)
    net = live_models.lazy()
    x = torch.rand(2, 20)
    with torch.no_grad():
        net.eval()(x)
    assert all(torch.equal(written[name], value) for name, value in net.state_dict().items())


def test_a_lazy_model_needs_an_input_shape(cli, tmp_path):
    result = cli("init", "--model", spec("lazy"), "--scheme", "default", "-o", tmp_path / "x.pt")
    assert result.exit_code == 2
    assert "give --input-shape" in result.stderr
    assert not (tmp_path / "x.pt").exists()


def test_a_lazy_model_with_a_scheme_initializes_the_materialized_shapes(cli, tmp_path):
    out = tmp_path / "net.pt"
    args = ("--model", spec("lazy"), "--input-shape", "2,20", "--scheme", "zeros", "-m", "0.*")
    run_init(cli, *args, "-o", out)
    assert torch.equal(load(out)["0.weight"], torch.zeros(256, 20))


def test_dry_run_shows_the_owners_and_writes_nothing(cli, samples, tmp_path):
    result = cli(
        "init", samples / "mlp.pt", "--model", spec("mlp"), "--scheme", "default", "-n", "-f", "json"
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [t["action"] for t in plan["tensors"]] == ["Linear.reset_parameters()"] * 4
    assert plan["change"] == "default: each module's reset_parameters()"
    assert list(tmp_path.iterdir()) == []


def test_a_shared_layer_is_changed_once_and_stays_shared(cli, tmp_path):
    out = tmp_path / "tied.pt"
    report = run_init(cli, "--model", spec("tied"), "--set", "2", "-o", out)
    assert [(row["name"], row["shared_with"]) for row in report["tensors"]] == [("0.weight", ["1.weight"])]
    rows = json.loads(cli("list", out, "-f", "json").stdout)["tensors"]
    assert rows[0]["shared_with"] == ["1.weight"]
    assert load(out)["1.weight"].item() == 2.0
    st = tmp_path / "tied.safetensors"
    run_init(cli, "--model", spec("tied"), "--scale", "2", "-o", st)
    assert load_file(st)["0.weight"].item() == 6.0  # 3 times 2, stored once with its alias recorded
    names = cli("list", st, "-f", "names").stdout.split()
    assert names == ["0.weight", "1.weight"]


def test_a_trusted_full_pickle_becomes_a_state_dict(cli, save_pt, tmp_path):
    torch.manual_seed(0)
    net = live_models.mlp()
    path = save_pt(net)
    refused = cli("init", path, "--scheme", "zeros", "-m", "*.bias", "-o", tmp_path / "x.pt")
    assert refused.exit_code == 4 and not (tmp_path / "x.pt").exists()
    out = tmp_path / "state.safetensors"
    result = cli("init", path, "--trust", "--scheme", "zeros", "-m", "*.bias", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "torch.nn.modules.container.Sequential" in result.stderr
    written = load_file(out)
    assert torch.equal(written["0.weight"], net[0].weight.detach())
    assert torch.equal(written["0.bias"], torch.zeros(3))


def test_the_checkpoint_can_go_to_standard_output(cli):
    result = cli("init", "--model", spec("mlp"), "--set", "1", "-q")
    assert result.exit_code == 0, result.stderr
    written = torch.load(io.BytesIO(result.output_bytes), weights_only=True)
    assert all(torch.equal(value, torch.ones_like(value)) for value in written.values())


def test_in_place_with_a_backup(cli, samples, tmp_path):
    path = tmp_path / "mlp.pt"
    path.write_bytes((samples / "mlp.pt").read_bytes())
    run_init(cli, path, "--model", spec("mlp"), "--add", "1", "-m", "*.bias", "--in-place", "--backup")
    assert (tmp_path / "mlp.pt.bak").read_bytes() == (samples / "mlp.pt").read_bytes()
    original = load(samples / "mlp.pt")
    assert torch.equal(load(path)["0.bias"], original["0.bias"] + 1)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--from", "x.pt"), 2, "--from copies between files"),
        (("--all",), 2, "--all"),
        (("--scheme", "xavier_uniform"), 3, "needs a 2-D or more tensor, this one is 1-D: 0.bias, 2.bias"),
        (("--scheme", "gaussian"), 2, "unknown scheme"),
        (("-m", "*.nope", "--set", "0"), 1, "no tensor matches"),
    ],
)
def test_errors_are_one_line_and_write_nothing(cli, tmp_path, args, code, message):
    result = cli("init", "--model", spec("mlp"), *args, "-o", tmp_path / "x.pt")
    assert result.exit_code == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


def test_skip_incompatible_leaves_what_does_not_fit(cli, tmp_path):
    out = tmp_path / "x.pt"
    report = run_init(
        cli, "--model", spec("mlp"), "--scheme", "xavier_uniform", "--skip-incompatible", "-o", out
    )
    assert [row["name"] for row in report["tensors"]] == ["0.weight", "2.weight"]
    assert {row["name"] for row in report["skipped"]} == {"0.bias", "2.bias"}


def test_a_checkpoint_needs_a_change(cli, samples, tmp_path):
    result = cli("init", samples / "mlp.pt", "--model", spec("mlp"), "-o", tmp_path / "x.pt")
    assert result.exit_code == 2 and "nothing to do" in result.stderr


def test_provenance_names_the_model(cli, tmp_path):
    out = tmp_path / "x.safetensors"
    run_init(cli, "--model", spec("mlp"), "--scheme", "default", "--seed", "1", "-o", out)
    from safetensors import safe_open

    with safe_open(out, "pt") as file:
        record = json.loads(file.metadata()["paramctl"])
    step = record[-1]["changes"][0] if isinstance(record, list) else record["changes"][0]
    assert step["model"] == f"--model {spec('mlp')}" and step["seed"] == 1
