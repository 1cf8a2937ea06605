"""Checkpoints over HTTP: a real nginx on loopback serves them, and its access log (not
paramctl's own counters) says how many requests and bytes each command took."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from paramctl.cli import app
from tests.remote.bigfiles import GiB, sparse_safetensors, sparse_torch_zip
from tests.remote.conftest import Nginx

MiB = 1 << 20
KiB = 1 << 10
# 1 GiB of float32 in 8 tensors of 128 MiB.
BIG = {f"layers.{i}.weight": (8192, 4096) for i in range(8)}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def big_safetensors(nginx: Nginx) -> str:
    spans = sparse_safetensors(nginx.file("big/model.safetensors"), BIG)
    assert max(end for _, end in spans.values()) >= GiB
    return nginx.url("big/model.safetensors")


@pytest.fixture(scope="module")
def big_torch_zip(nginx: Nginx) -> str:
    sparse_torch_zip(nginx.file("big/model.pt"), BIG)
    assert nginx.file("big/model.pt").stat().st_size >= GiB
    return nginx.url("big/model.pt")


def test_listing_a_1_gib_safetensors_file_takes_two_requests_and_under_1_mib(
    nginx: Nginx, big_safetensors: str
) -> None:
    nginx.mark()
    code, out, _ = run("list", big_safetensors)
    assert code == 0, out
    assert "layers.7.weight" in out and "[8192, 4096]" in out
    served = nginx.requests()
    assert len(served) <= 2 and all(request.status == 206 for request in served)
    assert nginx.fetched() < MiB


def test_listing_a_1_gib_pytorch_zip_takes_four_requests_and_under_1_mib(
    nginx: Nginx, big_torch_zip: str
) -> None:
    nginx.mark()
    code, out, _ = run("list", big_torch_zip)
    assert code == 0, out
    assert "layers.7.weight" in out and "[8192, 4096]" in out
    assert len(nginx.requests()) <= 4
    assert nginx.fetched() < MiB


def test_show_fetches_that_tensors_bytes_and_at_most_64_kib_more(nginx: Nginx) -> None:
    tensors = {"small": torch.arange(1000.0), "big": torch.ones(512, 1024), "last": torch.zeros(64)}
    save_file(tensors, nginx.file("show/model.safetensors"))
    nginx.mark()
    code, out, _ = run("show", nginx.url("show/model.safetensors"), "big")
    assert code == 0, out
    assert "[512, 1024]" in out and "1." in out
    assert nginx.fetched() <= tensors["big"].nbytes + 64 * KiB


def test_show_with_a_slice_fetches_only_the_rows_it_needs(nginx: Nginx) -> None:
    rows = torch.arange(4096 * 256, dtype=torch.float32).reshape(4096, 256)
    save_file({"rows": rows}, nginx.file("slice/model.safetensors"))
    nginx.mark()
    code, out, _ = run("show", nginx.url("slice/model.safetensors"), "rows", "--slice", "10:12", "-f", "json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["stats"]["min"] == 10 * 256 and shown["stats"]["max"] == 12 * 256 - 1
    assert nginx.fetched() <= 64 * KiB + 2 * 256 * 4


def test_a_sharded_checkpoint_takes_the_index_and_each_shards_header(nginx: Nginx) -> None:
    weight_map = {}
    for shard in range(1, 9):
        name = f"model-{shard:05d}-of-00008.safetensors"
        sparse_safetensors(nginx.file(f"sharded/{name}"), {f"layers.{shard}.weight": (1024, 1024)})
        weight_map[f"layers.{shard}.weight"] = name
    index = {"metadata": {"total_size": 8 * 4 * MiB}, "weight_map": weight_map}
    nginx.file("sharded/model.safetensors.index.json").write_text(json.dumps(index))
    nginx.mark()
    code, out, _ = run("list", nginx.url("sharded/model.safetensors.index.json"))
    assert code == 0, out
    assert all(f"layers.{shard}.weight" in out for shard in range(1, 9))
    assert len(nginx.requests()) <= 1 + 2 * 8


def test_verbose_reports_the_requests_and_bytes_the_server_served(nginx: Nginx, big_safetensors: str) -> None:
    nginx.mark()
    code, _, err = run("list", "--verbose", "--no-cache", big_safetensors)
    assert code == 0
    served = nginx.requests()
    assert f"remote: {len(served)} request" in err


def test_a_second_call_fetches_nothing_again(nginx: Nginx, big_torch_zip: str) -> None:
    assert run("list", big_torch_zip)[0] == 0
    nginx.mark()
    code, out, _ = run("list", big_torch_zip)
    assert code == 0 and "layers.0.weight" in out
    served = nginx.requests()
    assert [request.status for request in served] == [304]  # one revalidation, no body
    assert nginx.fetched() == 0


def test_fetched_ranges_are_kept_under_the_user_cache_directory(
    own_cache: Path, big_safetensors: str
) -> None:
    assert run("list", big_safetensors)[0] == 0
    (kept,) = (own_cache / "ranges").iterdir()
    record = json.loads((kept / "ranges.json").read_text())
    assert record["url"] == big_safetensors and record["validator"] and record["held"] == [[0, 64 * KiB]]
    assert (kept / "data").stat().st_size >= GiB  # sparse: the holes take no disk
    assert (kept / "data").stat().st_blocks * 512 < MiB


def test_no_cache_fetches_again_and_keeps_nothing(
    nginx: Nginx, own_cache: Path, big_safetensors: str
) -> None:
    nginx.mark()
    assert run("list", "--no-cache", big_safetensors)[0] == 0
    assert nginx.fetched() > 0
    assert not (own_cache / "ranges").exists()
    nginx.mark()
    assert run("list", "--no-cache", big_safetensors)[0] == 0
    assert nginx.fetched() > 0


def test_value_commands_stream_the_remote_values(nginx: Nginx) -> None:
    tensors = {"a": torch.arange(12.0).reshape(3, 4), "b": torch.full((5,), 2.0)}
    torch.save(tensors, nginx.file("values/model.pt"))
    code, out, _ = run("list", "--stats", "-f", "json", nginx.url("values/model.pt"))
    assert code == 0, out
    stats = {row["name"]: row for row in json.loads(out)["tensors"]}
    assert stats["a"]["max"] == 11.0 and stats["b"]["mean"] == 2.0
    code, out, _ = run("check", "--no-cache", nginx.url("values/model.pt"))
    assert code == 0, out


def test_check_without_values_and_shared_read_metadata(nginx: Nginx) -> None:
    weight = torch.ones(4, 4)
    torch.save({"embed": weight, "head": weight}, nginx.file("tied/model.pt"))
    code, out, _ = run("shared", nginx.url("tied/model.pt"))
    assert code == 0 and "head" in out and "embed" in out
    assert run("check", "--no-values", nginx.url("tied/model.pt"))[0] == 0


def test_remote_values_are_the_files_values(nginx: Nginx) -> None:
    import paramctl
    from paramctl.formats import read_checkpoint
    from paramctl.values import ValueReader

    values = np.arange(24, dtype=np.float32).reshape(4, 6)
    save_file({"w": torch.from_numpy(values), "b": torch.ones(3)}, nginx.file("api/model.safetensors"))
    url = nginx.url("api/model.safetensors")
    assert sorted(paramctl.open(url).names()) == ["b", "w"]
    checkpoint = read_checkpoint(url)
    with ValueReader(checkpoint) as reader:
        entry = checkpoint.entry("w")
        np.testing.assert_array_equal(reader.array(entry), values)
        np.testing.assert_array_equal(reader.array(entry, (slice(1, 3), slice(2, 4))), values[1:3, 2:4])
        np.testing.assert_array_equal(
            np.concatenate([c.copy() for c in reader.chunks(entry, 5)]), values.ravel()
        )
        assert torch.equal(reader.tensor(entry), torch.from_numpy(values))


def test_a_dcp_checkpoint_is_read_by_its_metadata_file(nginx: Nginx) -> None:
    import subprocess
    import sys
    from pathlib import Path

    maker = Path(__file__).parent.parent / "dcp" / "make_dcp.py"
    folder = nginx.file("dcp/step/.metadata").parent
    subprocess.run([sys.executable, maker, folder], check=True, capture_output=True)
    nginx.mark()
    code, out, err = run("list", nginx.url("dcp/step/.metadata"))
    assert code == 0, err
    fetched = {request.path.rsplit("/", 1)[-1] for request in nginx.requests()}
    assert ".metadata" in fetched
    code, out, _ = run("list", "--stats", "-f", "json", nginx.url("dcp/step/.metadata"))
    assert code == 0, out


def test_init_reads_a_remote_checkpoint_and_writes_a_local_one(nginx: Nginx, tmp_path: Path) -> None:
    torch.save({"w": torch.ones(3, 3), "b": torch.ones(3)}, nginx.file("init/model.pt"))
    out = tmp_path / "out.pt"
    code, _, err = run(
        "init", nginx.url("init/model.pt"), "-o", str(out), "--match", "b", "--scheme", "zeros"
    )
    assert code == 0, err
    written = torch.load(out, weights_only=True)
    assert torch.equal(written["b"], torch.zeros(3)) and torch.equal(written["w"], torch.ones(3, 3))


def test_diff_names_only_of_two_remote_files_reads_their_headers(
    nginx: Nginx, big_safetensors: str, big_torch_zip: str
) -> None:
    nginx.mark()
    code, out, _ = run("diff", "--names-only", "--no-cache", big_safetensors, big_torch_zip, "-f", "json")
    assert code == 0, out
    assert json.loads(out)["equal"] is True
    assert len(nginx.requests()) <= 2 + 4 and nginx.fetched() < 2 * MiB
