"""Initialization schemes: what ``--scheme`` names, bound and ready to apply.

Public entry points:

- :data:`SCHEMES` (from :mod:`paramctl.schemes.registry`): every ``torch.nn.init`` function
  under its own name (``normal`` for ``normal_``), with the parameters it takes, their
  defaults and the shapes it accepts.
- :func:`parse_scheme`: turn the text of ``--scheme`` into an :class:`InitScheme`::

      normal                      every parameter at torch's default
      normal(std=0.01)            keywords ...
      normal(0, 0.01)             ... or positions, in torch's order
      kaiming_normal(mode=fan_out, nonlinearity=relu)
      kaiming_uniform(a=sqrt(5))  sqrt(), pi and gain(nonlinearity[, param]) may be used
      default                     what PyTorch gives each layer (see paramctl.schemes.defaults)
      my_init.py:half_zero        a function in a file, called as func(tensor, generator)
      mypkg.inits:half_zero(low=5)  ... or in a module, with extra keyword arguments

  (parameter values are read by :mod:`paramctl.schemes.expressions`; files and modules are
  imported by :func:`paramctl.usercode.load_module`, as ``--model`` is).
- :func:`make_scheme`: the same from Python (``make_scheme("normal", std=0.01)``, or a callable).

The math is always torch's: a :class:`TorchScheme` calls ``torch.nn.init.<name>_`` with the
parameters and, for random schemes, the ``generator``. Nothing here imports torch until a
scheme is applied.
"""

from __future__ import annotations

import ast
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import TensorEntry
from paramctl.errors import IncompatibleTensors, UsageError
from paramctl.schemes.expressions import evaluate
from paramctl.schemes.registry import DEFAULT, NONLINEARITIES, SCHEMES, Parameter, ParamValue, SchemeInfo

if TYPE_CHECKING:
    import torch


