"""Comparing values chunk by chunk gives what numpy gives on the whole arrays."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from paramctl import read_checkpoint
from paramctl.compare.values import Tolerance, Totals, compare_values, paired
from paramctl.values import ValueReader

floats = st.floats(allow_nan=True, allow_infinity=True, width=32)


def cuts(size: int):
    """Random chunk boundaries of an array of ``size``."""
    return st.lists(st.integers(0, size), max_size=4).map(lambda points: sorted({0, size, *points}))


def pieces(values: np.ndarray, bounds: list[int]):
    return iter([values[start:end] for start, end in itertools.pairwise(bounds) if end > start])


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    size=st.integers(1, 40),
    atol=st.sampled_from([0.0, 1e-3, 0.5]),
    rtol=st.sampled_from([0.0, 1e-2]),
)
def test_chunked_comparison_counts_as_isclose(data, size, atol, rtol):
    a = data.draw(arrays(np.float32, size, elements=floats))
    b = data.draw(st.one_of(st.just(a.copy()), arrays(np.float32, size, elements=floats)))
    totals = Totals()
    for piece_a, piece_b in paired(pieces(a, data.draw(cuts(size))), pieces(b, data.draw(cuts(size)))):
        totals.add(piece_a, piece_b, Tolerance(atol, rtol))
    found = totals.result(size)
    close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    assert found.differing == int(np.count_nonzero(~close))
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(a.astype(np.float64) - b.astype(np.float64))
    gap[(a == b) | (np.isnan(a) & np.isnan(b))] = 0
    expected_max = float(gap.max())
    if math.isnan(expected_max):
        assert math.isnan(found.max_abs)
    else:
        assert found.max_abs == pytest.approx(expected_max, rel=1e-6)


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 5), max_size=6), other=st.lists(st.integers(1, 5), max_size=6))
def test_paired_pieces_cover_both_streams_in_order(sizes, other):
    total = sum(sizes)
    first = np.arange(total)
    bounds_a = np.cumsum([0, *sizes]).tolist()
    split = np.cumsum([0, *other]).tolist()
    bounds_b = sorted({0, total, *(p for p in split if p < total)})
    pairs = list(paired(pieces(first, bounds_a), pieces(first, bounds_b)))
    assert all(len(x) == len(y) and (x == y).all() for x, y in pairs)
    joined = np.concatenate([x for x, _ in pairs]) if pairs else np.arange(0)
    assert joined.tolist() == first.tolist()


def test_relative_l2_is_the_distance_over_the_norm_of_b(save_pt):
    torch.manual_seed(0)
    a = torch.randn(3000, 700)  # more than one chunk
    b = a.clone()
    b[::7, 3] += 0.25
    first, second = read_checkpoint(save_pt({"w": a}, "a.pt")), read_checkpoint(save_pt({"w": b}, "b.pt"))
    with ValueReader(first) as reader_a, ValueReader(second) as reader_b:
        found = compare_values(reader_a, first.entry("w"), reader_b, second.entry("w"), Tolerance())
    expected = float((a.double() - b.double()).norm() / b.double().norm())
    assert found.rel_l2 == pytest.approx(expected, rel=1e-5)
    assert found.differing == int((a != b).sum()) and not found.same_bytes
    assert found.max_abs == pytest.approx(float((a - b).abs().max()))


def test_bfloat16_values_compare_as_numbers(save_pt, save_st):
    values = torch.tensor([1.0, 2.5, -3.0]).to(torch.bfloat16)
    first = read_checkpoint(save_pt({"w": values}, "a.pt"))
    second = read_checkpoint(save_st({"w": values * 2}))
    with ValueReader(first) as reader_a, ValueReader(second) as reader_b:
        found = compare_values(reader_a, first.entry("w"), reader_b, second.entry("w"), Tolerance())
    assert (found.differing, found.max_abs) == (3, 3.0)


def test_complex_values_differ_by_their_distance():
    totals = Totals()
    totals.add(np.array([1 + 1j, 2j]), np.array([1 + 1j, 0j]), Tolerance())
    found = totals.result(2)
    assert (found.differing, found.max_abs) == (1, 2.0)
    assert found.rel_l2 == pytest.approx(2 / math.sqrt(2))
