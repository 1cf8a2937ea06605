"""The allowlist unpickler every pickle-reading format shares, within limits.

``pickle`` is the only tool that parses pickles. :class:`RestrictedUnpickler` restricts
``find_class`` (the documented way to limit what a pickle may reference) to a table of
stand-ins that the format chooses; every other global is refused before anything runs.
:func:`restricted_load` first walks the opcodes (:func:`~paramctl.formats._pickle_scan.
scan_pickle`) so that no number in the pickle makes the C unpickler allocate past the
:class:`~paramctl.formats._limits.Limits`, then unpickles with the table.

A table is made of :class:`Constructor` (a callable whose arguments are checked, and
counted against the load's budget, before it runs), :class:`Sealed` stand-ins (which a
pickle may build but never change) and :class:`PickledRecord` types (for classes a pickle
builds with NEWOBJ and BUILD, each field typed); :data:`PLAIN_GLOBALS` are the plain
containers. :mod:`~paramctl.formats._pickle_tree` holds what was built to the limits before
anything walks it path by path; :mod:`~paramctl.formats._pickle_names` names every global a
pickle would import, running nothing.

>>> import collections, os, pickle
>>> restricted_load(pickle.dumps(collections.OrderedDict(a=1)), PLAIN_GLOBALS)[0]
OrderedDict([('a', 1)])
>>> restricted_load(pickle.dumps(os.system), PLAIN_GLOBALS)
Traceback (most recent call last):
paramctl.errors.UnsafePickle: refusing to load: the pickle references 'posix.system', ...
"""

from __future__ import annotations

import _compat_pickle
import collections
import contextlib
import io
import pickle
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from paramctl.errors import CorruptCheckpoint, LimitExceeded, UnsafePickle
from paramctl.formats._gc import collection_paused
from paramctl.formats._limits import LIMITS, Limits
from paramctl.formats._pickle_scan import Buffer, scan_pickle


class Sealed:
    """A stand-in a pickle may build but never change: ``BUILD`` on it is refused.

    Without this, ``BUILD`` would update a stand-in's ``__dict__`` (or slots) after its
    arguments were checked, or change a table's shared objects for every later load.
    """

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise CorruptCheckpoint(f"the pickle changes a {type(self).__name__.lstrip('_')} after building it")


class PickledRecord:
    """A stand-in for a class a pickle builds with ``NEWOBJ`` and fills with ``BUILD`` (a
    dataclass such as DCP's ``Metadata``): a subclass names its ``fields`` and their types;
    ``BUILD`` may set exactly those, once, each of its type.

    >>> class Chunk(PickledRecord):
    ...     fields = {"offsets": tuple, "sizes": tuple}
    >>> chunk = Chunk.__new__(Chunk)
    >>> chunk.__setstate__({"offsets": (0,), "sizes": (4,)})
    >>> chunk.sizes
    (4,)
    >>> chunk.__setstate__({"sizes": "huge"})
    Traceback (most recent call last):
    paramctl.errors.CorruptCheckpoint: the pickle builds a Chunk twice
    """

    fields: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}

    def __setstate__(self, state: Any) -> None:
        # A DCP .metadata builds one of these per tensor and chunk: the checks are one pass.
        if "_built" in self.__dict__:
            raise CorruptCheckpoint(f"the pickle builds a {type(self).__name__} twice")
        if isinstance(state, tuple) and len(state) == 2 and state[0] is None:
            state = state[1]  # (None, slots): a dataclass with __slots__
        if not isinstance(state, dict):
            raise self._refused(state)
        fields = self.fields
        for key, value in state.items():
            kind = fields.get(key)
            if kind is None or not isinstance(value, kind):
                raise self._refused(state)
        self.__dict__.update(state, _built=True)

    def _refused(self, state: Any) -> CorruptCheckpoint:
        """What is wrong with a state :meth:`__setstate__` refuses: its kind or its keys,
        else its first field that is not one of this record's, of its type."""
        name = type(self).__name__
        if not isinstance(state, dict) or not all(isinstance(key, str) for key in state):
            return CorruptCheckpoint(f"the pickle builds a {name} from {type(state).__name__}")
        key, value = next((k, v) for k, v in state.items() if not isinstance(v, self.fields.get(k, ())))
        return CorruptCheckpoint(f"the pickle gives a {name} the field {key!r:.40} as {type(value).__name__}")