class InitScheme(ABC):
    """Where new values come from. ``apply`` fills a float tensor in place.

    ``uses_generator``: whether it draws random numbers (and so depends on the seed).
    ``constant``: whether it writes one value everywhere (allowed on integer/bool tensors).
    """

    name: str
    uses_generator: bool = True
    constant: bool = False

    @abstractmethod
    def describe(self) -> str:
        """The scheme as text, parameters included: ``normal(mean=0.0, std=0.01)``."""

    @abstractmethod
    def apply(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        """Fill ``tensor`` in place (float32 or wider; low-precision tensors are cast after)."""

    def incompatibility(self, entry: TensorEntry) -> str | None:
        """Why this scheme cannot fill ``entry`` (its shape), or ``None`` if it can."""
        return None

    def parameters(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": self.name, "params": self.parameters(), "text": self.describe()}


@dataclass(frozen=True)
class TorchScheme(InitScheme):
    """A ``torch.nn.init`` function with its parameters bound.

    >>> s = make_scheme("normal", std=0.01)
    >>> s.describe()
    'normal(mean=0.0, std=0.01)'
    >>> import torch
    >>> t = torch.empty(3)
    >>> s.apply(t, torch.Generator().manual_seed(0))
    >>> same = torch.nn.init.normal_(torch.empty(3), 0.0, 0.01, generator=torch.Generator().manual_seed(0))
    >>> torch.equal(t, same)
    True
    """

    info: SchemeInfo
    values: tuple[tuple[str, ParamValue], ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.info.name

    @property
    def uses_generator(self) -> bool:  # type: ignore[override]
        return self.info.random

    @property
    def constant(self) -> bool:  # type: ignore[override]
        return self.info.constant

    @property
    def fill_value(self) -> float | None:
        """The single value a constant scheme writes."""
        if self.info.name == "zeros":
            return 0.0
        if self.info.name == "ones":
            return 1.0
        if self.info.name == "constant":
            return float(dict(self.values)["val"])
        return None

    def parameters(self) -> dict[str, Any]:
        return dict(self.values)

    def describe(self) -> str:
        if not self.values:
            return self.info.name
        return f"{self.info.name}({', '.join(f'{k}={_show(v)}' for k, v in self.values)})"

    def incompatibility(self, entry: TensorEntry) -> str | None:
        info, ndim = self.info, len(entry.shape)
        if ndim < info.min_dims or (info.max_dims is not None and ndim > info.max_dims):
            return f"{info.name} needs a {info.dims_text()} tensor, this one is {ndim}-D"
        if info.name == "dirac":
            groups = int(dict(self.values)["groups"])
            if groups < 1 or entry.shape[0] % groups:
                return f"dirac(groups={groups}): dim 0 ({entry.shape[0]}) is not divisible by groups"
        return None

    def apply(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        import torch

        function = getattr(torch.nn.init, self.info.function_name)
        kwargs: dict[str, Any] = dict(self.values)
        if self.info.random:
            kwargs["generator"] = generator
        function(tensor, **kwargs)


@dataclass(frozen=True)
class CustomScheme(InitScheme):
    """A user function ``func(tensor, generator, **kwargs)`` that fills ``tensor`` in place.

    Returning a tensor of the same shape (instead of ``None``) also works: it is copied in.
    """

    spec: str
    function: Callable[..., Any] = field(compare=False)
    kwargs: tuple[tuple[str, ParamValue], ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.spec

    def parameters(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def describe(self) -> str:
        if not self.kwargs:
            return self.spec
        return f"{self.spec}({', '.join(f'{k}={_show(v)}' for k, v in self.kwargs)})"

    def apply(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        import torch

        with torch.no_grad():
            result = self.function(tensor, generator, **dict(self.kwargs))
        if result is not None and result is not tensor:
            if not isinstance(result, torch.Tensor) or tuple(result.shape) != tuple(tensor.shape):
                # The change does not fit the tensor (exit 3), as any scheme that cannot fill it.
                raise IncompatibleTensors(
                    f"{self.spec} returned {type(result).__name__} "
                    f"{tuple(getattr(result, 'shape', ()))}; fill the tensor in place or return "
                    f"one of shape {tuple(tensor.shape)}"
                )
            with torch.no_grad():
                tensor.copy_(result)


@dataclass(frozen=True)
class DefaultScheme(InitScheme):
    """What PyTorch itself gives each tensor's layer; resolved per tensor by
    :func:`paramctl.schemes.defaults.infer_defaults`, never applied directly."""

    name: str = DEFAULT

    def describe(self) -> str:
        return DEFAULT

    def apply(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        raise TypeError("the default scheme is resolved per tensor before it is applied")


def _show(value: ParamValue) -> str:
    return repr(value) if isinstance(value, float) else str(value)


# -- parsing ------------------------------------------------------------------------------


def make_scheme(scheme: str | Callable[..., Any] | InitScheme, /, **params: ParamValue) -> InitScheme:
    """A scheme from a name (``"normal"``), a spec (``"normal(std=0.01)"``), a callable
    ``func(tensor, generator)`` or an :class:`InitScheme`, with keyword parameters.

    >>> make_scheme("kaiming_normal", mode="fan_out", nonlinearity="relu").describe()
    'kaiming_normal(a=0.0, mode=fan_out, nonlinearity=relu)'
    """
    if isinstance(scheme, InitScheme):
        if params:
            raise UsageError(f"{scheme.describe()} already has its parameters")
        return scheme
    if callable(scheme):
        name = getattr(scheme, "__qualname__", None) or repr(scheme)
        return CustomScheme(f"{getattr(scheme, '__module__', '?')}:{name}", scheme, tuple(params.items()))
    name = scheme.strip().removesuffix("_")
    if params and name in SCHEMES:
        return bind(SCHEMES[name], (), params)
    spec = parse_scheme(scheme)
    if not params:
        return spec
    if "(" in scheme:
        raise UsageError(f"{scheme}: give parameters in the text or as keywords, not both")
    if isinstance(spec, CustomScheme):
        return CustomScheme(spec.spec, spec.function, tuple(params.items()))
    raise UsageError(f"{DEFAULT} takes no parameters")


def bind(info: SchemeInfo, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TorchScheme:
    """Match positional and keyword values to ``info``'s parameters, checking each."""
    names = [p.name for p in info.parameters]
    if len(args) > len(names):
        raise UsageError(f"{info.name} takes at most {len(names)} values: {info.signature()}")
    given: dict[str, Any] = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            known = ", ".join(names) or "no parameters"
            raise UsageError(f"{info.name} has no parameter {key!r} (it takes {known})")
        if key in given:
            raise UsageError(f"{info.name}: {key} given twice")
        given[key] = value
    values: list[tuple[str, ParamValue]] = []
    for param in info.parameters:
        if param.name in given:
            values.append((param.name, param.coerce(info.name, given[param.name])))
        elif param.required:
            raise UsageError(f"{info.name} needs {param.name}: e.g. --scheme '{info.name}({param.name}=...)'")
        else:
            assert param.default is not None
            values.append((param.name, param.default))
    numbers = {k: float(v) for k, v in values if not isinstance(v, str)}
    if info.name in ("uniform", "trunc_normal") and numbers["a"] > numbers["b"]:
        raise UsageError(f"{info.name}: a ({numbers['a']}) is above b ({numbers['b']})")
    if numbers.get("std", 0.0) < 0:
        raise UsageError(f"{info.name}: std must not be negative")
    if info.name == "sparse" and not 0 <= numbers["sparsity"] <= 1:
        raise UsageError("sparse: sparsity is a fraction between 0 and 1")
    return TorchScheme(info, tuple(values))


def parse_scheme(text: str) -> InitScheme:
    """Parse the text of ``--scheme`` (see the module docstring for the syntax).

    >>> parse_scheme("normal(std=0.01)").describe()
    'normal(mean=0.0, std=0.01)'
    >>> parse_scheme("kaiming_uniform(a=sqrt(5))").parameters()["a"] == 5 ** 0.5
    True
    >>> parse_scheme("normal(sd=1)")
    Traceback (most recent call last):
    paramctl.errors.UsageError: normal has no parameter 'sd' (it takes mean, std)
    """
    text = text.strip()
    if not text:
        raise UsageError("--scheme is empty; see paramctl init --help for the schemes")
    custom = _split_custom(text)
    if custom is not None:
        return _load_custom(*custom)
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise UsageError(f"--scheme {text!r} is not name or name(param=value, ...)") from exc
    args: tuple[ParamValue, ...] = ()
    kwargs: dict[str, ParamValue] = {}
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        args = tuple(evaluate(arg, text) for arg in node.args)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise UsageError(f"--scheme {text!r}: ** is not supported")
            kwargs[keyword.arg] = evaluate(keyword.value, text)
    else:
        raise UsageError(f"--scheme {text!r} is not name or name(param=value, ...)")
    name = name.removesuffix("_")
    if name == DEFAULT:
        if args or kwargs:
            raise UsageError("default takes no parameters: it follows each layer's own rule")
        return DefaultScheme()
    info = SCHEMES.get(name)
    if info is None:
        from paramctl.select import did_you_mean

        known = [*SCHEMES, DEFAULT]
        close = [n for n in known if n.startswith(name[:3])] or known
        raise UsageError(f"unknown scheme {name!r}{did_you_mean(name, known)}; schemes: {', '.join(close)}")
    return bind(info, args, kwargs)


# -- custom functions ---------------------------------------------------------------------


def _split_custom(text: str) -> tuple[str, str] | None:
    """``file.py:func(args)`` or ``package.module:func(args)`` -> (``where:func``, args)."""
    head, paren, tail = text.partition("(")
    if ":" not in head:
        return None
    return head.strip(), (paren + tail).strip()


def _load_custom(spec: str, arguments: str) -> CustomScheme:
    from paramctl.usercode import load_module, split_spec

    where, name = split_spec(spec, option="--scheme")
    module = load_module(where, spec=spec, option="--scheme", error=UsageError)
    function: Any = module
    for part in name.split("."):
        function = getattr(function, part, None)
    if not callable(function):
        available = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        hint = f"; it defines {', '.join(available[:6])}" if available else ""
        raise UsageError(f"--scheme {spec!r}: {where} has no function {name!r}{hint}")
    kwargs: dict[str, ParamValue] = {}
    if arguments:
        try:
            call = ast.parse(f"f{arguments}", mode="eval").body
        except SyntaxError as exc:
            raise UsageError(f"--scheme {spec}{arguments}: arguments are (name=value, ...)") from exc
        if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
            raise UsageError(f"--scheme {spec}{arguments}: give extra arguments by name, e.g. (low=5)")
        kwargs = {str(k.arg): evaluate(k.value, spec + arguments) for k in call.keywords}
    return CustomScheme(spec, function, tuple(kwargs.items()))


def schemes_help() -> str:
    """The scheme list ``paramctl init --help`` shows, one per line."""
    lines = [f"{info.signature()}: {info.summary}" for info in SCHEMES.values()]
    lines.append(f"{DEFAULT}: what PyTorch gives each layer, inferred from names and shapes")
    lines.append("FILE.py:FUNC or MODULE:FUNC: a function called as func(tensor, generator)")
    return "\n".join(lines)


__all__ = [
    "DEFAULT",
    "NONLINEARITIES",
    "SCHEMES",
    "CustomScheme",
    "DefaultScheme",
    "InitScheme",
    "ParamValue",
    "Parameter",
    "SchemeInfo",
    "TorchScheme",
    "bind",
    "make_scheme",
    "parse_scheme",
    "schemes_help",
]
