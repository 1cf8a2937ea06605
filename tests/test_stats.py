"""Value statistics: equal to torch's own answers for every dtype, chunked or not."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import paramctl.stats as stats_module
from paramctl import read_checkpoint
from paramctl.render.engine import Environment
from paramctl.render.progress import progress
from paramctl.stats import checkpoint_stats, histogram, tensor_stats
from paramctl.values import ValueReader

FLOATS = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
FLOAT8 = [torch.float8_e4m3fn, torch.float8_e5m2]
INTS = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.uint16, torch.uint32]


def reference(values: torch.Tensor) -> dict[str, float]:
    """What torch says, in float64, over the finite values."""
    finite = values[torch.isfinite(values)]
    return {
        "mean": finite.mean().item(),
        "std": finite.std().item() if finite.numel() > 1 else None,
        "min": finite.min().item(),
        "max": finite.max().item(),
        "absmax": finite.abs().max().item(),
        "norm": torch.linalg.vector_norm(finite).item(),
        "zeros": (values == 0).sum().item() / values.numel(),
    }


def assert_close(ours, expected, rel=1e-5):
    for key, value in expected.items():
        if value is None:
            assert getattr(ours, key) is None, key
            continue
        assert getattr(ours, key) == pytest.approx(value, rel=rel, abs=1e-6), key


@pytest.mark.parametrize("dtype", FLOATS + FLOAT8, ids=str)
@pytest.mark.parametrize("chunk", [1 << 20, 97])
def test_floating_point_stats_equal_torch(dtype, chunk):
    g = torch.Generator().manual_seed(1)
    values = (torch.randn(40, 50, generator=g) * 3 + 1).to(dtype)
    values[0, :7] = 0
    ours = tensor_stats(values, max_elements=chunk)
    # float16/bfloat16/float8 are computed in float32, exactly like upcasting first
    assert_close(ours, reference(values.to(torch.float64)))
    assert (ours.nan, ours.inf, ours.numel) == (0, 0, 2000)


@pytest.mark.parametrize("dtype", INTS, ids=str)
def test_integer_stats_are_exact(dtype):
    g = torch.Generator().manual_seed(2)
    low = 0 if dtype in (torch.uint8, torch.uint16, torch.uint32) else -100
    values = torch.randint(low, 100, (3001,), generator=g).to(dtype)
    ours = tensor_stats(values, max_elements=1000)
    as_int = values.to(torch.int64)
    assert ours.min == as_int.min().item() and isinstance(ours.min, int)
    assert ours.max == as_int.max().item() and isinstance(ours.max, int)
    assert ours.absmax == as_int.abs().max().item()
    assert ours.mean == as_int.sum().item() / 3001  # the exact sum, divided once
    assert ours.zeros == (as_int == 0).sum().item() / 3001
    assert_close(ours, {k: v for k, v in reference(as_int.double()).items() if k in ("std", "norm")})


def test_int64_sum_beyond_a_chunk_stays_exact():
    values = torch.tensor([2**61, 2**61, -(2**61), 5], dtype=torch.int64)
    assert tensor_stats(values).mean == (2**61 + 5) / 4


def test_bool_is_counted():
    values = torch.tensor([True, False, True, True])
    ours = tensor_stats(values)
    assert (ours.mean, ours.min, ours.max, ours.zeros) == (0.75, False, True, 0.25)
    assert ours.norm == pytest.approx(math.sqrt(3))


def test_complex_is_described_by_magnitudes():
    values = torch.tensor([3 + 4j, 0j, -1j], dtype=torch.complex64)
    ours = tensor_stats(values)
    assert (ours.mean, ours.std, ours.min, ours.max) == (None, None, None, None)
    assert ours.absmax == 5.0 and ours.zeros == pytest.approx(1 / 3)
    assert ours.norm == pytest.approx(math.sqrt(26))


def test_nan_and_inf_are_counted_and_left_out():
    values = torch.tensor([1.0, float("nan"), -float("inf"), 3.0, float("inf"), float("nan"), 0.0])
    ours = tensor_stats(values, max_elements=3)
    assert (ours.nan, ours.inf) == (2, 2)
    assert_close(ours, reference(values))
    assert not ours.finite


def test_all_nan_and_empty_and_scalar():
    all_nan = tensor_stats(torch.full((5,), float("nan")))
    assert (all_nan.mean, all_nan.min, all_nan.nan, all_nan.zeros) == (None, None, 5, 0.0)
    empty = tensor_stats(torch.empty(0, 3))
    assert (empty.numel, empty.mean, empty.zeros) == (0, None, None)
    scalar = tensor_stats(torch.tensor(-2.5))
    assert (scalar.mean, scalar.std, scalar.absmax, scalar.norm) == (-2.5, None, 2.5, 2.5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=300),
    st.integers(1, 64),
    st.booleans(),
)
def test_chunking_never_changes_the_answer(values, chunk, transpose):
    tensor = torch.tensor(values, dtype=torch.float32)
    if transpose and len(values) % 2 == 0:
        tensor = tensor.reshape(2, -1).t()  # a strided view, cut by rows
    whole = tensor_stats(tensor)
    pieces = tensor_stats(tensor, max_elements=chunk)
    assert (pieces.min, pieces.max, pieces.zeros) == (whole.min, whole.max, whole.zeros)
    scale = max(1.0, whole.absmax or 0.0)
    assert pieces.mean == pytest.approx(whole.mean, rel=1e-5, abs=1e-6 * scale)
    assert pieces.norm == pytest.approx(whole.norm, rel=1e-5, abs=1e-6 * scale)
    if whole.std is not None:
        assert pieces.std == pytest.approx(whole.std, rel=1e-4, abs=1e-5 * scale)
    assert whole.mean == pytest.approx(tensor.double().mean().item(), rel=1e-5, abs=1e-6 * scale)


def test_histogram_counts_every_finite_value():
    values = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0, float("nan")])
    bins = histogram(values, tensor_stats(values), bins=2)
    assert bins.edges == [0.0, 0.5, 1.0]
    assert bins.counts == [2, 3]
    ints = torch.tensor([1, 2, 2, 3], dtype=torch.int32)
    per_value = histogram(ints, tensor_stats(ints), bins=10)
    assert per_value.counts == [1, 2, 1] and per_value.edges[0] == 0.5
    constant = torch.full((4, 4), 7.0)
    assert histogram(constant, tensor_stats(constant)).counts == [16]


def test_shared_storages_are_read_once(save_pt, monkeypatch):
    weight = torch.arange(16.0).reshape(4, 4) / 8  # a mean that float32 sums reach exactly
    path = save_pt({"a": weight, "b": weight, "c": torch.randn(3)})
    calls = []
    original = stats_module.entry_stats
    monkeypatch.setattr(
        stats_module, "entry_stats", lambda r, e, **k: calls.append(e.shape) or original(r, e, **k)
    )
    checkpoint = read_checkpoint(path)
    result = checkpoint_stats(checkpoint, checkpoint.entries)
    assert len(calls) == 2
    assert result[0] == result[1] and result[0].mean == pytest.approx(weight.mean().item())


def test_big_tensors_two_at_a_time_give_the_same_answers(save_pt):
    g = torch.Generator().manual_seed(3)
    tensors = {f"big{i}": torch.randn(600, 600, generator=g) * (i + 1) for i in range(5)}  # 1.4 MB each
    tensors.update(small=torch.randn(7, generator=g), view=tensors["big0"].t(), tie=tensors["big1"])
    checkpoint = read_checkpoint(save_pt(tensors))
    progress: list[int] = []
    threaded = checkpoint_stats(checkpoint, checkpoint.entries, on_progress=progress.append)
    with ValueReader(checkpoint) as reader:
        serial = checkpoint_stats(checkpoint, checkpoint.entries, reader=reader)
    assert threaded == serial
    assert sum(progress) == stats_module.work_bytes(checkpoint.entries)
    for entry, stats in zip(checkpoint.entries, threaded, strict=True):
        assert_close(stats, reference(tensors[entry.name].double()))


_PEAK_RSS = """
import resource, sys
from paramctl import read_checkpoint
from paramctl.stats import checkpoint_stats
checkpoint = read_checkpoint(sys.argv[1])
if sys.argv[2] == "stats":
    checkpoint_stats(checkpoint, checkpoint.entries)
