"""Schemes: every torch.nn.init function through `paramctl init`, byte-equal to torch's own
call with the same generator; the --scheme syntax; statistical sanity on large tensors."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch.nn import init

from paramctl.errors import UsageError
from paramctl.schemes.catalog import SCHEMES, CustomScheme, TorchScheme, make_scheme, parse_scheme

# (spec, the same call in torch, shape of the two selected tensors)
CASES = [
    ("uniform(a=-2, b=3)", lambda t, g: init.uniform_(t, -2.0, 3.0, generator=g), (8, 6)),
    ("uniform", lambda t, g: init.uniform_(t, generator=g), (5,)),
    ("normal(0.5, 0.1)", lambda t, g: init.normal_(t, 0.5, 0.1, generator=g), (8, 6)),
    ("normal(std=0.01)", lambda t, g: init.normal_(t, std=0.01, generator=g), (3, 4, 5)),
    (
        "trunc_normal(mean=0.1, std=2, a=-1, b=1.5)",
        lambda t, g: init.trunc_normal_(t, 0.1, 2.0, -1.0, 1.5, generator=g),
        (8, 6),
    ),
    ("constant(val=0.25)", lambda t, g: init.constant_(t, 0.25), (8, 6)),
    ("zeros", lambda t, g: init.zeros_(t), (7,)),
    ("ones", lambda t, g: init.ones_(t), (2, 2)),
    ("eye", lambda t, g: init.eye_(t), (4, 6)),
    ("dirac(groups=2)", lambda t, g: init.dirac_(t, 2), (4, 2, 3)),
    ("dirac", lambda t, g: init.dirac_(t), (3, 3, 3, 3)),
    ("xavier_uniform(gain=2)", lambda t, g: init.xavier_uniform_(t, 2.0, generator=g), (8, 6)),
    ("xavier_normal(gain=0.5)", lambda t, g: init.xavier_normal_(t, 0.5, generator=g), (4, 3, 3)),
    (
        "kaiming_uniform(a=0.1, mode=fan_out, nonlinearity=leaky_relu)",
        lambda t, g: init.kaiming_uniform_(t, 0.1, "fan_out", "leaky_relu", generator=g),
        (8, 6),
    ),
    ("kaiming_uniform(a=sqrt(5))", lambda t, g: init.kaiming_uniform_(t, math.sqrt(5), generator=g), (8, 6)),
    (
        "kaiming_normal(mode=fan_in, nonlinearity=relu)",
        lambda t, g: init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu", generator=g),
        (6, 4, 3),
    ),
    ("orthogonal(gain=1.5)", lambda t, g: init.orthogonal_(t, 1.5, generator=g), (6, 8)),
    ("orthogonal", lambda t, g: init.orthogonal_(t, generator=g), (3, 2, 2)),
    ("sparse(sparsity=0.3, std=0.02)", lambda t, g: init.sparse_(t, 0.3, 0.02, generator=g), (10, 4)),
    (
        "xavier_uniform(gain=gain(relu))",
        lambda t, g: init.xavier_uniform_(t, math.sqrt(2.0), generator=g),
        (5, 5),
    ),
]


def expected_values(shape, dtype, call, seed, count=2):
    """What torch gives: one generator over the tensors in order. torch's sparse_ also draws
    from the global generator (its randperm takes no generator=); paramctl seeds that alike."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(count):
            work = torch.empty(
                shape, dtype=torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
            )
            call(work, generator)
            out.append(work.to(dtype))
    return out