@dataclass
class _Budget:
    """What one load has spent: elements handed to constructors."""

    limits: Limits
    items: int = 0

    def spend(self, what: str, count: int) -> None:
        self.items += count
        if self.items > self.limits.constructor_items:
            raise LimitExceeded(
                "the pickle",
                f"{self.items:,} elements handed to {what} and the other constructors",
                f"paramctl builds at most {self.limits.constructor_items:,}",
            )


_BUDGET: ContextVar[_Budget | None] = ContextVar("paramctl_pickle_budget", default=None)


class Constructor(Sealed):
    """An allowlisted callable: ``check`` sees the arguments (and returns how many elements
    they hand over, or raises) before ``build`` runs."""

    __slots__ = ("build", "check", "name")

    def __init__(self, name: str, build: Callable[..., Any], check: Callable[..., int]) -> None:
        self.name, self.build, self.check = name, build, check

    def __call__(self, *args: Any) -> Any:
        try:
            items = self.check(*args)
        except TypeError as exc:  # a check's own signature: the wrong number of arguments
            raise CorruptCheckpoint(f"the pickle calls {self.name} with the wrong arguments") from exc
        budget = _BUDGET.get()
        if budget is not None:
            budget.spend(self.name, items)
        return self.build(*args)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def wrong_call(name: str, args: tuple[Any, ...]) -> CorruptCheckpoint:
    """The error for a stand-in called with arguments no checkpoint passes it."""
    shown = ", ".join(type(arg).__name__ for arg in args)
    return CorruptCheckpoint(f"the pickle calls {name}({shown}), which no checkpoint does")


_CONTAINERS = (list, tuple, dict, set, frozenset, bytes, bytearray)


def container_check(name: str) -> Callable[..., int]:
    """A check for a container constructor: nothing, or one container."""

    def check(*args: Any) -> int:
        if not args:
            return 0
        if len(args) == 1 and isinstance(args[0], _CONTAINERS):
            return len(args[0])
        raise wrong_call(name, args)

    return check


def _numbers_check(name: str) -> Callable[..., int]:
    def check(*args: Any) -> int:
        if len(args) <= 3 and all(arg is None or type(arg) in (int, float) for arg in args):
            return len(args)
        raise wrong_call(name, args)

    return check


def _bytearray_check(*args: Any) -> int:
    # Protocols 0-2 write bytearray(text, 'latin-1'); later ones bytearray(bytes).
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return len(args[0])
    return container_check("bytearray")(*args)


def _codecs_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1'): only that is allowed.
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise wrong_call("_codecs.encode", (text, encoding))
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickle("_codecs.encode", f"with encoding {encoding!r:.40}")
    try:
        return text.encode("latin1")
    except UnicodeEncodeError as exc:
        raise CorruptCheckpoint("the pickle's bytes are not latin-1 text") from exc


def _text_length(*args: Any) -> int:
    return len(args[0]) if args and isinstance(args[0], str) else 0


def _plain_globals() -> dict[str, Any]:
    plain: list[tuple[str, Callable[..., Any], Callable[..., int]]] = [
        ("collections.OrderedDict", collections.OrderedDict, container_check("OrderedDict")),
        ("collections.Counter", collections.Counter, container_check("Counter")),
        ("builtins.set", set, container_check("set")),
        ("builtins.frozenset", frozenset, container_check("frozenset")),
        ("builtins.tuple", tuple, container_check("tuple")),
        ("builtins.list", list, container_check("list")),
        ("builtins.dict", dict, container_check("dict")),
        ("builtins.bytearray", bytearray, _bytearray_check),
        ("builtins.slice", slice, _numbers_check("slice")),
        ("builtins.complex", complex, _numbers_check("complex")),
        ("_codecs.encode", _codecs_encode, _text_length),
    ]
    return {name: Constructor(name, build, check) for name, build, check in plain}


