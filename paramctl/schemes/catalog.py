"""Initialization schemes: a registry over ``torch.nn.init``, the spec syntax, custom functions.

Public entry points:

- :data:`SCHEMES`: every ``torch.nn.init`` function under its own name (``normal`` for
  ``normal_``), with the parameters it takes, their defaults and the shapes it accepts.
- :func:`parse_scheme`: turn the text of ``--scheme`` into an :class:`InitScheme`::

      normal                      every parameter at torch's default
      normal(std=0.01)            keywords ...
      normal(0, 0.01)             ... or positions, in torch's order
      kaiming_normal(mode=fan_out, nonlinearity=relu)
      kaiming_uniform(a=sqrt(5))  sqrt(), pi and gain(nonlinearity[, param]) may be used
      default                     what PyTorch gives each layer (see paramctl.schemes.defaults)
      my_init.py:half_zero        a function in a file, called as func(tensor, generator)
      mypkg.inits:half_zero(low=5)  ... or in a module, with extra keyword arguments

- :func:`make_scheme`: the same from Python (``make_scheme("normal", std=0.01)``, or a callable).

The math is always torch's: a :class:`TorchScheme` calls ``torch.nn.init.<name>_`` with the
parameters and, for random schemes, the ``generator``. Nothing here imports torch until a
scheme is applied.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import math
import operator
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from paramctl.checkpoint import TensorEntry
from paramctl.errors import UsageError

if TYPE_CHECKING:
    import torch

ParamKind = Literal["float", "int", "choice"]
ParamValue = float | int | str

NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)


@dataclass(frozen=True)
class Parameter:
    """One parameter of a scheme: its name, kind, torch's default (``None``: required)."""

    name: str
    kind: ParamKind
    default: ParamValue | None
    help: str
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None

    def coerce(self, scheme: str, value: Any) -> ParamValue:
        """Check ``value`` against the kind; ints are accepted where floats are."""
        where = f"{scheme}: {self.name}"
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise UsageError(f"{where} must be one of {', '.join(self.choices)} (got {value!r})")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UsageError(f"{where} must be a number (got {value!r})")
        if self.kind == "int":
            if not float(value).is_integer():
                raise UsageError(f"{where} must be a whole number (got {value!r})")
            return int(value)
        if not math.isfinite(value) and self.name not in ("a", "b"):
            raise UsageError(f"{where} must be finite (got {value!r})")
        return float(value)

    def signature(self) -> str:
        if self.required:
            return self.name
        return f"{self.name}={self.default}"


@dataclass(frozen=True)
class SchemeInfo:
    """A ``torch.nn.init`` function as a scheme: parameters, shapes it accepts, randomness."""

    name: str
    parameters: tuple[Parameter, ...]
    summary: str
    random: bool
    min_dims: int = 0
    max_dims: int | None = None
    # Fills one value everywhere: the only schemes allowed on integer and bool tensors.
    constant: bool = False

    @property
    def function_name(self) -> str:
        return f"{self.name}_"

    def signature(self) -> str:
        """``normal(mean=0.0, std=1.0)`` as ``--help`` shows it."""
        if not self.parameters:
            return self.name
        return f"{self.name}({', '.join(p.signature() for p in self.parameters)})"

    def dims_text(self) -> str:
        if self.max_dims == self.min_dims:
            return f"exactly {self.min_dims}-D"
        if self.max_dims is None:
            return f"{self.min_dims}-D or more"
        return f"{self.min_dims}-D to {self.max_dims}-D"


def _f(name: str, default: float | None, help: str) -> Parameter:
    return Parameter(name, "float", default, help)


_GAIN = _f("gain", 1.0, "scaling factor")
_KAIMING = (
    _f("a", 0.0, "negative slope of the rectifier after this layer (leaky_relu only)"),
    Parameter(
        "mode", "choice", "fan_in", "keep the variance of the forward or backward pass", ("fan_in", "fan_out")
    ),
    Parameter("nonlinearity", "choice", "leaky_relu", "the function after this layer", NONLINEARITIES),
)

