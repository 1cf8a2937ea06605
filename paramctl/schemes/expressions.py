"""The values of ``--scheme`` parameters: numbers, arithmetic, ``sqrt()``, ``pi``,
``gain(nonlinearity[, param])`` and bare words (``mode=fan_out``).

Hand-written because ``ast.literal_eval`` allows neither bare words nor ``sqrt(5)``, and
``eval`` would run arbitrary code from the command line.

>>> import ast
>>> evaluate(ast.parse("2 * sqrt(4) - 1", mode="eval").body, "")
3.0
>>> evaluate(ast.parse("fan_out", mode="eval").body, "")
'fan_out'
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from paramctl.errors import UsageError
from paramctl.schemes.registry import NONLINEARITIES, ParamValue

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def evaluate(node: ast.expr, text: str) -> ParamValue:
    """A parameter value: a number, arithmetic, sqrt(), pi, gain(...), or a bare word
    (``text`` is the whole ``--scheme``, for messages)."""
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float | str)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.Name):
        return math.pi if node.id == "pi" else node.id
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _number(evaluate(node.operand, text), text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _number(evaluate(node.left, text), text), _number(evaluate(node.right, text), text)
        try:
            result: float | int = _BINARY[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as exc:
            raise UsageError(f"--scheme {text!r}: {exc}") from exc
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        args = [evaluate(arg, text) for arg in node.args]
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