PLAIN_GLOBALS: dict[str, Any] = _plain_globals()


def _refuse(module: str, name: str) -> Exception:
    return UnsafePickle(f"{module}.{name}")


def python3_name(module: str, name: str) -> tuple[str, str]:
    """A global as Python 3 imports it: pickle's own ``fix_imports`` table, applied (as
    torch's weights-only loader applies it) whatever the protocol, since overriding
    ``find_class`` skips it. Protocol-2 pickles spell ``builtins.set`` ``__builtin__.set``.

    >>> python3_name("__builtin__", "set"), python3_name("copy_reg", "_reconstructor")
    (('builtins', 'set'), ('copyreg', '_reconstructor'))
    """
    if (module, name) in _compat_pickle.NAME_MAPPING:
        mapped: tuple[str, str] = _compat_pickle.NAME_MAPPING[(module, name)]
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle with only ``allowed`` (name -> stand-in). ``persistent`` resolves persistent
    ids (refused without it); ``refuse`` makes the error for any other global."""

    def __init__(
        self,
        file: io.BytesIO,
        allowed: Mapping[str, Any],
        persistent: Callable[[Any], Any] | None = None,
        refuse: Callable[[str, str], Exception] = _refuse,
    ) -> None:
        super().__init__(file)
        self._allowed, self._persistent, self._refuse = allowed, persistent, refuse

    def find_class(self, module: str, name: str) -> Any:
        module, name = python3_name(module, name)
        found = self._allowed.get(f"{module}.{name}")
        if found is None:
            raise self._refuse(module, name)
        return found

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CorruptCheckpoint("the pickle has a persistent id where none belongs")
        return self._persistent(pid)


@contextlib.contextmanager
def pickle_errors(what: str, passing: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Turn what goes wrong in an unpickler that calls only stand-ins into paramctl's errors:
    the pickle's damage (:class:`CorruptCheckpoint`) or its size (:class:`LimitExceeded`)."""
    try:
        yield
    except (UnsafePickle, CorruptCheckpoint):
        raise
    except passing:
        raise
    except RecursionError as exc:
        raise LimitExceeded(what, "objects nested too deeply", "Python's recursion limit") from exc
    except MemoryError as exc:
        raise LimitExceeded(what, "more objects than memory holds", "see the other limits") from exc
    # Only stand-ins run, so any other failure is damage in the pickle (a rebuild function
    # called with a string, BUILD on a number, an unhashable set element, ...).
    except Exception as exc:
        raise CorruptCheckpoint(f"{what} is damaged: {type(exc).__name__}: {str(exc)[:200]}") from exc


def restricted_load(
    data: Buffer,
    allowed: Mapping[str, Any],
    *,
    persistent: Callable[[Any], Any] | None = None,
    refuse: Callable[[str, str], Exception] = _refuse,
    limits: Limits = LIMITS,
    start: int = 0,
    whole: bool = True,
    what: str = "the pickle",
    passing: tuple[type[BaseException], ...] = (),
    unpickler: type[RestrictedUnpickler] = RestrictedUnpickler,
) -> tuple[Any, int]:
    """Unpickle the pickle at ``start`` of ``data`` with the ``allowed`` table; return the
    object and where the pickle ends. With ``whole``, nothing may follow its STOP.
    Exceptions of the ``passing`` types (raised by stand-ins) pass through unchanged;
    ``unpickler`` may be a subclass that resolves more names (a format's own stand-ins)."""
    end = scan_pickle(data, start, limits=limits, what=what)
    if whole and end != len(data):
        raise CorruptCheckpoint(f"{what} is damaged: {len(data) - end:,} bytes follow its STOP")
    loader = unpickler(io.BytesIO(data[start:end]), allowed, persistent, refuse)
    token = _BUDGET.set(_Budget(limits))
    try:
        with pickle_errors(what, passing), collection_paused():
            return loader.load(), end
    finally:
        _BUDGET.reset(token)