SCHEMES: dict[str, SchemeInfo] = {
    info.name: info
    for info in (
        SchemeInfo("uniform", (_f("a", 0.0, "lower bound"), _f("b", 1.0, "upper bound")), "U(a, b)", True),
        SchemeInfo(
            "normal", (_f("mean", 0.0, "mean"), _f("std", 1.0, "standard deviation")), "N(mean, std²)", True
        ),
        SchemeInfo(
            "trunc_normal",
            (
                _f("mean", 0.0, "mean"),
                _f("std", 1.0, "standard deviation"),
                _f("a", -2.0, "lowest value"),
                _f("b", 2.0, "highest value"),
            ),
            "N(mean, std²) redrawn outside [a, b]",
            True,
        ),
        SchemeInfo("constant", (_f("val", None, "the value"),), "every value = val", False, constant=True),
        SchemeInfo("zeros", (), "every value 0", False, constant=True),
        SchemeInfo("ones", (), "every value 1", False, constant=True),
        SchemeInfo("eye", (), "the identity matrix", False, 2, 2),
        SchemeInfo(
            "dirac",
            (Parameter("groups", "int", 1, "number of groups in the conv layer"),),
            "Dirac delta: a conv that passes its input through",
            False,
            3,
            5,
        ),
        SchemeInfo("xavier_uniform", (_GAIN,), "Glorot, U(±gain·√(6/(fan_in+fan_out)))", True, 2),
        SchemeInfo("xavier_normal", (_GAIN,), "Glorot, N(0, gain²·2/(fan_in+fan_out))", True, 2),
        SchemeInfo("kaiming_uniform", _KAIMING, "He, U(±gain·√(3/fan))", True, 2),
        SchemeInfo("kaiming_normal", _KAIMING, "He, N(0, gain²/fan)", True, 2),
        SchemeInfo("orthogonal", (_GAIN,), "a (semi-)orthogonal matrix times gain", True, 2),
        SchemeInfo(
            "sparse",
            (
                _f("sparsity", None, "fraction of each column set to zero"),
                _f("std", 0.01, "standard deviation of the non-zero values"),
            ),
            "columns with a fraction of zeros, the rest N(0, std²)",
            True,
            2,
            2,
        ),
    )
}
DEFAULT = "default"


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
                raise UsageError(
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
        args = tuple(_evaluate(arg, text) for arg in node.args)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise UsageError(f"--scheme {text!r}: ** is not supported")
            kwargs[keyword.arg] = _evaluate(keyword.value, text)
    else:
        raise UsageError(f"--scheme {text!r} is not name or name(param=value, ...)")
    name = name.removesuffix("_")
    if name == DEFAULT:
        if args or kwargs:
            raise UsageError("default takes no parameters: it follows each layer's own rule")
        return DefaultScheme()
    info = SCHEMES.get(name)
    if info is None:
        close = [n for n in (*SCHEMES, DEFAULT) if n.startswith(name[:3])] or [*SCHEMES, DEFAULT]
        raise UsageError(f"unknown scheme {name!r}; schemes: {', '.join(close)}")
    return bind(info, args, kwargs)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def _evaluate(node: ast.expr, text: str) -> ParamValue:
    """A parameter value: a number, arithmetic, sqrt(), pi, gain(...), or a bare word.

    Hand-written because ``ast.literal_eval`` allows neither bare words (``mode=fan_out``)
    nor ``sqrt(5)``, and ``eval`` would run arbitrary code from the command line.
    """
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float | str)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.Name):
        return math.pi if node.id == "pi" else node.id
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _number(_evaluate(node.operand, text), text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _number(_evaluate(node.left, text), text), _number(_evaluate(node.right, text), text)
        try:
            result: float | int = _BINARY[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as exc:
            raise UsageError(f"--scheme {text!r}: {exc}") from exc
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [_evaluate(arg, text) for arg in node.args]
        if node.func.id == "sqrt" and len(args) == 1:
            value = _number(args[0], text)
            if value < 0:
                raise UsageError(f"--scheme {text!r}: sqrt of a negative number")
            return math.sqrt(value)
        if node.func.id == "gain" and 1 <= len(args) <= 2:
            return _gain(args, text)
    raise UsageError(
        f"--scheme {text!r}: values are numbers, words, sqrt(x), pi or gain(nonlinearity[, param])"
    )


def _number(value: ParamValue, text: str) -> float | int:
    if isinstance(value, str):
        raise UsageError(f"--scheme {text!r}: {value!r} is not a number")
    return value


def _gain(args: list[ParamValue], text: str) -> float:
    import torch

    nonlinearity = args[0]
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise UsageError(f"--scheme {text!r}: gain() takes one of {', '.join(NONLINEARITIES)}")
    param = _number(args[1], text) if len(args) == 2 else None
    try:
        return float(torch.nn.init.calculate_gain(nonlinearity, param))  # type: ignore[arg-type]
    except ValueError as exc:
        raise UsageError(f"--scheme {text!r}: {exc}") from exc


# -- custom functions ---------------------------------------------------------------------


def _split_custom(text: str) -> tuple[str, str, str] | None:
    """``file.py:func(args)`` or ``package.module:func(args)`` -> (target, function, args)."""
    head, paren, tail = text.partition("(")
    if ":" not in head:
        return None
    target, _, function = head.rpartition(":")
    return target.strip(), function.strip(), (paren + tail).strip()


def _load_custom(target: str, function_name: str, arguments: str) -> CustomScheme:
    spec = f"{target}:{function_name}"
    if not function_name.isidentifier():
        raise UsageError(f"--scheme {spec!r}: {function_name!r} is not a function name")
    module = _import_target(target, spec)
    function = getattr(module, function_name, None)
    if not callable(function):
        available = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
        hint = f"; it defines {', '.join(available[:6])}" if available else ""
        raise UsageError(f"--scheme {spec!r}: {target} has no function {function_name!r}{hint}")
    kwargs: dict[str, ParamValue] = {}
    if arguments:
        try:
            call = ast.parse(f"f{arguments}", mode="eval").body
        except SyntaxError as exc:
            raise UsageError(f"--scheme {spec}{arguments}: arguments are (name=value, ...)") from exc
        if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
            raise UsageError(f"--scheme {spec}{arguments}: give extra arguments by name, e.g. (low=5)")
        kwargs = {str(k.arg): _evaluate(k.value, spec + arguments) for k in call.keywords}
    return CustomScheme(spec, function, tuple(kwargs.items()))


def _import_target(target: str, spec: str) -> Any:
    """Import ``target``: a ``.py`` file (by path) or a module on ``sys.path``."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"--scheme {spec!r}: no file {target}")
        module_name = f"paramctl_custom_{abs(hash(str(path.resolve())))}"
        file_spec = importlib.util.spec_from_file_location(module_name, path)
        if file_spec is None or file_spec.loader is None:
            raise UsageError(f"--scheme {spec!r}: cannot import {target}")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[module_name] = module
        try:
            file_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise UsageError(
                f"--scheme {spec!r}: importing {target} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return module
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise UsageError(f"--scheme {spec!r}: cannot import module {target} ({exc})") from exc


def schemes_help() -> str:
    """The scheme list ``paramctl init --help`` shows, one per line."""
    lines = [f"{info.signature()}: {info.summary}" for info in SCHEMES.values()]
    lines.append(f"{DEFAULT}: what PyTorch gives each layer, inferred from names and shapes")
    lines.append("FILE.py:FUNC or MODULE:FUNC: a function called as func(tensor, generator)")
    return "\n".join(lines)
