"""show's preview, made with numpy, is the text torch's own repr prints."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paramctl.inspect.preview import tensor_repr
from paramctl.values import from_torch

g = torch.Generator().manual_seed(0)
CASES = {
    "float32 small": torch.tensor([0.1234567, -2.5, 3.0]),
    "float32 integral": torch.tensor([4.0, 5.0, -7.0]),
    "float32 negative": -torch.rand(2, 3, generator=g),
    "float32 large values": torch.tensor([1.5e9, 2.0, -3.0e10]),
    "float32 tiny values": torch.tensor([1e-6, 3e-5, 0.0]),
    "float32 wide range": torch.tensor([0.001, 5.0, 1200.0]),
    "float32 nan and inf": torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.5]),
    "float32 integral with nan": torch.tensor([1.0, float("nan"), 3.0]),
    "float32 only nan": torch.tensor([float("nan"), float("nan")]),
    "float32 zeros": torch.zeros(2, 2),
    "float32 negative zero": torch.tensor([-0.0, 1.5]),
    "float32 summarised": torch.randn(1000, 1000, generator=g),
    "float32 long vector": torch.linspace(0, 1, 5000),
    "float32 3-d": torch.randn(4, 3, 2, generator=g),
    "float32 3-d summarised": torch.randn(10, 10, 12, generator=g),
    "float32 0-d": torch.tensor(3.5),
    "float32 empty": torch.empty(0),
    "float32 empty 2-d": torch.empty(0, 3),
    "float64": torch.randn(3, 2, generator=g, dtype=torch.float64),
    "float16": torch.tensor([1.5, -2.0, 0.001], dtype=torch.float16),
    "bfloat16": torch.randn(3, 4, generator=g).to(torch.bfloat16),
    "float8_e4m3fn": torch.randn(5, generator=g).to(torch.float8_e4m3fn),
    "float8_e5m2": (torch.randn(2, 3, generator=g) * 100).to(torch.float8_e5m2),
    "int64": torch.tensor([1, -20, 300]),
    "int64 summarised": torch.arange(2000).reshape(40, 50),
    "int64 0-d": torch.tensor(7),
    "int64 empty": torch.empty(0, dtype=torch.int64),
    "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
    "uint8 2-d": torch.arange(12, dtype=torch.uint8).reshape(3, 4),
    "int32 empty 3-d": torch.empty(2, 0, 1, dtype=torch.int32),
    "bool": torch.tensor([True, False, True]),
    "bool 2-d": torch.eye(3, dtype=torch.bool),
    "complex64": torch.tensor([1 + 2j, -0.5j, 3.25], dtype=torch.complex64),
    "complex128": torch.tensor([[1e-5 + 1j, 2]], dtype=torch.complex128),
}
OPTIONS = [
    {"precision": 4, "threshold": 1000, "linewidth": 80},
    {"precision": 2, "threshold": 1000, "linewidth": 60},
    {"precision": 6, "threshold": math.inf, "linewidth": 200},
]


def torch_repr(tensor: torch.Tensor, precision: int, threshold: float, linewidth: int) -> str:
    with torch._tensor_str.printoptions(
        precision=precision, threshold=threshold, edgeitems=3, linewidth=linewidth
    ):
        return repr(tensor)


def ours(tensor: torch.Tensor, **options) -> str:
    return tensor_repr(from_torch(tensor).numbers, str(tensor.dtype).removeprefix("torch."), **options)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"p{o['precision']}-w{o['linewidth']}")
@pytest.mark.parametrize("name", list(CASES))
def test_preview_equals_torchs_repr(name, options):
    tensor = CASES[name]
    if options["threshold"] == math.inf and tensor.numel() > 20_000:
        pytest.skip("every value of a big tensor: slow in torch's printer")
    assert ours(tensor, **options) == torch_repr(tensor, **options)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=32) | st.integers(-1000, 1000).map(float),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 8),
    st.integers(20, 120),
)
def test_any_float_vector_prints_like_torch(values, precision, linewidth):
    tensor = torch.tensor(values, dtype=torch.float32)
    options = {"precision": precision, "threshold": 1000, "linewidth": linewidth}
    assert ours(tensor, **options) == torch_repr(tensor, **options)
