"""Two helpers for the frozen records of :mod:`paramctl.checkpoint`, which a checkpoint of a
hundred thousand tensors makes and asks about many times over.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Box:
...     side: int
...     name: str = "box"
...     @derived
...     def area(self) -> int:
...         return self.side * self.side
>>> box = Box(3)
>>> box.area, changed(box, name="crate").area, changed(box, name="crate").name
(9, 9, 'crate')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class derived(Generic[T]):
    """A property computed once per (frozen) record and then kept in it:
    ``functools.cached_property`` without the lock Python 3.11 takes on each first use,
    which costs more than the value at a hundred thousand tensors."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, record: None, owner: type | None = None) -> derived[T]: ...
    @overload
    def __get__(self, record: object, owner: type | None = None) -> T: ...
    def __get__(self, record: object | None, owner: type | None = None) -> T | derived[T]:
        if record is None:
            return self
        value = record.__dict__[self.name] = self.compute(record)
        return value


def changed(record: T, **fields: Any) -> T:
    """``dataclasses.replace`` for fields nothing derived depends on, without its
    introspection and checks: a thousand shards ask for it a hundred thousand times."""
    copy: T = object.__new__(type(record))
    copy.__dict__.update(record.__dict__, **fields)
    return copy
