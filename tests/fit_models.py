"""Factories that the fit tests name with ``--model tests/fit_models.py:NAME``."""

from __future__ import annotations

from torch import nn


def classifier(classes: int = 10) -> nn.Sequential:
    """A small image classifier: convolution, batch norm, a linear head of ``classes``."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    )


class Wrapped(nn.Module):
    """The classifier under a ``backbone`` attribute, as a fine-tuning script wraps it."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = classifier()


def lazy() -> nn.Sequential:
    return nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.Linear(3, 1))
