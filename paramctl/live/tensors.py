"""The tensors of a live module, seen by its own names.

A checkpoint only holds tensors; a live module also knows which are parameters and which
buffers, which require gradients, which module owns each, which names are one tensor, and
which lazy parameters still wait for their shape.

>>> import torch
>>> from torch import nn
>>> from paramctl.live.inputs import materialize, random_inputs
>>> net = nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.Linear(3, 1))
>>> [(t.name, t.shape) for t in live_tensors(net)]
[('0.weight', None), ('0.bias', None), ('2.weight', (1, 3)), ('2.bias', (1,))]
>>> materialize(net, random_inputs(net, [(2, 4)]))
['0.weight', '0.bias']
>>> [(t.name, t.shape) for t in live_tensors(net)]
[('0.weight', (3, 4)), ('0.bias', (3,)), ('2.weight', (1, 3)), ('2.bias', (1,))]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parameter import is_lazy as _is_lazy

TensorKind = Literal["parameter", "buffer"]


@dataclass(frozen=True)
class LiveTensor:
    """One name of a live module's tensors: what ``list --model`` shows per row.

    ``shape`` is ``None`` while a lazy parameter waits for its first input.
    """

    name: str
    kind: TensorKind
    shape: tuple[int, ...] | None
    dtype: str
    requires_grad: bool
    module: str
    shared_with: tuple[str, ...] = ()
    persistent: bool = True

    @property
    def initialized(self) -> bool:
        return self.shape is not None

    @property
    def numel(self) -> int | None:
        if self.shape is None:
            return None
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def nbytes(self) -> int | None:
        numel = self.numel
        return None if numel is None else numel * torch.empty((), dtype=_dtype(self.dtype)).element_size()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype,
            "numel": self.numel,
            "bytes": self.nbytes,
            "requires_grad": self.requires_grad,
            "module": self.module,
            "shared_with": list(self.shared_with),
            "initialized": self.initialized,
            "persistent": self.persistent,
        }


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)  # type: ignore[no-any-return]


def is_lazy(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a lazy layer's parameter or buffer still waiting for its shape.

    >>> is_lazy(nn.LazyLinear(3).weight), is_lazy(nn.Linear(2, 3).weight)
    (True, False)
    """
    return bool(_is_lazy(tensor))


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` as paramctl spells dtypes everywhere: ``float32``."""
    return str(dtype).removeprefix("torch.")


def _module_label(module: nn.Module) -> str:
    """The owner's class and the arguments that size it, e.g. ``LazyLinear(in_features=0, ...)``."""
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if extra and len(extra) <= 60 else type(module).__name__


def live_tensors(module: nn.Module) -> list[LiveTensor]:
    """Every parameter and buffer under every name, in ``state_dict`` order.

    A module reachable by two paths (``Sequential(linear, linear)``) gives its tensors two
    names; each lists the other in ``shared_with``. Non-persistent buffers (not saved in a
    ``state_dict``) are included and marked.
    """
    rows: list[tuple[str, TensorKind, torch.Tensor, nn.Module, bool]] = []
    for prefix, owner in module.named_modules(remove_duplicate=False):
        base = f"{prefix}." if prefix else ""
        for attr, param in owner._parameters.items():
            if param is not None:
                rows.append((base + attr, "parameter", param, owner, True))
        hidden = owner._non_persistent_buffers_set
        for attr, buffer in owner._buffers.items():
            if buffer is not None:
                rows.append((base + attr, "buffer", buffer, owner, attr not in hidden))
    names_of: dict[int, list[str]] = {}
    for name, _, tensor, _, _ in rows:
        names_of.setdefault(id(tensor), []).append(name)
    return [
        LiveTensor(
            name=name,
            kind=kind,
            shape=None if is_lazy(tensor) else tuple(tensor.shape),
            dtype=dtype_name(tensor.dtype),
            requires_grad=tensor.requires_grad,
            module=_module_label(owner),
            shared_with=tuple(other for other in names_of[id(tensor)] if other != name),
            persistent=persistent,
        )
        for name, kind, tensor, owner, persistent in rows
    ]


def unique_parameters(module: nn.Module) -> list[tuple[list[str], nn.Parameter]]:
    """Each distinct parameter once, with all its names (first name first).

    >>> linear = nn.Linear(1, 1, bias=False)
    >>> [names for names, _ in unique_parameters(nn.Sequential(linear, linear))]
    [['0.weight', '1.weight']]
    """
    found: dict[int, tuple[list[str], nn.Parameter]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        found.setdefault(id(param), ([], param))[0].append(name)
    return list(found.values())


def owner_of(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The submodule that holds ``name`` directly, and the attribute it holds it under."""
    path, _, attr = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attr


# -- building and loading ---------------------------------------------------------------