else:
    import numpy
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_memory_stays_near_one_tensor_however_big_the_file(tmp_path):
    # 128 MiB in 16 MiB tensors, each also saved as a transposed view (read through the map,
    # whose pages are let go after each): the scan's peak stays far below the file.
    import subprocess
    import sys

    g = torch.Generator().manual_seed(0)
    tensors = {f"w{i}": torch.randn(2048, 2048, generator=g) for i in range(8)}
    tensors.update({f"t{i}": tensors[f"w{i}"].t() for i in range(8)})
    path = tmp_path / "big.pt"
    torch.save(tensors, path)
    del tensors

    def peak_mib(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, str(path), mode], capture_output=True, text=True, check=True
        )
        return int(done.stdout.strip())

    assert peak_mib("stats") - peak_mib("metadata") < 16 + 48


def test_values_are_right_after_pages_are_released(save_pt):
    values = torch.randn(5000)
    checkpoint = read_checkpoint(save_pt({"a": values, "b": values[10:20]}))
    with ValueReader(checkpoint) as reader:
        first = checkpoint_stats(checkpoint, checkpoint.entries, reader=reader)
        again = checkpoint_stats(checkpoint, checkpoint.entries, reader=reader)
    assert first == again
    assert first[1].max == values[10:20].max().item()


