"""Checkpoints on S3: moto's S3 server on loopback, s3fs pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from paramctl.errors import CheckpointIOError, ExitCode
from paramctl.formats import read_checkpoint
from paramctl.values import ValueReader
from tests.remote.test_errors import one_line_error
from tests.remote.test_http import run

pytest.importorskip("s3fs", reason="s3fs (the remote extra) is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (the test extra) is not installed")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An s3fs file system on moto's server, with a bucket ``models``."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        }.items():
            patch.setenv(name, value)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("models")
        yield fs
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def put(fs: Any, tmp_path: Path, key: str, tensors: dict[str, torch.Tensor]) -> str:
    local = tmp_path / Path(key).name
    if key.endswith(".safetensors"):
        save_file(tensors, local)
    else:
        torch.save(tensors, local)
    fs.put(str(local), f"models/{key}")
    return f"s3://models/{key}"


def test_list_and_show_read_an_s3_object(s3: Any, tmp_path: Path) -> None:
    url = put(s3, tmp_path, "plain/model.pt", {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)})
    code, out, _ = run("list", url)
    assert code == 0 and "[2, 3]" in out
    code, out, _ = run("show", url, "w", "-f", "json")
    assert code == 0 and json.loads(out)["stats"]["max"] == 5.0


def test_a_sharded_checkpoint_on_s3_is_read_by_its_index(s3: Any, tmp_path: Path) -> None:
    weight_map = {}
    for shard in (1, 2):
        name = f"model-{shard:05d}-of-00002.safetensors"
        put(s3, tmp_path, f"sharded/{name}", {f"layer{shard}.weight": torch.zeros(3, 3)})
        weight_map[f"layer{shard}.weight"] = name
    (tmp_path / "index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    s3.put(str(tmp_path / "index.json"), "models/sharded/model.safetensors.index.json")
    code, out, _ = run("list", "s3://models/sharded/model.safetensors.index.json")
    assert code == 0 and "layer1.weight" in out and "layer2.weight" in out
    code, out, _ = run("list", "s3://models/sharded")  # a prefix is a folder
    assert code == 0 and "layer2.weight" in out


def test_values_from_s3_are_the_objects_values(s3: Any, tmp_path: Path) -> None:
    values = torch.arange(20.0).reshape(4, 5)
    url = put(s3, tmp_path, "values/model.safetensors", {"w": values})
    checkpoint = read_checkpoint(url)
    with ValueReader(checkpoint) as reader:
        np.testing.assert_array_equal(reader.array(checkpoint.entry("w")), values.numpy())


def test_a_missing_object_is_an_io_error(s3: Any) -> None:
    code, _, err = run("list", "s3://models/nowhere/model.pt")
    assert code == ExitCode.IO
    assert "s3://models/nowhere/model.pt" in one_line_error(err)


def test_an_object_replaced_while_it_is_read_is_an_io_error(s3: Any, tmp_path: Path) -> None:
    url = put(s3, tmp_path, "replaced/model.safetensors", {"w": torch.zeros(50_000)})
    checkpoint = read_checkpoint(url)
    put(s3, tmp_path, "replaced/model.safetensors", {"w": torch.ones(50_000)})
    with ValueReader(checkpoint) as reader, pytest.raises(CheckpointIOError, match="ETag changed"):
        reader.array(checkpoint.entry("w"))
