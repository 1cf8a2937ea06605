"""JSON a checkpoint carries (a safetensors header, a sharded index, a torch.export
config), parsed by :mod:`json` within paramctl's limits, one way.

Before parsing, the values are counted in C (each follows a comma or opens a container),
so that a document of many tiny values cannot fill memory; while parsing, every object
is counted and refused when it names a key twice (readers disagree on which of two
counts: Python's keeps the last, others the first); ``NaN`` and ``Infinity`` are not JSON,
and nesting deeper than Python's recursion limit is a limit, not a crash.

>>> load_json(b'{"a": [1, 2]}', "the index")
{'a': [1, 2]}
>>> load_json(b'{"a": 1, "a": 2}', "the index")
Traceback (most recent call last):
paramctl.errors.CorruptCheckpoint: the index names 'a' twice: JSON readers disagree on which counts
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from paramctl.errors import CorruptCheckpoint, LimitExceeded
from paramctl.formats._limits import LIMITS, Limits, check_count


def _pairs(
    what: str, objects: int, duplicates: list[str] | None
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    seen = [0]

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen[0] += 1
        check_count(what, "JSON objects", seen[0], objects)
        table = dict(pairs)
        if len(table) != len(pairs):
            twice = _repeated(key for key, _ in pairs)
            if duplicates is not None:
                duplicates.append(twice)
                return table
            raise CorruptCheckpoint(
                f"{what} names {twice!r:.80} twice: JSON readers disagree on which counts"
            )
        return table

    return hook


def _repeated(keys: Iterable[str]) -> str:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return ""


def load_json(
    raw: bytes,
    what: str,
    limits: Limits = LIMITS,
    *,
    objects: int | None = None,
    duplicates: list[str] | None = None,
) -> Any:
    """``raw`` parsed, or paramctl's own error; at most ``objects`` JSON objects (default:
    the tensor limit and a few more) and ``limits.json_values`` values. A key named twice
    in an object is refused, or, given ``duplicates``, collected there (the last one kept)."""
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1
    check_count(what, "JSON values", values, limits.json_values)
    hook = _pairs(what, limits.tensors + 16 if objects is None else objects, duplicates)
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=hook, parse_constant=_constant(what))
    except UnicodeDecodeError as exc:
        raise CorruptCheckpoint(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except RecursionError as exc:
        raise LimitExceeded(what, "JSON nested too deeply", "Python's recursion limit") from exc
    except ValueError as exc:  # json.JSONDecodeError, and integers too long to convert
        raise CorruptCheckpoint(f"{what} is not valid JSON ({exc})") from exc


def _constant(what: str) -> Callable[[str], Any]:
    def refuse(name: str) -> Any:
        raise CorruptCheckpoint(f"{what} holds {name}, which is not JSON")

    return refuse
