"""The value reader: numpy numbers equal torch's values for every dtype and layout, the
float8 and bfloat16 decoding, big-endian files, and tensors only torch can read."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from paramctl import read_checkpoint
from paramctl.dtypes import FLOAT8
from paramctl.torch_values import from_torch
from paramctl.values import ValueReader, decode, stored_dtype

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch deprecates its quantized dtypes
    QUANTIZED = torch.quantize_per_tensor(torch.tensor([1.0, 2.0, 3.5, -1.0]), 0.1, 10, torch.qint8)


def same_numbers(ours: np.ndarray, tensor: torch.Tensor) -> bool:
    expected = tensor.to(torch.float64) if tensor.dtype.is_floating_point else tensor
    return ours.shape == tuple(tensor.shape) and np.array_equal(ours, expected.numpy(), equal_nan=True)


@pytest.mark.parametrize("name", list(FLOAT8))
def test_every_float8_code_decodes_as_torch_does(name, save_pt):
    codes = torch.arange(256, dtype=torch.uint8)
    values = codes.view(getattr(torch, name))
    checkpoint = read_checkpoint(save_pt({"w": values}))
    with ValueReader(checkpoint) as reader:
        ours = reader.array(checkpoint.entry("w"))
    assert ours.dtype == np.float32
    assert same_numbers(ours, values.float())
    # negative zero (and every negative number) keeps its sign
    numbers = ~np.isnan(ours)
    assert np.array_equal(np.signbit(ours)[numbers], torch.signbit(values.float()).numpy()[numbers])


def test_bfloat16_is_the_upper_half_of_float32():
    values = torch.randn(1000, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    values[:4] = torch.tensor([float("nan"), float("inf"), -0.0, 0.0])
    ours = decode(values.view(torch.int16).numpy().view(np.uint16), "bfloat16")
    assert same_numbers(ours, values.float())


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(24.0).reshape(4, 6).t(),  # strided: read through the map
        torch.arange(24.0).reshape(4, 6)[1:, ::2],
        torch.arange(10, dtype=torch.int16)[3:7],  # contiguous inside its storage
        torch.randn(5, 3, dtype=torch.float16),
        torch.tensor([[True, False]]).t(),
        torch.tensor([1 + 2j, 3j]),
    ],
    ids=["transposed", "sliced", "offset", "float16", "bool", "complex"],
)
def test_chunks_array_bytes_and_tensor_agree_with_torch(save_pt, tensor):
    checkpoint = read_checkpoint(save_pt({"w": tensor, "pad": torch.zeros(3)}))
    entry = checkpoint.entry("w")
    with ValueReader(checkpoint) as reader:
        flat = np.concatenate([chunk.copy() for chunk in reader.chunks(entry, max_elements=4)])
        array = reader.array(entry)
        raw = b"".join(bytes(chunk) for chunk in reader.raw_chunks(entry, chunk_bytes=8))
        copied, mapped = reader.tensor(entry), reader.tensor(entry, copy=False)
    assert np.array_equal(flat, tensor.reshape(-1).numpy())
    assert np.array_equal(array, tensor.numpy()) and not array.flags.writeable
    assert raw == tensor.contiguous().numpy().tobytes()
    assert torch.equal(copied, tensor) and torch.equal(mapped, tensor)
    assert copied.stride() == tensor.stride() == mapped.stride()


def test_an_index_reads_the_part_only(save_pt):
    checkpoint = read_checkpoint(save_pt({"w": torch.arange(12.0).reshape(3, 4).to(torch.bfloat16)}))
    with ValueReader(checkpoint) as reader:
        part = reader.array(checkpoint.entry("w"), (1, slice(None, None, 2)))
        scalar = reader.array(checkpoint.entry("w"), (2, 3))
    assert part.tolist() == [4.0, 6.0] and part.dtype == np.float32
    assert scalar.shape == () and scalar.item() == 11.0


def big_endian_copy(source: Path, target: Path) -> None:
    """``source`` rewritten as a big-endian machine writes it: byteorder "big", every
    storage's elements byte-swapped."""
    checkpoint = read_checkpoint(source)
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        root = old.namelist()[0].split("/")[0]
        for info in old.infolist():
            data = old.read(info)
            key = info.filename.removeprefix(f"{root}/data/")
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif key in checkpoint.storages:
                dtype = stored_dtype(checkpoint.storages[key].dtype)
                data = np.frombuffer(data, dtype).byteswap().tobytes()
            new.writestr(info.filename, data)


