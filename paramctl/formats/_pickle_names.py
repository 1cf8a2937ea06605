"""Naming every global a pickle would import, running nothing.

The C unpickler itself reads the opcodes, so ``STACK_GLOBAL`` names taken from the stack or
the memo are exactly what a load would import, with every global standing for a placeholder
that does nothing; the opcode scan holds the pickle to the limits first.

>>> import collections, os, pickle
>>> list_globals(pickle.dumps([os.system, collections.Counter()]))
['posix.system', 'collections.Counter']
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from paramctl.errors import UnsafePickle
from paramctl.formats._allowlist import pickle_errors, python3_name
from paramctl.formats._gc import collection_paused
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._pickle_scan import Buffer, scan_pickle


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


class _Placeholder(type):
    """The type of :data:`_ANYTHING`: calling, filling or building it does nothing."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls

    def __setitem__(cls, key: Any, value: Any) -> None:
        pass


# What every global (and persistent id) stands for while only names are wanted: one class,
# so that NEWOBJ accepts it, which returns itself when called or instantiated, and whose
# BUILD, append, extend and add do nothing.
_ANYTHING = _Placeholder(
    "placeholder",
    (),
    {
        "__new__": lambda cls, *args, **kwargs: cls,
        "__setstate__": _ignore,
        "append": _ignore,
        "extend": _ignore,
        "add": _ignore,
    },
)


class _Lister(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.found: dict[tuple[str, str], None] = {}

    def find_class(self, module: str, name: str) -> Any:
        self.found[python3_name(module, name)] = None
        return _ANYTHING

    def persistent_load(self, pid: Any) -> Any:
        # A legacy file's ('module', class, ...) id yields its class, as torch's loader does.
        return _ANYTHING


def list_globals(data: Buffer, start: int = 0, *, limits: Limits = LIMITS) -> list[str]:
    """:func:`global_pairs` as dotted names."""
    return [
        f"{module}.{name}" if module else name for module, name in global_pairs(data, start, limits=limits)
    ]


def global_pairs(data: Buffer, start: int = 0, *, limits: Limits = LIMITS) -> list[tuple[str, str]]:
    """Every global one pickle would import, in first-use order, without running any.

    The C unpickler itself reads the opcodes (so ``STACK_GLOBAL`` names taken from the
    stack or the memo are exactly what a load would import), with every global standing
    for a placeholder that does nothing. Python 2 spellings come out as Python 3 imports
    them (``__builtin__.set`` is ``builtins.set``). A pickle that cannot be followed to its
    end raises :class:`CorruptCheckpoint`.
    """
    try:
        end = scan_pickle(data, start, limits=limits)
    except UnsafePickle as exc:  # a copyreg extension code: named as such
        return [("", exc.global_name)]
    lister = _Lister(io.BytesIO(data[start:end]))
    with pickle_errors("the pickle"), collection_paused():
        lister.load()
    return list(lister.found)
