"""Gradients by a probe pass: the ``Y = net(X).sum(); Y.backward()`` of the lessons.

Checkpoints do not store gradients (``torch.save`` drops ``.grad``), so paramctl makes them:
feed an input, run forward, reduce the output to one number, run backward, and describe
each parameter's gradient. A parameter used twice (the same layer called twice, a tied
embedding) accumulates both uses in one gradient, shown once under all its names.

>>> import torch
>>> from torch import nn
>>> linear = nn.Linear(1, 1, bias=False)
>>> _ = nn.init.constant_(linear.weight, 3.0)
>>> probe = probe_gradients(nn.Sequential(linear, linear), torch.ones(1, 1))
>>> probe.loss_value, probe.rows[0].names, probe.rows[0].stats.mean
(9.0, ('0.weight', '1.weight'), 6.0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from paramctl.errors import ModelCodeError, UsageError
from paramctl.live.inputs import Inputs, InputSpec, forward, random_inputs, seeded
from paramctl.live.model import ModelSource
from paramctl.live.tensors import dtype_name, is_lazy, unique_parameters
from paramctl.select import Selection, nothing_selected
from paramctl.usercode import call_user, load_object

GradStatus = Literal["ok", "unused", "frozen"]
LossFunction = Callable[[Any], torch.Tensor]
REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class GradStats:
    """Summary of one gradient tensor, computed in at least float32."""

    norm: float
    mean: float
    max_abs: float
    zero_fraction: float

    @classmethod
    def of(cls, grad: torch.Tensor) -> GradStats:
        if grad.is_sparse:
            grad = grad.to_dense()
        values = grad.detach()
        if not values.is_floating_point() or values.element_size() < 4:
            values = values.float()
        if values.numel() == 0:
            return cls(0.0, 0.0, 0.0, 0.0)
        return cls(
            norm=float(torch.linalg.vector_norm(values)),
            mean=float(values.mean()),
            max_abs=float(values.abs().max()),
            zero_fraction=float((values == 0).sum()) / values.numel(),
        )


@dataclass(frozen=True)
class ParameterGrad:
    """One parameter after the probe: its names, and its gradient or why it has none.

    ``status`` is ``ok`` (a gradient arrived), ``unused`` (requires grad, but no gradient
    reached it: not used in forward, or detached) or ``frozen`` (``requires_grad=False``).
    """

    names: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    requires_grad: bool
    status: GradStatus
    stats: GradStats | None

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def shared_with(self) -> tuple[str, ...]:
        return self.names[1:]

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "name": self.name,
            "shared_with": list(self.shared_with),
            "shape": list(self.shape),
            "dtype": self.dtype,
            "requires_grad": self.requires_grad,
            "status": self.status,
            "grad_norm": None if stats is None else stats.norm,
            "grad_mean": None if stats is None else stats.mean,
            "grad_max_abs": None if stats is None else stats.max_abs,
            "grad_zeros": None if stats is None else stats.zero_fraction,
        }


@dataclass(frozen=True)
class GradProbe:
    """What one probe pass found: a row per distinct parameter, and how it was run."""

    rows: list[ParameterGrad]
    inputs: str
    loss: str
    loss_value: float
    mode: str
    seed: int | None = None
    source: str = ""

    def row(self, name: str) -> ParameterGrad:
        """The row of a parameter, by any of its names."""
        for row in self.rows:
            if name in row.names:
                return row
        raise KeyError(name)

    def selected(self, selection: Selection) -> GradProbe:
        """Only the rows with a name the selection takes."""
        rows = [row for row in self.rows if any(selection.matches(name) for name in row.names)]
        return GradProbe(rows, self.inputs, self.loss, self.loss_value, self.mode, self.seed, self.source)

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(("ok", "unused", "frozen"), 0)
        for row in self.rows:
            found[row.status] += 1
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "inputs": self.inputs,
            "loss": self.loss,
            "loss_value": self.loss_value,
            "mode": self.mode,
            "seed": self.seed,
            "parameters": [row.to_dict() for row in self.rows],
            "counts": self.counts(),
        }


def resolve_loss(loss: str | LossFunction) -> tuple[str, LossFunction]:
    """``sum``, ``mean``, or a function named ``file.py:fn`` / ``pkg.mod:fn``, called as
    ``fn(output)`` and returning a single-element tensor.

    >>> name, reduce = resolve_loss("mean")
    >>> name, float(reduce(torch.tensor([1.0, 3.0])))
    ('mean', 2.0)
    """
    if callable(loss):
        return getattr(loss, "__name__", "custom"), loss
    if loss in REDUCTIONS:
        return loss, lambda output: _reduce(output, loss)
    if ":" not in loss:
        raise UsageError(f"--loss {loss!r}: expected sum, mean, or 'path/file.py:function'")
    function = load_object(loss, option="--loss")
    return loss, lambda output: call_user(function, loss, output, option="--loss")


def _floating_leaves(output: Any) -> Iterator[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        if output.is_floating_point() or output.is_complex():
            yield output
    elif isinstance(output, dict):
        for value in output.values():
            yield from _floating_leaves(value)
    elif isinstance(output, list | tuple):
        for value in output:
            yield from _floating_leaves(value)


def _reduce(output: Any, how: str) -> torch.Tensor:
    """``output.sum()`` (or ``.mean()``); for a tuple or dict, of each floating tensor, added."""
    parts = [leaf.sum() if how == "sum" else leaf.mean() for leaf in _floating_leaves(output)]
    if not parts:
        raise UsageError(f"the model's output ({type(output).__name__}) holds no floating tensor to {how}")
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total.real if total.is_complex() else total


@contextlib.contextmanager
def _buffers_kept(module: nn.Module, mode: str | None) -> Iterator[None]:
    """Keep running statistics and train/eval flags as they were before the probe."""
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers() if not is_lazy(buffer)]
    modes = [(m, m.training) for m in module.modules()]
    if mode is not None:
        module.train(mode == "train")
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                if buffer.shape == value.shape:
                    buffer.copy_(value)
        for submodule, training in modes:
            submodule.training = training


def probe_gradients(
    module: nn.Module,
    inputs: Inputs | torch.Tensor | Sequence[torch.Tensor] | None = None,
    *,
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
    loss: str | LossFunction = "sum",
    seed: int | None = None,
    mode: Literal["train", "eval"] | None = None,
) -> GradProbe:
    """Run forward and backward once and describe every parameter's gradient.

    The input is ``inputs`` (a tensor, tensors, or :class:`~paramctl.live.inputs.Inputs`) or
    ``torch.rand`` of ``input_shape`` (one shape, or one per argument). With ``seed``, torch's
    generator is seeded for the pass (and restored after), so a seeded probe equals
    ``torch.manual_seed(seed); X = torch.rand(*shape); loss(net(X)).backward()``.

    ``mode`` forces train or eval mode for the pass (the module's own by default). Buffers
    (running statistics) and modes are restored after; the new gradients stay on the
    parameters, replacing any that were there, as a hand-written ``backward()`` would leave them.
    """
    loss_name, reduce = resolve_loss(loss)
    with seeded(seed), _buffers_kept(module, mode):
        prepared = _prepare_inputs(module, inputs, input_shape)
        for param in module.parameters():
            param.grad = None
        with torch.enable_grad():
            output = forward(module, prepared)
            value = reduce(output)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ModelCodeError(f"--loss {loss_name}: must give a single-element tensor")
            if not value.requires_grad:
                raise UsageError("the loss does not depend on any parameter that requires grad")
            value.backward()  # type: ignore[no-untyped-call]
        used_mode = "train" if module.training else "eval"
    rows = [_row(names, param) for names, param in unique_parameters(module)]
    return GradProbe(rows, prepared.describe(), loss_name, float(value.detach()), used_mode, seed)


def _prepare_inputs(
    module: nn.Module,
    inputs: Inputs | torch.Tensor | Sequence[torch.Tensor] | None,
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None,
) -> Inputs:
    if inputs is not None and input_shape is not None:
        raise UsageError("give an input or an input shape, not both")
    if isinstance(inputs, Inputs):
        return inputs
    if isinstance(inputs, torch.Tensor):
        return Inputs((inputs,))
    if inputs is not None:
        return Inputs(tuple(inputs))
    if input_shape is None:
        raise UsageError("an input is needed: give --input-shape 2,4 or --input FILE.pt")
    shapes = [input_shape] if all(isinstance(s, int) for s in input_shape) else input_shape
    return random_inputs(module, [tuple(shape) for shape in shapes])  # type: ignore[arg-type]


def _row(names: list[str], param: nn.Parameter) -> ParameterGrad:
    shape, dtype = tuple(param.shape), dtype_name(param.dtype)
    if not param.requires_grad:
        return ParameterGrad(tuple(names), shape, dtype, False, "frozen", None)
    if param.grad is None:
        return ParameterGrad(tuple(names), shape, dtype, True, "unused", None)
    return ParameterGrad(tuple(names), shape, dtype, True, "ok", GradStats.of(param.grad))


def probe_model(
    model: ModelSource,
    inputs: InputSpec,
    *,
    loss: str | LossFunction = "sum",
    seed: int | None = None,
    mode: Literal["train", "eval"] | None = None,
    selection: Selection = Selection(),
    on_globals: Callable[[list[str]], None] | None = None,
) -> GradProbe:
    """``paramctl grads`` as one call: open the live module, probe it, keep the selected rows.

    With ``seed``, one seeded stream serves the whole run, in this order: building the
    module, drawing the input, the forward pass (dropout). So for a model built from code,
    ``probe_model(ModelSource(model="m.py:make"), InputSpec(((2, 4),)), seed=0)`` equals::

        torch.manual_seed(0)
        net = make()
        X = torch.rand(2, 4)
        net(X).sum().backward()
    """
    with seeded(seed):
        live = model.open(on_globals)
        probe = probe_gradients(live.module, inputs.make(live.module), loss=loss, mode=mode)
    chosen = probe.selected(selection)
    if not chosen.rows:
        raise nothing_selected(selection, [name for row in probe.rows for name in row.names])
    return replace(chosen, seed=seed, source=live.loaded_from or live.origin)