def test_big_endian_files_are_swapped_to_native(save_pt, tmp_path, cli):
    tensors = {"w": torch.randn(3, 4, dtype=torch.float64), "n": torch.arange(5), "t": torch.randn(4, 2).t()}
    target = tmp_path / "big.pt"
    big_endian_copy(save_pt(tensors), target)
    truth = torch.load(target, weights_only=True)  # torch swaps them itself
    assert all(torch.equal(truth[name], tensor) for name, tensor in tensors.items())
    checkpoint = read_checkpoint(target)
    assert checkpoint.byteorder == "big"
    with ValueReader(checkpoint) as reader:
        for name, tensor in tensors.items():
            entry = checkpoint.entry(name)
            assert np.array_equal(reader.array(entry), tensor.numpy())
            assert np.array_equal(np.concatenate(list(reader.chunks(entry))), tensor.reshape(-1).numpy())
            assert torch.equal(reader.tensor(entry), tensor)
            assert torch.equal(reader.tensor(entry, copy=False), tensor)
    rows = json.loads(cli("list", target, "--stats", "-f", "json").stdout)["tensors"]
    assert rows[0]["mean"] == pytest.approx(tensors["w"].mean().item())
    assert cli("check", target).exit_code == 0


@pytest.fixture
def torch_only(save_pt):
    """A checkpoint only torch can read: a sparse and a quantized tensor beside a plain one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return save_pt({"sparse": torch.eye(3).to_sparse(), "quantized": QUANTIZED, "plain": torch.ones(2)})


def test_sparse_and_quantized_get_statistics(cli, torch_only):
    result = cli("list", torch_only, "--stats", "-f", "json")
    assert result.exit_code == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["tensors"]}
    sparse, quantized = rows["sparse"], rows["quantized"]
    # the three stored ones and the six implicit zeros of the identity
    found = (sparse["mean"], sparse["min"], sparse["max"], sparse["zeros"])
    assert found == pytest.approx((1 / 3, 0, 1, 6 / 9))
    assert sparse["std"] == pytest.approx(torch.eye(3).std().item())
    assert "6 implicit zeros" in sparse["note"]
    dequantized = QUANTIZED.dequantize()
    assert quantized["mean"] == pytest.approx(dequantized.mean().item())
    assert (quantized["min"], quantized["max"]) == pytest.approx((-1.0, 3.5))
    assert quantized["note"] == "dequantized qint8 values"
    assert "note" not in rows["plain"]


def test_sparse_and_quantized_are_shown(cli, torch_only):
    sparse = json.loads(cli("show", torch_only, "sparse", "-f", "json").stdout)
    assert sparse["preview"] == repr(torch.eye(3)) and sparse["stats"]["zeros"] == pytest.approx(6 / 9)
    assert sparse["contiguous"] is False
    row = json.loads(cli("show", torch_only, "sparse", "--slice", "1", "-f", "json").stdout)
    assert row["preview"] == "tensor([0., 1., 0.])"
    quantized = cli("show", torch_only, "quantized")
    assert quantized.exit_code == 0, quantized.stderr
    assert "tensor([ 1.0000,  2.0000,  3.5000, -1.0000], dtype=torch.qint8)" in quantized.stdout


def test_sparse_is_shown_as_text(cli, torch_only):
    result = cli("show", torch_only, "sparse")
    assert result.exit_code == 0, result.stderr


def test_sparse_and_quantized_are_checked(cli, torch_only):
    result = cli("check", torch_only)
    assert result.exit_code == 0, result.stderr
    assert "values" in result.stdout + result.stderr
    assert cli("shared", torch_only, "--by-value").exit_code == 0


def test_nan_in_a_quantized_checkpoint_is_still_found(cli, save_pt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = save_pt({"q": QUANTIZED, "bad": torch.tensor([[1.0, float("nan")]]).to_sparse()})
    result = cli("check", path)
    assert result.exit_code == 1 and "bad\t1 NaN among 2 values" in result.stdout


def test_from_torch_shares_memory_where_it_can():
    tensor = torch.arange(6.0).reshape(2, 3).t()
    found = from_torch(tensor)
    assert np.shares_memory(found.numbers, tensor.numpy()) and found.numbers.shape == (3, 2)
    sparse = from_torch(torch.tensor([[0.0, 2.0], [2.0, 0.0]]).to_sparse_csr())
    assert sparse.numbers.tolist() == [2.0, 2.0] and sparse.implicit_zeros == 2