@pytest.mark.parametrize(("spec", "call", "shape"), CASES, ids=[c[0] for c in CASES])
def test_each_scheme_is_byte_equal_to_torch_with_the_same_generator(
    cli, save_pt, tmp_path, spec, call, shape
):
    keep = torch.arange(5.0)
    path = save_pt({"first": torch.full(shape, 9.0), "keep": keep, "second": torch.full(shape, 9.0)})
    out = tmp_path / "out.pt"
    result = cli("init", path, "-m", "first", "-m", "second", "--scheme", spec, "--seed", 7, "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    loaded = torch.load(out, weights_only=True)
    first, second = expected_values(shape, torch.float32, call, 7)
    assert torch.equal(loaded["first"], first)
    assert torch.equal(loaded["second"], second)
    assert torch.equal(loaded["keep"], keep)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_follow_the_float32_then_cast_rule(cli, save_pt, tmp_path, dtype):
    path = save_pt({"a": torch.zeros(16, 8, dtype=dtype), "b": torch.zeros(16, 8, dtype=dtype)})
    out = tmp_path / "out.pt"
    assert cli("init", path, "-s", "kaiming_normal", "--seed", 3, "-o", out, "-q").exit_code == 0
    loaded = torch.load(out, weights_only=True)
    call = lambda t, g: init.kaiming_normal_(t, generator=g)  # noqa: E731
    a, b = expected_values((16, 8), dtype, call, 3)
    assert loaded["a"].dtype == dtype
    assert torch.equal(loaded["a"], a) and torch.equal(loaded["b"], b)


def test_float8_is_initialized_in_float32_and_cast_back(cli, save_pt, tmp_path):
    dtype = torch.float8_e4m3fn
    path = save_pt({"w": torch.zeros(8, 8, dtype=dtype)})
    out = tmp_path / "out.pt"
    assert cli("init", path, "-s", "normal(std=0.5)", "--seed", 1, "-o", out, "-q").exit_code == 0
    expected = torch.empty(8, 8).normal_(0, 0.5, generator=torch.Generator().manual_seed(1)).to(dtype)
    loaded = torch.load(out, weights_only=True)["w"]
    assert loaded.dtype == dtype
    assert torch.equal(loaded.view(torch.uint8), expected.view(torch.uint8))


def test_a_non_contiguous_tensor_is_filled_through_its_own_strides(cli, save_pt, tmp_path):
    base = torch.zeros(6, 4)
    path = save_pt({"t": base.t(), "other": torch.ones(2)})
    out = tmp_path / "out.pt"
    assert cli("init", path, "-m", "t", "-s", "normal", "--seed", 5, "-o", out, "-q").exit_code == 0
    expected = torch.zeros(6, 4).t()
    init.normal_(expected, generator=torch.Generator().manual_seed(5))
    loaded = torch.load(out, weights_only=True)
    assert loaded["t"].stride() == (1, 4)
    assert torch.equal(loaded["t"], expected)


# -- statistics ---------------------------------------------------------------------------


def run_big(cli, save_pt, tmp_path, spec, shape=(512, 512)):
    path = save_pt({"w": torch.zeros(shape)})
    out = tmp_path / "big.pt"
    assert cli("init", path, "-s", spec, "--seed", 11, "-o", out, "-q").exit_code == 0
    return torch.load(out, weights_only=True)["w"]


def test_normal_has_the_asked_mean_and_std(cli, save_pt, tmp_path):
    values = run_big(cli, save_pt, tmp_path, "normal(mean=0, std=0.01)")
    assert abs(values.std().item() - 0.01) < 2e-4
    assert abs(values.mean().item()) < 2e-4


def test_uniform_and_trunc_normal_stay_in_their_bounds(cli, save_pt, tmp_path):
    values = run_big(cli, save_pt, tmp_path, "uniform(-0.5, 0.25)")
    assert values.min() >= -0.5 and values.max() <= 0.25
    assert abs(values.mean().item() - (-0.125)) < 5e-3
    values = run_big(cli, save_pt, tmp_path, "trunc_normal(std=1, a=-0.5, b=0.5)")
    assert values.min() >= -0.5 and values.max() <= 0.5


def test_kaiming_std_follows_fan_in(cli, save_pt, tmp_path):
    values = run_big(cli, save_pt, tmp_path, "kaiming_normal(nonlinearity=relu)", (256, 1024))
    assert abs(values.std().item() - math.sqrt(2 / 1024)) < 1e-3


def test_orthogonal_and_sparse_have_their_structure(cli, save_pt, tmp_path):
    values = run_big(cli, save_pt, tmp_path, "orthogonal", (64, 128))
    assert torch.allclose(values @ values.T, torch.eye(64), atol=1e-5)
    values = run_big(cli, save_pt, tmp_path, "sparse(sparsity=0.25)", (100, 50))
    assert ((values == 0).sum(dim=0) == 25).all()


# -- the --scheme syntax --------------------------------------------------------------------


def test_every_torch_init_function_is_registered_with_its_parameters():
    import inspect

    for name, info in SCHEMES.items():
        function = getattr(init, f"{name}_")
        torch_params = [p for p in inspect.signature(function).parameters if p not in ("tensor", "generator")]
        assert [p.name for p in info.parameters] == torch_params, name
        assert info.random == ("generator" in inspect.signature(function).parameters), name
        for param in info.parameters:
            default = inspect.signature(function).parameters[param.name].default
            expected = None if default is inspect.Parameter.empty else default
            assert param.default == expected, (name, param.name)


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ("normal", "normal(mean=0.0, std=1.0)"),
        ("normal_", "normal(mean=0.0, std=1.0)"),
        ("normal(0, 0.01)", "normal(mean=0.0, std=0.01)"),
        (" normal( std = 1e-2 ) ", "normal(mean=0.0, std=0.01)"),
        ("uniform(a=-1/2, b=2**-1)", "uniform(a=-0.5, b=0.5)"),
        (
            "kaiming_normal(mode='fan_out', nonlinearity=relu)",
            "kaiming_normal(a=0.0, mode=fan_out, nonlinearity=relu)",
        ),
        ("dirac(2)", "dirac(groups=2)"),
        ("constant(-3)", "constant(val=-3.0)"),
        ("orthogonal(gain=gain(leaky_relu, 0.2))", f"orthogonal(gain={math.sqrt(2 / (1 + 0.2**2))!r})"),
        ("default", "default"),
    ],
)
def test_scheme_syntax(text, described):
    assert parse_scheme(text).describe() == described


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gaussian", "unknown scheme 'gaussian'"),
        ("normal(sd=1)", "normal has no parameter 'sd' (it takes mean, std)"),
        ("normal(1, 2, 3)", "normal takes at most 2 values"),
        ("constant", "constant needs val"),
        ("sparse", "sparse needs sparsity"),
        ("kaiming_normal(mode=fan_sideways)", "mode must be one of fan_in, fan_out"),
        ("dirac(groups=1.5)", "groups must be a whole number"),
        ("normal(std=-1)", "std must not be negative"),
        ("uniform(a=2, b=1)", "a (2.0) is above b (1.0)"),
        ("normal(std=__import__('os'))", "values are numbers, words"),
        ("normal(std=abc)", "std must be a number (got 'abc')"),
        ("default(x=1)", "default takes no parameters"),
        ("normal(", "is not name or name(param=value, ...)"),
        ("", "--scheme is empty"),
    ],
)
def test_scheme_syntax_errors_say_what_is_wrong(text, message):
    with pytest.raises(UsageError, match=None) as caught:
        parse_scheme(text)
    assert message in str(caught.value)


