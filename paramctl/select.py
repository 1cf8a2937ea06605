"""Choosing tensors by name: shell globs, regular expressions, exclusions, name lists.

The rule, the same for every command: a name is selected when it matches any ``--match``
glob or any ``--regex`` (or is listed by ``--names-from``), and no ``--exclude`` glob. With
no positive criterion at all, every name is selected.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Protocol, TypeVar

from paramctl.errors import CheckpointIOError, NothingSelected, UsageError
from paramctl.units import plural


class _Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=_Named)


@dataclass(frozen=True)
class Selection:
    """Which names to take.

    Globs are shell-style over the whole dotted name (``*`` also crosses dots); regexes
    are searched anywhere in the name (anchor with ``^``/``$``), like Gluon's
    ``collect_params('.*weight')``.

    >>> names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    >>> Selection(match=("*.weight",)).apply(names)
    ['0.weight', '2.weight']
    >>> Selection(regex=("^2",), exclude=("*.bias",)).apply(names)
    ['2.weight']
    """

    match: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    names: frozenset[str] | None = None
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = []
        for pattern in self.regex:
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise UsageError(f"--regex {pattern!r}: {exc}") from exc
        object.__setattr__(self, "_compiled", tuple(compiled))

    def describe(self) -> str:
        """A short text of the criteria, for reports and provenance."""
        parts = [f"--match {p}" for p in self.match] + [f"--regex {p}" for p in self.regex]
        if self.names is not None:
            parts.append(f"{len(self.names)} listed name{'s' * (len(self.names) != 1)}")
        parts += [f"--exclude {p}" for p in self.exclude]
        return " ".join(parts) or "everything"

    def matches(self, name: str) -> bool:
        positive = bool(self.match or self.regex or self.names is not None)
        chosen = not positive or (
            any(fnmatchcase(name, glob) for glob in self.match)
            or any(pattern.search(name) for pattern in self._compiled)
            or (self.names is not None and name in self.names)
        )
        return chosen and not any(fnmatchcase(name, glob) for glob in self.exclude)

    def apply(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if self.matches(name)]


def select(entries: Sequence[E], selection: Selection) -> list[E]:
    """The entries whose names ``selection`` takes; an empty result is an error.

    Raises :class:`NothingSelected` (exit code 1) naming a few close names.
    """
    chosen = [entry for entry in entries if selection.matches(entry.name)]
    if not chosen and entries:
        raise nothing_selected(selection, [entry.name for entry in entries])
    return chosen


def unknown_names(selection: Selection, available: Iterable[str]) -> list[str]:
    """Names given by ``--names-from`` that the checkpoint does not have."""
    if selection.names is None:
        return []
    present = set(available)
    return sorted(name for name in selection.names if name not in present)


def read_names(lines: Iterable[str]) -> frozenset[str]:
    """Names from ``--names-from``: one per line; blank lines and ``#`` comments skipped."""
    names = (line.rstrip("\r\n") for line in lines)
    return frozenset(name for name in names if name.strip() and not name.lstrip().startswith("#"))


def read_name_file(path: str, *, stdin_taken: bool = False) -> frozenset[str]:
    """The names ``--names-from PATH`` lists; ``-`` reads standard input.

    ``stdin_taken`` says standard input already carries the checkpoint, which makes ``-``
    a usage error rather than a read that would swallow the checkpoint's bytes.
    """
    from paramctl.formats import STDIN

    if path == STDIN:
        if stdin_taken:
            raise UsageError("standard input cannot carry both the checkpoint and --names-from")
        return read_names(sys.stdin)
    try:
        with open(path, encoding="utf-8") as file:
            return read_names(file)
    except OSError as exc:
        raise CheckpointIOError(f"--names-from {path}: {exc.strerror or exc}") from exc


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean X?"`` when one of ``choices`` is close to ``word``, else ``""``.

    >>> did_you_mean("nromal", ["uniform", "normal"]), did_you_mean("zzz", ["normal"])
    ('; did you mean normal?', '')
    """
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_listed(selection: Selection, available: Iterable[str], label: str) -> None:
    """Every name ``--names-from`` lists must be in the checkpoint called ``label``: a
    misspelt name would otherwise leave its tensor unchanged without a word.

    >>> check_listed(Selection(names=frozenset({"0.weight", "0.wieght"})), ["0.weight"], "m.pt")
    Traceback (most recent call last):
    paramctl.errors.NothingSelected: --names-from lists 1 name not in m.pt: 0.wieght; did you mean 0.weight?
    """
    present = list(available)
    unknown = unknown_names(selection, present)
    if unknown:
        hint = did_you_mean(unknown[0], present) if len(unknown) == 1 else ""
        listed = plural(len(unknown), "name")
        raise NothingSelected(f"--names-from lists {listed} not in {label}: {', '.join(unknown[:5])}{hint}")


def nothing_selected(selection: Selection, available: Sequence[str]) -> NothingSelected:
    """The error for an empty selection, naming a few close names to help; one name asked
    for by itself (``show NAME``) is answered with the name closest to it.

    >>> nothing_selected(Selection(names=frozenset({"0.wieght"})), ["0.weight", "0.bias"])
    NothingSelected("no tensor named '0.wieght'; did you mean 0.weight?")
    """
    if selection.names is not None and len(selection.names) == 1 and not (selection.match or selection.regex):
        (name,) = selection.names
        hint = did_you_mean(name, available)
        if not hint and available:
            hint = f"; names look like: {', '.join(available[:3])}"
        return NothingSelected(f"no tensor named {name!r}{hint}")
    import difflib

    probes = [*selection.match, *selection.regex, *(selection.names or ())]
    close: list[str] = []
    for probe in probes:
        for hit in difflib.get_close_matches(probe.strip("*^$"), available, n=3, cutoff=0.6):
            if hit not in close:
                close.append(hit)
    hint = f"; close names: {', '.join(close[:5])}" if close else ""
    if not close and available:
        hint = f"; names look like: {', '.join(available[:3])}"
    return NothingSelected(f"no tensor matches {selection.describe()}{hint}")