@pytest.mark.parametrize(
    "name", ["mlp.pt", "mlp_legacy.pt", "cnn.safetensors", "tied_transformer.safetensors"]
)
def test_list_stats_matches_torch_for_the_samples(cli, samples, name):
    rows = json.loads(cli("list", samples / name, "--stats", "-f", "json").stdout)["tensors"]
    if name.endswith(".safetensors"):
        from safetensors.torch import load_file

        truth = load_file(samples / name)
        truth.setdefault("lm_head.weight", truth.get("embed.weight"))
    else:
        truth = torch.load(samples / name, weights_only=True)
    for row in rows:
        expected = reference(truth[row["name"]].double())
        for key in ("mean", "std", "min", "max", "absmax", "norm", "zeros"):
            if expected[key] is None:
                assert row[key] is None
                continue
            assert row[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (row["name"], key)
        assert row["nan"] == 0 and row["inf"] == 0


def test_list_stats_tsv_columns(cli, samples):
    lines = cli("list", samples / "tied_sequential.pt", "--stats").stdout.splitlines()
    assert lines == [
        "name\tshape\tdtype\tnumel\tbytes\tshared_with\tmean\tstd\tmin\tmax\tabsmax\tnorm\tzeros\tnan\tinf",
        "0.weight\t[1, 1]\tfloat32\t1\t4\t1.weight\t3.0\t\t3.0\t3.0\t3.0\t3.0\t0.0\t0\t0",
        "1.weight\t[1, 1]\tfloat32\t1\t4\t0.weight\t3.0\t\t3.0\t3.0\t3.0\t3.0\t0.0\t0\t0",
    ]


def test_list_stats_counts_nan_and_inf(cli, save_pt):
    values = torch.tensor([1.0, float("nan"), float("inf"), float("nan")])
    rows = json.loads(cli("list", save_pt({"w": values}), "--stats", "-f", "json").stdout)["tensors"]
    assert (rows[0]["nan"], rows[0]["inf"], rows[0]["mean"]) == (2, 1, 1.0)


def test_list_stats_table_shows_the_columns(cli, samples):
    out = cli("list", samples / "mlp.pt", "--stats", "-f", "table").stdout
    for header in ("mean", "std", "max|x|", "L2 norm", "zeros", "NaN", "Inf"):
        assert header in out


def test_list_without_stats_does_not_import_torch(tmp_path, samples):
    import subprocess
    import sys

    code = (
        "import sys; from paramctl.cli import app\n"
        "try:\n    app(['list', sys.argv[1]])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(samples / "mlp.pt")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "0.weight" in done.stdout


def test_progress_bar_only_for_a_terminal_and_long_work():
    pipe = Environment(io.StringIO(), io.StringIO(), False, False)
    with progress(pipe, 1 << 40, "x") as callback:
        assert callback is None
    terminal = Environment(io.StringIO(), io.StringIO(), True, True)
    with progress(terminal, 10, "x") as callback:
        assert callback is None
    with progress(terminal, 1 << 30, "statistics") as callback:
        assert callback is not None
        callback(1 << 29)
    assert terminal.stdout.getvalue() == ""
