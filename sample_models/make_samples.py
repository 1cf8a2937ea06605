"""Regenerate the sample checkpoints in this folder: ``python sample_models/make_samples.py``.

Each sample is a real model saved the way people save them, small enough to commit:

- ``mlp.pt``: ``Sequential(Linear(4, 3), ReLU(), Linear(3, 1))`` as a state_dict.
- ``mlp_legacy.pt``: the same, in the pre-1.6 (non-zip) ``torch.save`` format.
- ``tied_sequential.pt``: one ``Linear(1, 1, bias=False)`` used twice,
  ``Sequential(linear, linear)``, so ``0.weight`` and ``1.weight`` are one tensor.
- ``cnn.safetensors``: conv, conv, linear, dropout, linear, via ``safetensors.torch.save_file``.
- ``training.pt``: ``{"state_dict", "optimizer", "epoch": 3}`` after one Adam step.
- ``tied_transformer.pt``: a tiny transformer-like model whose output projection is tied to
  its embedding; ``tied_transformer.safetensors``: the same via ``save_model`` (the tied
  name is recorded in ``__metadata__``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file, save_model
from torch import nn

HERE = Path(__file__).resolve().parent


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))


def tied_sequential() -> nn.Sequential:
    linear = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        linear.weight.fill_(3.0)
    return nn.Sequential(linear, linear)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=3)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3)
        self.fc1 = nn.Linear(8 * 4 * 4, 16)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(self.dropout(torch.relu(self.fc1(x.flatten(1)))))


class TinyTransformer(nn.Module):
    """Embedding, one pre-norm block, and an output head that shares the embedding weight."""

    def __init__(self, vocab: int = 32, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return self.lm_head(x)


def training_checkpoint() -> dict[str, object]:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 4)).sum().backward()
    optimizer.step()
    return {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}


def main() -> None:
    torch.manual_seed(0)
    torch.save(mlp().state_dict(), HERE / "mlp.pt")
    torch.manual_seed(0)
    torch.save(mlp().state_dict(), HERE / "mlp_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(tied_sequential().state_dict(), HERE / "tied_sequential.pt")
    torch.manual_seed(0)
    save_file(SmallCNN().state_dict(), HERE / "cnn.safetensors", metadata={"format": "pt"})
    torch.manual_seed(0)
    torch.save(training_checkpoint(), HERE / "training.pt")
    torch.manual_seed(0)
    transformer = TinyTransformer()
    torch.save(transformer.state_dict(), HERE / "tied_transformer.pt")
    save_model(transformer, str(HERE / "tied_transformer.safetensors"))


if __name__ == "__main__":
    main()
