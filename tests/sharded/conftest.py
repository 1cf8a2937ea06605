"""Sharded Hugging Face checkpoints written by the real writers, once per session.

``transformers``' ``save_pretrained`` writes safetensors shards; ``huggingface_hub``'s
``save_torch_state_dict`` (the sharding ``save_pretrained`` is built on) writes ``.bin``
shards, which transformers no longer writes itself. The model is a tiny GPT-2 made from a
config, so nothing is downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

SHARD_SIZE = "20KB"


def tiny_gpt2() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    return GPT2LMHeadModel(config)


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from huggingface_hub import save_torch_state_dict

    root = tmp_path_factory.mktemp("hf")
    model = tiny_gpt2()
    model.save_pretrained(root / "safetensors", max_shard_size=SHARD_SIZE)
    model.config.save_pretrained(root / "bin")
    save_torch_state_dict(
        model.state_dict(), root / "bin", max_shard_size=SHARD_SIZE, safe_serialization=False
    )
    return {"safetensors": root / "safetensors", "bin": root / "bin"}


@pytest.fixture(params=["safetensors", "bin"])
def hf_dir(request: pytest.FixtureRequest, written: dict[str, Path], tmp_path: Path) -> Path:
    """A fresh copy of a sharded directory, safe to edit."""
    copy = tmp_path / request.param
    shutil.copytree(written[request.param], copy)
    return copy
