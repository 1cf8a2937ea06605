"""``hf://`` offline, from a Hugging Face cache laid out as ``huggingface_hub`` lays it out
(blobs, refs, snapshots of symlinks; ``scan_cache_dir`` reads it back)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from paramctl.errors import ExitCode
from tests.remote.bigfiles import sparse_safetensors
from tests.remote.conftest import Nginx
from tests.remote.test_errors import one_line_error
from tests.remote.test_http import run

huggingface_hub = pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo_id: str, files: dict[str, bytes], tags: tuple[str, ...] = ("main",)) -> None:
    """A model repository in the cache at ``COMMIT``, ``tags`` pointing at it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    for tag in tags:
        (repo / "refs" / tag).write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def safetensors_bytes(tmp_path: Path, tensors: dict[str, torch.Tensor]) -> bytes:
    save_file(tensors, tmp_path / "file.safetensors")
    return (tmp_path / "file.safetensors").read_bytes()


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    single = safetensors_bytes(tmp_path, {"embed.weight": torch.zeros(8, 4)})
    shards = {
        f"model-0000{i}-of-00002.safetensors": safetensors_bytes(
            tmp_path, {f"layer{i}.weight": torch.ones(2, 2)}
        )
        for i in (1, 2)
    }
    index = {"metadata": {}, "weight_map": {f"layer{i}.weight": name for i, name in enumerate(shards, 1)}}
    cache_repo(cache, "org/tiny", {"model.safetensors": single}, tags=("main", "v1.0"))
    cache_repo(cache, "org/sharded", {**shards, "model.safetensors.index.json": json.dumps(index).encode()})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scanned = huggingface_hub.scan_cache_dir(cache)
    assert {repo.repo_id for repo in scanned.repos} == {"org/tiny", "org/sharded"}
    return cache


@pytest.mark.parametrize("revision", ["", "@main", "@v1.0", f"@{COMMIT}"])
def test_hf_urls_resolve_revisions_in_the_local_cache(hub_cache: Path, revision: str) -> None:
    code, out, _ = run("list", f"hf://org/tiny{revision}/model.safetensors")
    assert code == 0, out
    assert "embed.weight" in out and "[8, 4]" in out


def test_an_hf_repository_is_its_checkpoint(hub_cache: Path) -> None:
    code, out, _ = run("list", "hf://org/sharded")
    assert code == 0, out
    assert "layer1.weight" in out and "layer2.weight" in out
    code, out, _ = run("show", "hf://org/tiny", "embed.weight", "-f", "json")
    assert code == 0 and json.loads(out)["stats"]["max"] == 0.0


def test_offline_a_file_not_in_the_cache_is_an_io_error(hub_cache: Path) -> None:
    code, _, err = run("list", "hf://org/tiny@v2.0/model.safetensors")
    assert code == ExitCode.IO
    line = one_line_error(err)
    assert "not in the local Hugging Face cache at v2.0" in line and "HF_HUB_OFFLINE" in line


def test_an_hf_url_must_name_a_repository() -> None:
    code, _, err = run("list", "hf://just-a-name")
    assert code == ExitCode.USAGE
    assert "hf://org/name" in one_line_error(err)


def test_online_an_hf_file_not_in_the_cache_is_read_with_range_requests(
    nginx: Nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx stands in for the Hub (``HF_ENDPOINT``), serving ``/org/name/resolve/REV/FILE``."""
    sparse_safetensors(nginx.file("org/online/resolve/v2.0/model.safetensors"), {"w": (4096, 4096)})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", nginx.url("").rstrip("/"))
    nginx.mark()
    code, out, _ = run("list", "hf://org/online@v2.0/model.safetensors")
    assert code == 0 and "[4096, 4096]" in out
    served = nginx.requests()
    assert [request.path for request in served] == ["/org/online/resolve/v2.0/model.safetensors"]
    assert served[0].status == 206 and served[0].body_bytes <= 64 << 10


def test_the_token_goes_to_the_hub_and_not_to_the_host_it_redirects_to(
    nginx: Nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sparse_safetensors(nginx.file("cdn/model.safetensors"), {"w": (16, 16)})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", nginx.url("").rstrip("/"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    nginx.mark()
    code, out, _ = run("list", "hf://org/moved/model.safetensors")
    assert code == 0 and "[16, 16]" in out
    hub, cdn = nginx.requests()
    assert (hub.status, hub.authorization) == (302, "Bearer hf_secret")
    assert (cdn.path, cdn.status, cdn.authorization) == ("/cdn/model.safetensors", 206, "-")
