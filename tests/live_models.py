"""Factories that the live-model tests name with ``--model tests/live_models.py:NAME``."""

from __future__ import annotations

import torch
from torch import nn


def mlp(hidden: int = 3) -> nn.Sequential:
    """The lessons' MLP: ``Sequential(Linear(4, hidden), ReLU(), Linear(hidden, 1))``."""
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def tied() -> nn.Sequential:
    """One ``Linear(1, 1, bias=False)`` of weight 3 used twice."""
    linear = nn.Linear(1, 1, bias=False)
    nn.init.constant_(linear.weight, 3.0)
    return nn.Sequential(linear, linear)


def lazy() -> nn.Sequential:
    """The lessons' deferred initialization: the first layer learns its input size."""
    return nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.Linear(256, 10))


class Mixed(nn.Module):
    """A used layer, an unused one, a frozen one, batch norm (buffers), and dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 6)
        self.unused = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)
        self.frozen = nn.Linear(6, 1)
        self.frozen.requires_grad_(False)
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frozen(self.drop(torch.relu(self.bn(self.used(x)))))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a(x) * self.b(y)


def not_a_module() -> dict[str, int]:
    return {"a": 1}


def broken() -> nn.Module:
    raise RuntimeError("the factory is broken")


def squares(output: torch.Tensor) -> torch.Tensor:
    """A loss for ``--loss``: the sum of squares."""
    return (output**2).sum()


def not_scalar(output: torch.Tensor) -> torch.Tensor:
    return output * 2


def spec(name: str) -> str:
    """The ``--model`` text naming factory ``name`` of this file."""
    return f"{__file__}:{name}"
