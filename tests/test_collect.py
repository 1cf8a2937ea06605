"""paramctl.collect: Gluon's collect_params and initialize(force_reinit=...) for torch modules."""

from __future__ import annotations

import live_models
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import paramctl
from paramctl.errors import AlreadyInitialized, IncompatibleTensors, NothingSelected, UsageError


def gluon_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))


def snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_the_repr_reads_like_gluons():
    net = gluon_net()
    assert repr(paramctl.collect(net)) == (
        "Sequential (\n"
        "  Parameter 0.weight (shape=(256, 20), dtype=float32)\n"
        "  Parameter 0.bias (shape=(256,), dtype=float32)\n"
        "  Parameter 2.weight (shape=(10, 256), dtype=float32)\n"
        "  Parameter 2.bias (shape=(10,), dtype=float32)\n"
        ")"
    )
    assert list(paramctl.collect(net, ".*weight")) == ["0.weight", "2.weight"]
    lazy = paramctl.collect(live_models.lazy(), "^0")
    assert repr(lazy["0.weight"]) == "Parameter 0.weight (shape=unknown, dtype=float32, uninitialized)"


def test_initialized_parameters_are_refused_without_force_reinit():
    net = gluon_net()
    before = snapshot(net)
    with pytest.raises(AlreadyInitialized, match="force_reinit=True"):
        paramctl.collect(net, ".*weight").initialize("normal", std=0.01)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_force_reinit_equals_torch_init_with_the_same_generator():
    net = gluon_net()
    before = snapshot(net)
    paramctl.collect(net, ".*weight").initialize("normal", std=0.01, seed=42, force_reinit=True)
    generator = torch.Generator().manual_seed(42)
    expected_0 = nn.init.normal_(torch.empty(256, 20), std=0.01, generator=generator)
    expected_2 = nn.init.normal_(torch.empty(10, 256), std=0.01, generator=generator)
    assert torch.equal(net[0].weight, expected_0) and torch.equal(net[2].weight, expected_2)
    assert torch.equal(net[0].bias, before["0.bias"]) and torch.equal(net[2].bias, before["2.bias"])
    assert abs(float(net[0].weight.detach().std()) - 0.01) < 0.001


def test_constant_and_xavier_like_the_lessons():
    net = gluon_net()
    weights = paramctl.collect(net, ".*weight")
    weights.initialize("constant", val=1.0, force_reinit=True)
    assert torch.equal(net[0].weight[0], torch.ones(20))
    hidden = paramctl.collect(net, r"^0\.weight$")
    hidden.initialize("xavier_uniform", force_reinit=True, generator=torch.Generator().manual_seed(0))
    expected = nn.init.xavier_uniform_(torch.empty(256, 20), generator=torch.Generator().manual_seed(0))
    assert torch.equal(net[0].weight, expected)
    assert torch.equal(net[2].weight, torch.ones(10, 256))


def test_a_scheme_that_does_not_fit_changes_nothing():
    net = gluon_net()
    before = snapshot(net)
    with pytest.raises(
        IncompatibleTensors, match=r"needs a 2-D or more tensor, this one is 1-D: 0\.bias, 2\.bias"
    ):
        paramctl.collect(net).initialize("xavier_uniform", force_reinit=True)
    with pytest.raises(UsageError, match=r"no parameter 'sigma' \(it takes mean, std\)"):
        paramctl.collect(net).initialize("normal", sigma=0.01, force_reinit=True)
    with pytest.raises(UsageError, match="unknown scheme"):
        paramctl.collect(net).initialize("gaussian", force_reinit=True)
    with pytest.raises(UsageError, match="constant needs val"):
        paramctl.collect(net).initialize("constant", force_reinit=True)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def half_zero_init(tensor: torch.Tensor, generator: torch.Generator | None) -> None:
    """The lessons' custom init: zero with probability 1/2, else uniform on ±[5, 10]."""
    tensor.uniform_(-10, 10, generator=generator)
    tensor *= (tensor.abs() >= 5).to(tensor.dtype)


def test_scheme_text_and_float16_follow_init():
    net = nn.Linear(8, 4).half()
    paramctl.collect(net, "weight").initialize("normal(std=0.02)", seed=5, force_reinit=True)
    expected = nn.init.normal_(torch.empty(4, 8), std=0.02, generator=torch.Generator().manual_seed(5))
    assert net.weight.dtype == torch.float16
    assert torch.equal(net.weight, expected.half())


