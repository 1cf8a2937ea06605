"""paramctl show: one tensor, its statistics, torch's preview and a histogram."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import re
import resource

import pytest
import torch

from paramctl import UsageError, read_checkpoint
from paramctl.inspect.show import parse_index, show_tensor


def test_show_prints_metadata_stats_preview_and_histogram(cli, samples):
    result = cli("show", samples / "tied_transformer.pt", "embed.weight")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("embed.weight  [32, 8] float32  1.00 KiB\n")
    assert "shared with  lm_head.weight" in out
    assert "tensor([[-1.1258e+00, -1.1524e+00," in out
    assert "histogram of 256 finite values" in out
    assert "█" in out


def test_preview_is_torchs_own_repr_with_the_print_options(save_pt):
    values = torch.linspace(0, 1, 5000).reshape(50, 100)
    checkpoint = read_checkpoint(save_pt({"w": values}))
    report = show_tensor(checkpoint, "w", precision=2)
    with torch._tensor_str.printoptions(precision=2):
        assert report.preview == repr(values)
    assert "..." in report.preview
    full = show_tensor(checkpoint, "w", full=True, linewidth=200)
    assert "..." not in full.preview
    assert len(re.findall(r"\d\.\d{4}e[+-]\d\d", full.preview)) == 5000
    # the print options are put back afterwards
    assert torch._tensor_str.PRINT_OPTS.precision == 4


def test_json_has_stats_and_histogram_bins(cli, samples):
    result = cli("show", samples / "mlp.pt", "0.weight", "--format", "json", "--bins", "4")
    document = json.loads(result.stdout)
    weight = torch.load(samples / "mlp.pt", weights_only=True)["0.weight"]
    assert document["shape"] == [3, 4] and document["dtype"] == "float32"
    assert document["stats"]["numel"] == 12
    assert document["stats"]["mean"] == pytest.approx(weight.mean().item())
    assert document["stats"]["std"] == pytest.approx(weight.std().item())
    assert len(document["histogram"]["edges"]) == 5 and sum(document["histogram"]["counts"]) == 12
    assert document["histogram"]["edges"][0] == pytest.approx(weight.min().item())
    assert document["preview"].startswith("tensor([[")


def test_slice_shows_part_of_the_tensor(cli, save_pt):
    values = torch.arange(24.0).reshape(4, 6)
    path = save_pt({"w": values})
    document = json.loads(cli("show", path, "w", "--slice", "1,:3", "-f", "json").stdout)
    assert document["slice"] == "1,:3" and document["slice_shape"] == [3]
    assert document["preview"] == "tensor([6., 7., 8.])"
    assert document["stats"]["mean"] == 7.0
    assert document["shape"] == [4, 6]  # the tensor's own shape stays in view


def _evict(path) -> bool:
    """Drop the file's pages from the page cache; False where the file system keeps them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return _cached_fraction(path, 0, os.path.getsize(path)) < 0.01


def _cached_fraction(path, offset: int, length: int) -> float:
    """The fraction of the pages of ``length`` bytes at ``offset`` in the page cache: the
    pages some reader has read (``mincore`` on a map of the file)."""
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as mapped:
        anchor = ctypes.c_char.from_buffer(mapped)
        pages = (len(mapped) + page - 1) // page
        vector = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(len(mapped)), vector):
            raise OSError(ctypes.get_errno(), "mincore")
        del anchor
    first, last = offset // page, (offset + length - 1) // page
    return sum(vector[first : last + 1]) / (last - first + 1)


def test_slice_reads_only_the_pages_it_needs(save_pt):
    # 64 MiB of rows; the slice touches one row: stats and preview see only that row, and
    # the page faults while showing it stay far below the 16,384 pages of the tensor; of
    # the file, only the pages around that row are read (the kernel reads a little ahead).
    rows = torch.zeros(4096, 4096)
    rows[17] = torch.arange(4096.0)
    path = save_pt({"w": rows})
    checkpoint = read_checkpoint(path)
    storage = checkpoint.storage_of(checkpoint.entry("w"))
    show_tensor(checkpoint, "w", index="0, :2")  # first use: imports and lazy set-up
    evicted = _evict(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    report = show_tensor(checkpoint, "w", index="17, ::1024")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert report.preview == "tensor([   0., 1024., 2048., 3072.])"
    assert report.stats.numel == 4
    assert faults < 1000
    if not evicted:
        pytest.skip("this file system keeps the file in memory: which pages were read is unknown")
    assert _cached_fraction(path, storage.offset, storage.nbytes) < 0.1
    _evict(path)
    show_tensor(checkpoint, "w")
    assert _cached_fraction(path, storage.offset, storage.nbytes) == 1.0  # all of it


def test_zero_dim_tensor(cli, save_pt):
    path = save_pt({"step": torch.tensor(3.5), "count": torch.tensor(7)})
    result = cli("show", path, "step")
    assert result.exit_code == 0, result.stderr
    assert "tensor(3.5000)" in result.stdout
    document = json.loads(cli("show", path, "count", "-f", "json").stdout)
    assert document["shape"] == [] and document["preview"] == "tensor(7)"
    assert document["stats"]["mean"] == 7 and document["histogram"]["counts"] == [1]
    assert cli("show", path, "step", "--slice", "...").exit_code == 0


def test_big_tensor_is_summarised(cli, save_pt):
    path = save_pt({"big": torch.randn(1000, 1000)})
    result = cli("show", path, "big")
    assert result.exit_code == 0
    assert "..." in result.stdout and "1,000,000" in result.stdout


def test_float16_and_bfloat16(cli, save_pt):
    path = save_pt(
        {"h": torch.tensor([1.5, -2.0], dtype=torch.float16), "b": torch.ones(2, dtype=torch.bfloat16)}
    )
    assert "dtype=torch.float16" in cli("show", path, "h").stdout
    assert json.loads(cli("show", path, "b", "-f", "json").stdout)["stats"]["std"] == 0.0


def test_nested_checkpoint_names(cli, samples):
    relative = cli("show", samples / "training.pt", "0.bias", "-f", "json")
    full = cli("show", samples / "training.pt", "optimizer.state.0.exp_avg", "-f", "json")
    assert relative.exit_code == 0 and full.exit_code == 0
    assert json.loads(full.stdout)["shape"] == [3, 4]


def test_unknown_name_exits_1_with_the_closest_name(cli, samples):
    result = cli("show", samples / "mlp.pt", "0.weigth")
    assert result.exit_code == 1
    assert result.stderr == "paramctl: error: no tensor named '0.weigth'; did you mean 0.weight?\n"


def test_bad_slices_are_usage_errors(cli, samples):
    path = samples / "mlp.pt"
    for bad in ("0,0,0", "9", "a:b", "::-1", "...,..."):
        result = cli("show", path, "0.weight", "--slice", bad)
        assert result.exit_code == 2, bad
        assert result.stderr.startswith("paramctl: error: --slice"), bad


def test_parse_index():
    assert parse_index("0, :5") == (0, slice(None, 5))
    assert parse_index("[1:3:2, -1]") == (slice(1, 3, 2), -1)
    assert parse_index("...") == (Ellipsis,)
    assert parse_index("") == ()
    with pytest.raises(UsageError):
        parse_index("0.5")
