"""Every ``torch.nn.init`` function as a scheme: its parameters, torch's defaults, the
shapes it accepts and whether it draws random numbers.

:data:`SCHEMES` names each function as ``--scheme`` does (``normal`` for ``normal_``);
:mod:`paramctl.schemes.catalog` binds values to these parameters and applies them.

>>> SCHEMES["normal"].signature()
'normal(mean=0.0, std=1.0)'
>>> SCHEMES["xavier_uniform"].dims_text()
'2-D or more'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from paramctl.errors import UsageError

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