def test_a_custom_function_is_a_scheme():
    net = gluon_net()
    paramctl.collect(net, ".*weight").initialize(half_zero_init, seed=0, force_reinit=True)
    values = net[0].weight.detach().flatten()
    nonzero = values[values != 0]
    assert 0.35 < float((values == 0).float().mean()) < 0.65
    assert bool(((nonzero.abs() >= 5) & (nonzero.abs() <= 10)).all())


def test_default_is_reset_parameters_equal_to_a_fresh_module_with_the_same_seed():
    net = gluon_net()
    paramctl.collect(net, ".*weight").initialize("constant", val=0.0, force_reinit=True)
    paramctl.collect(net).initialize("default", seed=3, force_reinit=True)
    torch.manual_seed(3)
    fresh = gluon_net()
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in net.state_dict().items())


def test_default_on_some_parameters_keeps_the_rest_of_their_layer():
    net = live_models.Mixed()
    net.train()
    net(torch.rand(8, 4))  # moves the batch-norm running statistics
    before = snapshot(net)
    paramctl.collect(net, r"\.weight$", exclude="frozen*").initialize("default", seed=0, force_reinit=True)
    after = net.state_dict()
    for name in ("used.bias", "bn.bias", "bn.running_mean", "bn.running_var", "frozen.weight"):
        assert torch.equal(after[name], before[name]), name
    assert torch.equal(after["bn.weight"], torch.ones(6))
    assert not torch.equal(after["used.weight"], before["used.weight"])


def test_lazy_parameters_are_initialized_when_materialized():
    net = live_models.lazy()
    paramctl.collect(net, r"^0\.").initialize("constant", val=2.0)  # no force_reinit needed
    net(torch.rand(2, 20))
    assert torch.equal(net[0].weight, torch.full((256, 20), 2.0))
    assert torch.equal(net[0].bias, torch.full((256,), 2.0))
    net[0].weight.data.zero_()
    net(torch.rand(2, 20))  # once only
    assert torch.equal(net[0].weight, torch.zeros(256, 20))


def test_a_deferred_scheme_does_not_overwrite_loaded_values():
    source = live_models.lazy()
    source(torch.rand(2, 5))
    net = live_models.lazy()
    paramctl.collect(net, r"^0\.").initialize("zeros")
    net.load_state_dict(source.state_dict())
    net(torch.rand(2, 5))
    assert torch.equal(net[0].weight, source[0].weight)


def test_shared_parameters_are_one_entry_under_both_names():
    weights = paramctl.collect(live_models.tied())
    assert weights.shared() == [("0.weight", "1.weight")]
    assert len(weights) == 1 and weights.names() == ["0.weight", "1.weight"]
    assert weights["1.weight"] is weights["0.weight"]
    assert repr(weights["0.weight"]).endswith("shared with 1.weight)")
    second = paramctl.collect(live_models.tied(), r"^1\.")
    assert list(second) == ["0.weight"]


def test_set_data_is_the_lessons_param_data_plus_one():
    net = gluon_net()
    hidden = paramctl.collect(net)["0.bias"]
    before = hidden.data().clone()
    hidden.set_data(hidden.data() + 1)
    assert torch.equal(net[0].bias, before + 1)
    assert hidden.grad() is None


def test_a_selection_of_nothing_names_close_names():
    with pytest.raises(NothingSelected, match="close names"):
        paramctl.collect(gluon_net(), "wieght$")


@settings(max_examples=25, deadline=None)
@given(
    picks=st.lists(st.sampled_from(["0.weight", "0.bias", "2.weight", "2.bias"]), min_size=1, unique=True),
    scheme=st.sampled_from(["zeros", "ones", "normal", "uniform", "default"]),
)
def test_unselected_parameters_stay_identical(picks, scheme):
    net = gluon_net()
    before = snapshot(net)
    regex = "^(" + "|".join(name.replace(".", r"\.") for name in picks) + ")$"
    paramctl.collect(net, regex).initialize(scheme, force_reinit=True, seed=1)
    for name, value in net.state_dict().items():
        if name not in picks:
            assert torch.equal(value, before[name]), name
