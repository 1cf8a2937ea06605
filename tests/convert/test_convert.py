"""``paramctl convert``: the everyday jobs, what the report says, and what is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open

from paramctl.formats import read_checkpoint


def tensors_of(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as file:
        return {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118


def shares(first: torch.Tensor, second: torch.Tensor) -> bool:
    return first.untyped_storage().data_ptr() == second.untyped_storage().data_ptr()


@pytest.fixture
def lightning(save_pt) -> Path:
    """A training checkpoint: the model under state_dict with a model. prefix, and the rest."""
    generator = torch.Generator().manual_seed(0)
    state = {
        "model.encoder.weight": torch.randn(6, 4, generator=generator),
        "model.norm.weight": torch.ones(4),
        "model.head.weight": torch.randn(3, 4, generator=generator),
        "model.steps": torch.tensor([7], dtype=torch.int64),
    }
    return save_pt({"state_dict": state, "epoch": 3, "optimizer_states": [{"lr": 0.1}]}, "train.ckpt")


def test_a_training_checkpoint_becomes_the_models_safetensors(cli, lightning, tmp_path):
    out = tmp_path / "model.safetensors"
    result = cli("convert", lightning, out, "--strip-prefix", "model.")
    assert result.exit_code == 0, result.stderr
    loaded = tensors_of(out)
    original = torch.load(lightning, weights_only=True)["state_dict"]
    assert sorted(loaded) == ["encoder.weight", "head.weight", "norm.weight", "steps"]
    for name, tensor in loaded.items():
        assert torch.equal(tensor, original[f"model.{name}"])
    assert "the model dict 'state_dict', its prefix cut" in result.stderr


def test_dtype_casts_the_floating_tensors_the_selection_names_and_keeps_every_tensor(
    cli, lightning, tmp_path
):
    out = tmp_path / "half.safetensors"
    result = cli("convert", lightning, out, "--dtype", "bfloat16", "--exclude", "*norm*")
    assert result.exit_code == 0, result.stderr
    loaded = tensors_of(out)
    original = torch.load(lightning, weights_only=True)["state_dict"]
    assert loaded["model.encoder.weight"].dtype == torch.bfloat16
    assert torch.equal(loaded["model.encoder.weight"], original["model.encoder.weight"].to(torch.bfloat16))
    assert loaded["model.norm.weight"].dtype == torch.float32  # excluded from the cast
    assert loaded["model.steps"].dtype == torch.int64  # integers never
    assert "2 tensors cast to bfloat16" in result.stderr


def test_float16_rounds_as_torch_does(cli, save_pt, tmp_path):
    values = torch.randn(100_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1000
    source = save_pt({"w": values, "x": values.float()})
    out = tmp_path / "h.pt"
    assert cli("convert", source, out, "--dtype", "float16").exit_code == 0
    loaded = torch.load(out, weights_only=True)
    assert torch.equal(loaded["w"], values.half())
    assert torch.equal(loaded["x"], values.float().half())


def test_selection_picks_the_tensors_kept_and_rename_renames(cli, lightning, tmp_path):
    out = tmp_path / "head.pt"
    args = ["--match", "*head*", "--match", "*encoder*", "--rename", r"^model\.(\w+)\.weight$=\1"]
    result = cli("convert", lightning, out, *args)
    assert result.exit_code == 0, result.stderr
    assert sorted(torch.load(out, weights_only=True)) == ["encoder", "head"]


def test_a_renaming_that_merges_two_names_is_refused(cli, lightning, tmp_path):
    result = cli("convert", lightning, tmp_path / "x.pt", "--rename", ".*=same")
    assert result.exit_code == 2
    assert "maps both" in result.stderr


def test_the_whole_checkpoint_keeps_its_other_values_in_a_pt(cli, lightning, tmp_path):
    out = tmp_path / "all.pt"
    assert cli("convert", lightning, out, "--all").exit_code == 0
    loaded = torch.load(out, weights_only=True)
    assert loaded["epoch"] == 3 and loaded["optimizer_states"] == [{"lr": 0.1}]


def test_other_values_a_format_cannot_hold_are_refused_naming_the_option(cli, lightning, tmp_path):
    result = cli("convert", lightning, tmp_path / "x.safetensors", "--all")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "epoch" in result.stderr and "--drop-extras" in result.stderr
    dropped = cli("convert", lightning, tmp_path / "x.safetensors", "--all", "--drop-extras")
    assert dropped.exit_code == 0
    assert "2 other values left out" in dropped.stderr


def test_a_quantized_tensor_into_safetensors_is_refused_naming_the_option(cli, tmp_path):
    path = tmp_path / "q.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    data = np.random.default_rng(0).standard_normal((4, 64), dtype=np.float32)
    quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.w", quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.norm", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out = tmp_path / "q.safetensors"
    refused = cli("convert", path, out, "--drop-extras")
    assert refused.exit_code == 2
    assert "Q8_0" in refused.stderr and "--exclude 'blk.0.w'" in refused.stderr
    assert cli("convert", path, out, "--drop-extras", "--exclude", "blk.0.w").exit_code == 0
    assert list(tensors_of(out)) == ["blk.0.norm"]
    dequantized = cli("convert", path, tmp_path / "d.safetensors", "--drop-extras", "--dtype", "float32")
    assert dequantized.exit_code == 0
    assert torch.allclose(
        tensors_of(tmp_path / "d.safetensors")["blk.0.w"], torch.from_numpy(data), atol=0.05
    )


def test_an_unclaimed_suffix_without_to_is_a_usage_error(cli, lightning, tmp_path):
    result = cli("convert", lightning, tmp_path / "out.weights")
    assert result.exit_code == 2
    assert "--to" in result.stderr
    assert not (tmp_path / "out.weights").exists()


def test_views_the_target_cannot_hold_are_stored_whole_and_reported(cli, save_pt, tmp_path):
    base = torch.arange(12.0)
    source = save_pt({"all": base, "front": base[:8], "back": base[4:]})
    out = tmp_path / "v.safetensors"
    result = cli("convert", source, out)
    assert result.exit_code == 0, result.stderr
    loaded = tensors_of(out)
    assert torch.equal(loaded["back"], base[4:]) and torch.equal(loaded["front"], base[:8])
    assert "3 views of shared bytes stored whole" in result.stderr
    kept = tmp_path / "v.pt"
    assert cli("convert", source, kept).exit_code == 0
    again = torch.load(kept, weights_only=True)
    assert shares(again["back"], again["all"])


def test_one_file_to_shards_and_back(cli, save_pt, tmp_path):
    state = {f"layer.{i}.weight": torch.full((256,), float(i)) for i in range(8)}
    source = save_pt(state)
    shards = tmp_path / "shards"
    result = cli("convert", source, shards, "--to", "hf-sharded", "--max-shard-size", "3KB")
    assert result.exit_code == 0, result.stderr
    index = json.loads((shards / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 8 * 1024
    assert sorted(set(index["weight_map"].values())) == [
        f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)
    ]
    back = tmp_path / "back.pt"
    assert cli("convert", shards, back).exit_code == 0
    loaded = torch.load(back, weights_only=True)
    assert all(torch.equal(loaded[name], tensor) for name, tensor in state.items())


def test_shards_load_with_from_pretrained(cli, tmp_path):
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)
    model = GPT2Model(config).eval()
    single = tmp_path / "single"
    model.save_pretrained(single)
    shards = tmp_path / "sharded"
    result = cli(
        "convert", single / "model.safetensors", shards, "--to", "hf-sharded", "--max-shard-size", "20KB"
    )
    assert result.exit_code == 0, result.stderr
    assert len(list(shards.glob("model-*.safetensors"))) > 1
    config.save_pretrained(shards)
    loaded = GPT2Model.from_pretrained(shards)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_pt_to_safetensors_and_back_needs_no_torch(save_pt, tmp_path):
    tied = torch.randn(4, 4)
    source = save_pt(
        {"embed.weight": tied, "head.weight": tied, "bias": torch.zeros(4, dtype=torch.bfloat16)}
    )
    program = (
        "import sys\n"
        "from paramctl.convert import convert\n"
        "convert(sys.argv[1], sys.argv[2])\n"
        "convert(sys.argv[2], sys.argv[3])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    middle, back = tmp_path / "m.safetensors", tmp_path / "back.pt"
    subprocess.run([sys.executable, "-c", program, str(source), str(middle), str(back)], check=True)
    loaded = torch.load(back, weights_only=True)
    assert torch.equal(loaded["embed.weight"], tied)
    assert (
        loaded["head.weight"].untyped_storage().data_ptr()
        == loaded["embed.weight"].untyped_storage().data_ptr()
    )
    assert read_checkpoint(middle).entry("head.weight").recorded_alias


def test_the_report_is_one_row_in_a_pipe_and_json_on_request(cli, lightning, tmp_path):
    out = tmp_path / "m.safetensors"
    tsv = cli("convert", lightning, out, "--format", "tsv")
    assert tsv.stdout.splitlines() == [
        "source\toutput\tformat\ttensors\tbytes\tfiles",
        f"{lightning}\t{out}\tsafetensors\t4\t{(24 + 4 + 12) * 4 + 8}\t1",
    ]
    document = json.loads(cli("convert", lightning, out, "--format", "json").stdout)
    assert document["prefix"] == "state_dict" and document["files"] == ["m.safetensors"]
