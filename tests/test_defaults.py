"""--scheme default: what PyTorch gives each layer, inferred from names and shapes.

When a model's tensors are stored in the order its constructor drew them, `init --scheme
default --seed N` reproduces `torch.manual_seed(N); Model()` byte for byte: the strongest
check that the inferred rules are PyTorch's own.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from paramctl.checkpoint import TensorEntry
from paramctl.schemes.defaults import infer_defaults


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.conv1d = nn.Conv1d(8, 4, 5, groups=2)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 5, num_layers=2, bidirectional=True)
        self.head = nn.Linear(10, 3)


@pytest.mark.parametrize(
    "build",
    [
        lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1)),
        ConvNet,
        Tagger,
        lambda: nn.GRU(4, 3),
        lambda: nn.Sequential(nn.ConvTranspose2d(4, 2, 3), nn.GroupNorm(1, 2)),
    ],
    ids=["mlp", "convnet", "tagger", "gru", "convtranspose"],
)
def test_default_reproduces_pytorch_constructors_byte_for_byte(cli, save_pt, tmp_path, build):
    torch.manual_seed(123)
    model = build()
    path = save_pt(model.state_dict())
    scrambled = tmp_path / "scrambled.pt"
    # Overwrite everything first, so nothing can pass by being left alone.
    assert (
        cli("init", path, "-s", "constant(val=7)", "-o", scrambled, "-q", "--skip-incompatible").exit_code
        == 0
    )
    out = tmp_path / "out.pt"
    result = cli("init", scrambled, "-s", "default", "--seed", 123, "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    restored = torch.load(out, weights_only=True)
    for name, value in model.state_dict().items():
        assert torch.equal(restored[name], value), name


def test_tied_embedding_and_head_get_the_embedding_rule(cli, samples):
    result = cli("init", samples / "tied_transformer.pt", "-s", "default", "-n", "-f", "json")
    plan = json.loads(result.stdout)
    rows = {row["name"]: row for row in plan["tensors"]}
    assert rows["embed.weight"]["action"] == "normal(mean=0.0, std=1.0)"
    assert rows["embed.weight"]["shared_with"] == ["lm_head.weight"]
    assert "lm_head.weight" not in rows
    assert rows["attn.in_proj_weight"]["action"] == "xavier_uniform(gain=1.0)"
    assert rows["attn.in_proj_bias"]["action"] == "zeros"
    assert rows["attn.out_proj.bias"]["action"] == "zeros"
    assert rows["attn.out_proj.weight"]["inferred"]["layer"] == "Linear"
    assert rows["norm1.weight"]["action"] == "ones"
    assert rows["mlp.0.bias"]["inferred"]["why"] == "fan_in 8 from mlp.0.weight"


def test_dry_run_table_shows_what_was_inferred(cli, samples):
    result = cli("init", samples / "mlp.pt", "-s", "default", "--dry-run", "-f", "tsv")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "name\tshape\tdtype\taction\tlayer\tshared_with\talso_changes",
        "0.weight\t[3, 4]\tfloat32\tkaiming_uniform(a=2.23606797749979, mode=fan_in, nonlinearity=leaky_relu)"
        "\tLinear (2-D weight)\t\t",
        "0.bias\t[3]\tfloat32\tuniform(a=-0.5, b=0.5)\tLinear (fan_in 4 from 0.weight)\t\t",
        "2.weight\t[1, 3]\tfloat32\tkaiming_uniform(a=2.23606797749979, mode=fan_in, nonlinearity=leaky_relu)"
        "\tLinear (2-D weight)\t\t",
        "2.bias\t[1]\tfloat32\tuniform(a=-0.5773502691896258, b=0.5773502691896258)"
        "\tLinear (fan_in 3 from 2.weight)\t\t",
    ]


def entry(name, shape, key=None):
    stride = tuple(int(torch.empty(shape).stride()[i]) for i in range(len(shape)))
    return TensorEntry(name, tuple(name.split(".")), shape, "float32", stride, key or name)


def test_unknown_layers_are_refused_with_the_reason(cli, save_pt):
    path = save_pt(
        {"pos_embed": torch.zeros(1, 4, 8), "cls_token": torch.zeros(1, 1, 8), "fc.weight": torch.zeros(2, 2)}
    )
    result = cli("init", path, "-s", "default", "-o", path.with_name("o.pt"))
    assert result.exit_code == 3
    assert result.stderr == (
        "paramctl: error: cannot infer the layer of: pos_embed, cls_token (--dry-run --skip-incompatible "
        "shows why; --skip-incompatible leaves them unchanged)\n"
    )
    skipped = cli("init", path, "-s", "default", "--skip-incompatible", "-n", "-f", "json")
    assert json.loads(skipped.stdout)["skipped"] == [
        {
            "name": "pos_embed",
            "reason": "cannot infer its layer (no rule for a 3-D tensor named 'pos_embed')",
        },
        {
            "name": "cls_token",
            "reason": "cannot infer its layer (no rule for a 3-D tensor named 'cls_token')",
        },
    ]


def test_inference_rules():
    guesses = infer_defaults(
        [
            entry("encoder.word_embeddings.weight", (100, 16)),
            entry("bn.running_mean", (4,)),
            entry("bn.running_var", (4,)),
            entry("bn.num_batches_tracked", ()),
            entry("ln.gamma", (4,)),
            entry("ln.beta", (4,)),
            entry("conv.weight", (8, 4, 3, 3, 3)),
            entry("conv.bias", (8,)),
            entry("lonely.bias", (3,)),
            entry("cell.weight_ih", (12, 4)),
            entry("cell.weight_hh", (12, 3)),
            entry("bilinear.weight", (5, 4, 3)),
            entry("attn.bias_k", (1, 1, 8)),
        ]
    )
    described = {name: guess.describe() for name, guess in guesses.items()}
    assert described["encoder.word_embeddings.weight"] == "Embedding weight → normal(mean=0.0, std=1.0)"
    assert described["bn.running_mean"] == "BatchNorm running_mean → zeros"
    assert described["bn.running_var"] == "BatchNorm running_var → ones"
    assert described["bn.num_batches_tracked"] == "BatchNorm counter → zeros"
    assert described["ln.gamma"] == "norm gamma → ones"
    assert described["ln.beta"] == "norm beta → zeros"
    assert described["conv.weight"].startswith("Conv3d weight → kaiming_uniform(a=2.236")
    assert described["conv.bias"] == f"Conv3d bias → uniform(a={-1 / 108**0.5!r}, b={1 / 108**0.5!r})"
    assert described["lonely.bias"] == "unknown bias → no rule"
    assert (
        described["cell.weight_ih"]
        == f"RNN/LSTM/GRU weight_ih → uniform(a={-1 / 3**0.5!r}, b={1 / 3**0.5!r})"
    )
    assert described["bilinear.weight"] == "Bilinear weight → uniform(a=-0.5, b=0.5)"
    assert described["attn.bias_k"] == "MultiheadAttention bias_k → xavier_normal(gain=1.0)"
