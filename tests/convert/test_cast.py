"""Casting with numpy gives torch's own bits, for every float: rounding to nearest even,
subnormals, infinities and NaN."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paramctl.convert.cast import to_dtype

FLOAT32 = arrays(np.float32, st.integers(1, 64), elements=st.floats(width=32, allow_nan=True))
FLOAT64 = arrays(np.float64, st.integers(1, 64), elements=st.floats(allow_nan=False))


def bits(tensor: torch.Tensor) -> np.ndarray:
    return tensor.view(torch.int16).numpy().view(np.uint16)


@settings(max_examples=200, deadline=None)
@given(FLOAT32)
def test_bfloat16_of_a_float32_is_torchs(values):
    expected = torch.from_numpy(values).to(torch.bfloat16)
    ours = to_dtype(values, "bfloat16")
    nan = np.isnan(values)
    assert np.array_equal(ours[~nan], bits(expected)[~nan])
    assert np.isnan(torch.from_numpy(ours.view(np.int16)).view(torch.bfloat16).float().numpy()[nan]).all()


@settings(max_examples=200, deadline=None)
@given(FLOAT64)
def test_float16_and_bfloat16_of_a_float64_are_torchs(values):
    double = torch.from_numpy(values)
    assert np.array_equal(to_dtype(values, "float16").view(np.uint16), bits(double.to(torch.float16)))
    assert np.array_equal(to_dtype(values, "bfloat16"), bits(double.to(torch.bfloat16)))
    assert np.array_equal(to_dtype(values, "float32"), double.to(torch.float32).numpy())
