"""Inputs for a live module: random tensors of given shapes, or tensors from a file; the
dry forward pass that gives lazy layers their shapes; seeded runs.

>>> from torch import nn
>>> inputs = random_inputs(nn.Linear(4, 2), [(2, 4)])
>>> inputs.describe()
'x: [2, 4] float32'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from paramctl.change import draw_seed
from paramctl.errors import CorruptCheckpoint, UsageError
from paramctl.live.tensors import dtype_name, is_lazy


@dataclass
class Inputs:
    """The arguments a forward pass gets, and how to describe them."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """Each argument as ``name: [shape] dtype``, positional ones first.

        >>> Inputs((torch.zeros(2, 4),)).describe()
        'x: [2, 4] float32'
        """
        parts = [_describe_value(f"x{i}" if len(self.args) > 1 else "x", a) for i, a in enumerate(self.args)]
        parts += [_describe_value(k, v) for k, v in self.kwargs.items()]
        return ", ".join(parts)

    def call(self, module: nn.Module) -> Any:
        return module(*self.args, **self.kwargs)


def _describe_value(label: str, value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{label}: {list(value.shape)} {dtype_name(value.dtype)}"
    return f"{label}: {type(value).__name__}"


def parse_shape(text: str) -> tuple[int, ...]:
    """``2,4`` (or ``2x4``) as a shape.

    >>> parse_shape("2,4"), parse_shape("1x3x32x32"), parse_shape("8")
    ((2, 4), (1, 3, 32, 32), (8,))
    """
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"--input-shape {text!r}: expected sizes like 2,4")
    return tuple(int(p) for p in parts)


def input_dtype(module: nn.Module) -> torch.dtype:
    """The dtype random inputs take: the module's first floating parameter's, else float32."""
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def random_inputs(module: nn.Module, shapes: Sequence[Sequence[int]], *, fill: float | None = None) -> Inputs:
    """One ``torch.rand`` tensor per shape, drawn in order from torch's global generator, in
    the dtype of the module's parameters; with ``fill``, tensors of that constant instead.

    Drawing from the global generator is what makes ``torch.manual_seed(n); net = make();
    X = torch.rand(2, 4)`` and a seeded paramctl run the same computation.

    >>> random_inputs(nn.Linear(2, 1), [(1, 2)], fill=1.0).args
    (tensor([[1., 1.]]),)
    """
    if not shapes:
        raise UsageError("an input is needed: give --input-shape 2,4 or --input FILE.pt")
    dtype = input_dtype(module)
    if fill is not None:
        return Inputs(tuple(torch.full(tuple(shape), fill, dtype=dtype) for shape in shapes))
    return Inputs(tuple(torch.rand(*shape, dtype=dtype) for shape in shapes))


def load_inputs(path: str | os.PathLike[str]) -> Inputs:
    """Inputs saved with ``torch.save``: a tensor, a tuple/list of them (positional), or a dict
    of keyword arguments. Loaded with ``weights_only=True``: plain data only.
    """
    import pickle

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UsageError(f"--input {os.fspath(path)!r}: no such file") from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpoint(
            f"--input {os.fspath(path)!r}: not a torch.save file of plain tensors ({reason})"
        ) from exc
    if isinstance(loaded, torch.Tensor):
        return Inputs((loaded,))
    if isinstance(loaded, list | tuple):
        return Inputs(tuple(loaded))
    if isinstance(loaded, dict) and all(isinstance(k, str) for k in loaded):
        return Inputs((), dict(loaded))
    raise UsageError(f"--input {os.fspath(path)!r}: expected a tensor, a list of tensors or a dict")


@contextlib.contextmanager
def dry_run(module: nn.Module) -> Iterator[None]:
    """Run a forward pass that leaves the module as it was: eval mode, no autograd, and
    every module's train/eval flag restored after (so no running statistics move).
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for submodule, training in modes:
            submodule.training = training


def materialize(module: nn.Module, inputs: Inputs) -> list[str]:
    """Give lazy parameters their shapes with one dry forward pass; return the names that
    got one (the deferred initialization of ``LazyLinear`` and friends).
    """
    before = {name for name, tensor in _named_tensors(module) if is_lazy(tensor)}
    if not before:
        return []
    with dry_run(module):
        forward(module, inputs)
    still = {name for name, tensor in _named_tensors(module) if is_lazy(tensor)}
    if still:
        raise UsageError(f"the forward pass did not reach {', '.join(sorted(still)[:4])}; they stay lazy")
    return [name for name, _ in _named_tensors(module) if name in before]


def _named_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)


def forward(module: nn.Module, inputs: Inputs) -> Any:
    """``module(*inputs)``; a failure names the inputs, which are the usual cause."""
    try:
        return inputs.call(module)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the forward pass failed with {inputs.describe()}: {first}") from exc


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's global generator for the block and restore its state after.

    ``None`` leaves the generator alone.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(draw_seed(seed))
        yield


@dataclass(frozen=True)
class InputSpec:
    """The probe input: ``torch.rand`` of ``shapes`` (``--input-shape``), or those shapes
    filled with ``fill`` (``--input-value``), or tensors loaded from ``path`` (``--input``).
    """

    shapes: tuple[tuple[int, ...], ...] = ()
    path: str | None = None
    fill: float | None = None

    def __post_init__(self) -> None:
        if self.shapes and self.path:
            raise UsageError("--input-shape and --input exclude each other")
        if self.fill is not None and not self.shapes:
            raise UsageError("--input-value fills the --input-shape input: give --input-shape too")

    def __bool__(self) -> bool:
        return bool(self.shapes or self.path)

    def make(self, module: nn.Module) -> Inputs:
        if self.path:
            return load_inputs(self.path)
        return random_inputs(module, self.shapes, fill=self.fill)
