"""paramctl grads: gradients by a probe pass, equal to the hand-written forward/backward."""

from __future__ import annotations

import json

import live_models
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from live_models import spec

from paramctl.live.inputs import InputSpec
from paramctl.live.model import ModelSource
from paramctl.live.probe import GradStats, probe_gradients, probe_model


def grads_json(cli, *args):
    result = cli("grads", *args, "-f", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def by_hand(seed: int, shape=(2, 4), factory=live_models.mlp, reduce="sum", train=True):
    """The lessons' script: seed, build, X = torch.rand, Y = net(X).sum(), Y.backward()."""
    torch.manual_seed(seed)
    net = factory()
    net.train(train)
    x = torch.rand(*shape)
    y = net(x)
    (y.sum() if reduce == "sum" else y.mean()).backward()
    return net, float((y.sum() if reduce == "sum" else y.mean()).detach())


def expected_row(param: torch.nn.Parameter) -> dict[str, float]:
    grad = param.grad
    return {
        "grad_norm": float(torch.linalg.vector_norm(grad)),
        "grad_mean": float(grad.mean()),
        "grad_max_abs": float(grad.abs().max()),
        "grad_zeros": float((grad == 0).sum()) / grad.numel(),
    }


def test_the_mlp_probe_equals_the_hand_written_backward(cli):
    document = grads_json(cli, "--model", spec("mlp"), "--input-shape", "2,4", "--seed", "7")
    net, loss = by_hand(7)
    assert document["loss_value"] == loss
    assert document["seed"] == 7 and document["mode"] == "train"
    assert [row["name"] for row in document["parameters"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for row, (name, param) in zip(document["parameters"], net.named_parameters(), strict=True):
        assert row["name"] == name and row["status"] == "ok"
        assert {k: row[k] for k in expected_row(param)} == expected_row(param)
    assert any(row["grad_norm"] > 0 for row in document["parameters"][:2])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 5), hidden=st.integers(1, 6))
def test_any_seed_and_size_matches_the_hand_written_backward(seed, batch, hidden):
    probe = probe_model(
        ModelSource(model=spec("mlp"), model_args={"hidden": hidden}),
        InputSpec(((batch, 4),)),
        seed=seed,
    )
    net, loss = by_hand(seed, (batch, 4), lambda: live_models.mlp(hidden))
    assert probe.loss_value == loss
    for row, (_, param) in zip(probe.rows, net.named_parameters(), strict=True):
        assert row.stats == GradStats.of(param.grad)


def test_the_shared_layer_gets_gradient_six_shown_once_with_both_names(cli):
    document = grads_json(cli, "--model", spec("tied"), "--input-shape", "1,1", "--input-value", "1")
    assert document["loss_value"] == 9.0
    [row] = document["parameters"]
    assert row["name"] == "0.weight" and row["shared_with"] == ["1.weight"]
    assert row["grad_mean"] == 6.0 and row["grad_norm"] == 6.0
    # selecting the second name finds the same parameter
    again = grads_json(
        cli, "--model", spec("tied"), "--input-shape", "1,1", "--input-value", "1", "-m", "1.*"
    )
    assert again["parameters"] == [row]


def test_unused_and_frozen_parameters_are_marked(cli):
    document = grads_json(cli, "--model", spec("Mixed"), "--input-shape", "8,4", "--seed", "0")
    status = {row["name"]: row["status"] for row in document["parameters"]}
    assert status == {
        "used.weight": "ok",
        "used.bias": "ok",
        "unused.weight": "unused",
        "unused.bias": "unused",
        "bn.weight": "ok",
        "bn.bias": "ok",
        "frozen.weight": "frozen",
        "frozen.bias": "frozen",
    }
    assert document["counts"] == {"ok": 4, "unused": 2, "frozen": 2}
    unused = next(row for row in document["parameters"] if row["name"] == "unused.weight")
    assert unused["grad_norm"] is None
    table = cli(
        "grads", "--model", spec("Mixed"), "--input-shape", "8,4", "--seed", "0", "-f", "table"
    ).stdout
    assert "4 with gradient, 2 unused (no gradient reached them), 2 frozen (requires_grad=False)" in table
    assert "loss sum = " in table and "(train mode, seed 0)" in table


def test_the_probe_leaves_running_statistics_and_modes_as_they_were():
    net = live_models.Mixed()
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    probe = probe_gradients(net, input_shape=(8, 4), seed=1, mode="train")
    assert probe.mode == "train"
    assert not any(m.training for m in net.modules())
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert net.used.weight.grad is not None  # the gradients stay, as after a hand-written backward


def test_eval_mode_turns_dropout_off(cli):
    args = ("--model", spec("Mixed"), "--input-shape", "8,4", "--seed", "1")
    evaluated, trained = grads_json(cli, *args, "--eval"), grads_json(cli, *args)
    assert (evaluated["mode"], trained["mode"]) == ("eval", "train")
    net, _ = by_hand(1, (8, 4), live_models.Mixed, train=False)
    row = next(r for r in evaluated["parameters"] if r["name"] == "used.weight")
    assert row["grad_norm"] == expected_row(net.used.weight)["grad_norm"]
    assert evaluated["parameters"] != trained["parameters"]


def test_mean_and_custom_losses(cli):
    mean = grads_json(cli, "--model", spec("mlp"), "--input-shape", "2,4", "--seed", "3", "--loss", "mean")
    _, loss = by_hand(3, reduce="mean")
    assert mean["loss"] == "mean" and mean["loss_value"] == loss
    custom = grads_json(
        cli, "--model", spec("mlp"), "--input-shape", "2,4", "--seed", "3", "--loss", spec("squares")
    )
    torch.manual_seed(3)
    net = live_models.mlp()
    assert custom["loss_value"] == float((net(torch.rand(2, 4)) ** 2).sum().detach())
    bad = cli("grads", "--model", spec("mlp"), "--input-shape", "2,4", "--loss", spec("not_scalar"))
    assert bad.exit_code == 3 and "single-element tensor" in bad.stderr
    unknown = cli("grads", "--model", spec("mlp"), "--input-shape", "2,4", "--loss", "median")
    assert unknown.exit_code == 2


def test_inputs_from_a_file_positional_and_by_keyword(cli, tmp_path):
    x = torch.rand(2, 4)
    torch.save(x, tmp_path / "x.pt")
    torch.manual_seed(0)
    document = grads_json(cli, "--model", spec("mlp"), "--input", tmp_path / "x.pt", "--seed", "0")
    torch.manual_seed(0)
    net = live_models.mlp()
    net(x).sum().backward()
    assert document["inputs"] == "x: [2, 4] float32"
    assert document["parameters"][0]["grad_norm"] == expected_row(net[0].weight)["grad_norm"]

    torch.save((torch.rand(2, 3), torch.rand(2, 5)), tmp_path / "pair.pt")
    torch.save({"x": torch.rand(2, 3), "y": torch.rand(2, 5)}, tmp_path / "kw.pt")
    for name in ("pair.pt", "kw.pt"):
        result = grads_json(cli, "--model", spec("TwoInputs"), "--input", tmp_path / name)
        assert [row["status"] for row in result["parameters"]] == ["ok"] * 4
    two = grads_json(cli, "--model", spec("TwoInputs"), "--input-shape", "2,3", "--input-shape", "2,5")
    assert two["inputs"] == "x0: [2, 3] float32, x1: [2, 5] float32"


def test_without_a_seed_the_seed_used_is_reported_and_repeats(cli):
    first = grads_json(cli, "--model", spec("mlp"), "--input-shape", "2,4")
    assert isinstance(first["seed"], int)
    again = grads_json(cli, "--model", spec("mlp"), "--input-shape", "2,4", "--seed", str(first["seed"]))
    assert again == first


def test_list_grads_is_the_grads_report(cli):
    args = ("--model", spec("mlp"), "--input-shape", "2,4", "--seed", "5", "-f", "json")
    assert cli("list", "--grads", *args).stdout == cli("grads", *args).stdout


def test_a_lazy_model_is_materialized_by_the_probe(cli):
    document = grads_json(cli, "--model", spec("lazy"), "--input-shape", "2,20", "--seed", "0")
    assert document["parameters"][0]["shape"] == [256, 20]
    assert all(row["status"] == "ok" for row in document["parameters"])


def test_input_problems_are_one_line_usage_errors(cli):
    wrong = cli("grads", "--model", spec("mlp"), "--input-shape", "2,5")
    assert wrong.exit_code == 2
    assert "the forward pass failed with x: [2, 5] float32" in wrong.stderr
    assert wrong.stderr.count("\n") == 1
    assert cli("grads", "--model", spec("mlp")).exit_code == 2
    assert cli("grads", "--model", spec("mlp"), "--input-shape", "2,a").exit_code == 2
    assert cli("grads", "--model", spec("mlp"), "--input-shape", "2,4", "--input", "x.pt").exit_code == 2
    assert cli("grads", "--model", spec("mlp"), "--input", "no-such.pt").exit_code == 2


def test_the_probe_on_a_module_in_python():
    linear = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(linear.weight, 3.0)
    probe = probe_gradients(torch.nn.Sequential(linear, linear), torch.ones(1, 1))
    assert probe.row("1.weight").stats == GradStats(6.0, 6.0, 6.0, 0.0)
    assert linear.weight.grad.item() == 6.0
    with pytest.raises(KeyError):
        probe.row("2.weight")
