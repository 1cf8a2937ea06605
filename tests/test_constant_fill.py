"""Constant fills (zeros, ones, constant, --set) are written without torch, with the bytes
torch's ``constant_`` would write."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from paramctl.change.constants import element_bytes

FLOATS = ("float16", "bfloat16", "float32", "float64")
INTEGERS = ("uint8", "int8", "int16", "int32", "int64", "bool")


def torch_element(value: float, dtype: str) -> bytes | None:
    """What paramctl's torch path writes (low-precision floats filled in float32 and cast
    back), or ``None`` where torch refuses the value."""
    kind = getattr(torch, dtype)
    low = kind in (torch.float16, torch.bfloat16)
    try:
        work = torch.nn.init.constant_(torch.empty(1, dtype=torch.float32 if low else kind), value)
    except RuntimeError:  # "value cannot be converted to type float without overflow"
        return None
    return work.to(kind).view(torch.uint8).numpy().tobytes()


@given(value=st.floats(allow_nan=True, allow_infinity=True, width=64), dtype=st.sampled_from(FLOATS))
def test_a_float_element_has_torchs_bytes(value, dtype):
    ours = element_bytes(value, dtype)
    theirs = torch_element(value, dtype)
    if theirs is None:
        assert ours is None  # left to torch, which says why
        return
    if value != value and dtype in ("float16", "bfloat16"):
        assert ours is None  # torch's vector and scalar casts give different NaNs
        return
    assert ours == theirs


@given(value=st.integers(-(2**63), 2**63 - 1), dtype=st.sampled_from(INTEGERS))
def test_an_integral_element_in_range_has_torchs_bytes(value, dtype):
    ours = element_bytes(float(value), dtype)
    if dtype == "bool":
        in_range = value in (0, 1)
    else:
        limits = torch.iinfo(getattr(torch, dtype))
        in_range = limits.min <= float(value) <= limits.max  # the float given, not the integer
    if in_range:
        assert ours == torch_element(float(value), dtype)
    else:
        assert ours is None  # wrapping or saturating is torch's to decide


def test_big_endian_and_fractions():
    assert element_bytes(1.0, "float32", "big") == b"\x3f\x80\x00\x00"
    assert element_bytes(0.5, "int32") is None and element_bytes(2.0, "bool") is None
    assert element_bytes(-0.0, "float32") == b"\x00\x00\x00\x80"


def run_without_torch(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("options", "value"), [(["-s", "zeros"], 0.0), (["-s", "ones"], 1.0), (["--set", "2.5"], 2.5)]
)
def test_constant_init_needs_no_torch_and_equals_torchs(tmp_path, options, value):
    state = {
        "w": torch.randn(4, 3),
        "h": torch.randn(5).to(torch.bfloat16),
        "t": torch.randn(3, 4).t(),  # a transpose fills its bytes too
        "n": torch.arange(6),
    }
    source, out = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, source)
    torch.save(state, tmp_path / "in.pt")
    for name, target in ((source, out), (tmp_path / "in.pt", tmp_path / "out.pt")):
        args = ["init", str(name), "-m", "w", "-m", "h", "-m", "t", *options, "-o", str(target), "-f", "json"]
        printed = run_without_torch(
            "import sys\nfrom paramctl.cli import app\n"
            f"try:\n    app({args!r})\n"
            "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
            "print('torch' in sys.modules)\n"
        )
        assert printed.splitlines()[-1] == "False"
    for loaded in (load_file(out), torch.load(tmp_path / "out.pt", weights_only=True)):
        for name in ("w", "h", "t"):
            expected = torch.nn.init.constant_(torch.empty(state[name].shape), value).to(state[name].dtype)
            assert torch.equal(loaded[name], expected), name
        assert torch.equal(loaded["n"], state["n"])


def test_a_random_scheme_still_fills_through_torch(cli, tmp_path):
    torch.save({"w": torch.zeros(8, 8)}, tmp_path / "in.pt")
    result = cli("init", tmp_path / "in.pt", "-s", "normal", "--seed", "3", "-o", tmp_path / "out.pt")
    assert result.exit_code == 0, result.stderr
    expected = torch.nn.init.normal_(torch.empty(8, 8), generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.load(tmp_path / "out.pt")["w"], expected)


def test_the_report_gives_a_constant_fills_value_and_zero_std(cli, tmp_path):
    torch.save({"w": torch.arange(12.0).reshape(3, 4), "one": torch.tensor([3.0])}, tmp_path / "in.pt")
    result = cli("init", tmp_path / "in.pt", "--set", "0.1", "-o", tmp_path / "out.pt", "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["tensors"]}
    assert rows["w"]["mean_before"] == 5.5 and rows["w"]["std_before"] == pytest.approx(3.6055512)
    assert rows["w"]["mean_after"] == float(torch.tensor(0.1)) and rows["w"]["std_after"] == 0.0
    assert rows["one"]["mean_after"] == float(torch.tensor(0.1)) and rows["one"]["std_after"] is None


def test_an_edited_safetensors_keeps_its_data_at_their_place_in_a_page(cli, tmp_path):
    source, out = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    save_file({f"t{i}": torch.randn(64) for i in range(40)}, source)
    result = cli("init", source, "-m", "t3", "-s", "zeros", "-o", out)
    assert result.exit_code == 0, result.stderr

    def data_start(path):
        return 8 + int.from_bytes(path.read_bytes()[:8], "little")

    assert data_start(out) % 4096 == data_start(source) % 4096
    before, after = load_file(source), load_file(out)
    assert torch.equal(after["t3"], torch.zeros(64))
    assert all(torch.equal(after[name], before[name]) for name in before if name != "t3")
