"""Sharded Hugging Face checkpoints (an index and its shards) are one checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from paramctl import read_checkpoint
from paramctl.errors import CorruptCheckpoint, ExitCode, UsageError
from paramctl.inspect.check import check_checkpoint
from paramctl.values import ValueReader


def index_of(directory: Path) -> Path:
    (index,) = directory.glob("*.index.json")
    return index


def reference(directory: Path) -> dict[str, torch.Tensor]:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(directory).state_dict()


def test_a_directory_and_its_index_are_one_checkpoint(hf_dir):
    by_directory, by_index = read_checkpoint(hf_dir), read_checkpoint(index_of(hf_dir))
    assert by_directory.format == by_index.format == "hf-sharded"
    assert by_directory.names() == by_index.names()
    assert len(by_directory.files) == 7


def test_names_shapes_and_dtypes_are_what_transformers_loads(hf_dir):
    checkpoint = read_checkpoint(hf_dir)
    loaded = reference(hf_dir)
    listed = {e.name: (e.shape, e.dtype) for e in checkpoint.entries}
    assert listed == {
        name: (tuple(t.shape), str(t.dtype).removeprefix("torch.")) for name, t in loaded.items()
    }


def test_values_are_what_transformers_loads(hf_dir):
    checkpoint = read_checkpoint(hf_dir)
    loaded = reference(hf_dir)
    with ValueReader(checkpoint) as values:
        for entry in checkpoint.entries:
            assert torch.equal(values.tensor(entry), loaded[entry.name]), entry.name


def test_the_tie_the_config_declares_is_an_alias_of_the_embedding(hf_dir, cli):
    checkpoint = read_checkpoint(hf_dir)
    assert (
        checkpoint.entry("lm_head.weight").storage_key
        == checkpoint.entry("transformer.wte.weight").storage_key
    )
    result = cli("shared", str(hf_dir))
    assert result.exit_code == 0
    assert "lm_head.weight" in result.stdout and "transformer.wte.weight" in result.stdout


def test_list_by_file_names_each_shard(hf_dir, cli):
    result = cli("list", str(hf_dir), "--by-file", "--format", "json")
    rows = json.loads(result.stdout)["tensors"]
    index = json.loads(index_of(hf_dir).read_text())["weight_map"]
    assert {row["name"]: row["file"] for row in rows if row["name"] in index} == index


def test_a_directory_with_one_file_is_that_file(tmp_path, save_st):
    folder = tmp_path / "one"
    folder.mkdir()
    save_st({"w": torch.zeros(2)}, name="one/model.safetensors")
    assert read_checkpoint(folder).format == "safetensors"


def test_a_directory_with_several_checkpoints_lists_them(hf_dir, save_st):
    save_st({"w": torch.zeros(2)}, name=f"{hf_dir.name}/model.safetensors")
    shutil.copy(index_of(hf_dir), hf_dir / "diffusion_pytorch_model.safetensors.index.json")
    with pytest.raises(UsageError, match=r"holds several checkpoints; give one of .*diffusion_pytorch_model"):
        read_checkpoint(hf_dir)


def _rewrite_index(directory: Path, change) -> None:
    index = index_of(directory)
    raw = json.loads(index.read_text())
    change(raw)
    index.write_text(json.dumps(raw))


def _drop_one(raw):
    raw["weight_map"].pop("transformer.h.0.ln_1.bias")


def _move_one(raw):
    raw["weight_map"]["transformer.h.0.ln_1.bias"] = (
        "model-00003-of-00007.safetensors"
        if "model-00001-of-00007.safetensors" in raw["weight_map"].values()
        else "pytorch_model-00003-of-00007.bin"
    )


def _missing_shard(raw):
    raw["weight_map"]["transformer.ln_f.bias"] = "gone.safetensors"


def _wrong_total(raw):
    raw["metadata"]["total_size"] += 4


def _escape(raw):
    raw["weight_map"]["transformer.ln_f.bias"] = "../outside.safetensors"


def _absolute(raw):
    raw["weight_map"]["transformer.ln_f.bias"] = "/etc/passwd"


INDEX_DAMAGE = [
    pytest.param(_drop_one, "in .* but not in the index", ExitCode.INVALID_INPUT, id="not-in-index"),
    pytest.param(_move_one, "the index puts it in .*, it is in", ExitCode.INVALID_INPUT, id="wrong-shard"),
    pytest.param(
        _missing_shard, "shard gone.safetensors does not exist", ExitCode.INVALID_INPUT, id="missing-shard"
    ),
    pytest.param(_wrong_total, "metadata.total_size is", ExitCode.INVALID_INPUT, id="total-size"),
    pytest.param(_escape, "leaves the index's directory", ExitCode.UNSAFE, id="dot-dot"),
    pytest.param(_absolute, "leaves the index's directory", ExitCode.UNSAFE, id="absolute"),
]


@pytest.mark.parametrize(("damage", "message", "code"), INDEX_DAMAGE)
def test_a_damaged_index_is_one_line_with_its_exit_code(hf_dir, cli, damage, message, code):
    _rewrite_index(hf_dir, damage)
    with pytest.raises(CorruptCheckpoint, match=message):
        read_checkpoint(hf_dir)
    before = {p.name: p.read_bytes() for p in hf_dir.iterdir()}
    for command in (["list", str(hf_dir)], ["init", str(hf_dir), "-s", "zeros", "--in-place"]):
        result = cli(*command)
        assert result.exit_code == code, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in hf_dir.iterdir()} == before  # nothing written


def test_check_reports_every_index_problem(hf_dir, cli):
    _rewrite_index(hf_dir, lambda raw: (_drop_one(raw), _missing_shard(raw), _escape(raw)))
    result = check_checkpoint(hf_dir)
    messages = [finding.message for finding in result.findings if finding.check == "index"]
    assert len(messages) == 3, messages
    assert cli("check", str(hf_dir)).exit_code == ExitCode.NEGATIVE


def test_a_tensor_in_two_shards_is_corrupt(hf_dir):
    first, second = sorted(p for p in hf_dir.iterdir() if p.name.startswith(("model-", "pytorch_model-")))[:2]
    shutil.copy(first, second)
    with pytest.raises(CorruptCheckpoint, match="in two shards"):
        read_checkpoint(hf_dir)
    assert any("in two shards" in f.message for f in check_checkpoint(hf_dir).findings)