def test_make_scheme_for_the_python_api():
    scheme = make_scheme("normal", std=0.02)
    assert isinstance(scheme, TorchScheme) and scheme.parameters() == {"mean": 0.0, "std": 0.02}
    with pytest.raises(UsageError, match="not both"):
        make_scheme("normal(std=0.1)", mean=1.0)

    def halve(tensor, generator):
        tensor.fill_(0.5)

    custom = make_scheme(halve)
    assert isinstance(custom, CustomScheme)
    values = torch.empty(3)
    custom.apply(values, None)
    assert torch.equal(values, torch.full((3,), 0.5))


def test_custom_functions_load_from_files_and_modules(tmp_path, monkeypatch):
    (tmp_path / "inits.py").write_text(
        "def fives(tensor, generator, value=5.0):\n    tensor.fill_(value)\n"
        "def returns(tensor, generator):\n    return tensor * 0 + 2\n"
    )
    scheme = parse_scheme(f"{tmp_path / 'inits.py'}:fives(value=7)")
    values = torch.empty(2)
    scheme.apply(values, None)
    assert values.tolist() == [7.0, 7.0]
    monkeypatch.syspath_prepend(str(tmp_path))
    returned = parse_scheme("inits:returns")
    returned.apply(values, None)
    assert values.tolist() == [2.0, 2.0]
    with pytest.raises(UsageError, match="has no function 'nope'; it defines fives, returns"):
        parse_scheme("inits:nope")
    with pytest.raises(UsageError, match="no file"):
        parse_scheme("missing_file.py:f")
    with pytest.raises(UsageError, match="cannot import module"):
        parse_scheme("no_such_module_here:f")


def test_custom_functions_are_imported_as_model_code_is(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "scheme_in_cwd.py").write_text("def ones(tensor, generator):\n    tensor.fill_(1.0)\n")
    (tmp_path / "broken_scheme.py").write_text("raise RuntimeError('no init here')\n")
    monkeypatch.chdir(tmp_path)
    # a module in the working folder is found, as --model finds one
    values = torch.zeros(2)
    parse_scheme("scheme_in_cwd:ones").apply(values, None)
    assert values.tolist() == [1.0, 1.0]
    # a file runs once: loading it again gives the same function
    path = tmp_path / "scheme_in_cwd.py"
    first, again = parse_scheme(f"{path}:ones"), parse_scheme(f"{path}:ones")
    assert isinstance(first, CustomScheme) and isinstance(again, CustomScheme)
    assert first.function is again.function
    with pytest.raises(UsageError, match=r"running .*broken_scheme.py failed: RuntimeError: no init here"):
        parse_scheme(f"{tmp_path / 'broken_scheme.py'}:f")
    with pytest.raises(UsageError, match=r"no file .* \(it is a folder\)"):
        parse_scheme(f"{tmp_path}/:f")
