"""Renaming tensors: ``--strip-prefix`` and ``--rename 'RE=REPL'``, shared by ``convert``
and ``diff`` (and the commands that ``diff --model`` suggests).

Prefixes are cut first, in order, each at most once; then every rename applies in turn,
as :func:`re.sub` with Python's replacement syntax (``\\1``, ``\\g<name>``).

>>> names = NameMap.parse(strip_prefixes=["module."], renames=[r"^(.*)\\.gamma$=\\1.weight"])
>>> names("module.norm.gamma"), names("head.bias")
('norm.weight', 'head.bias')
>>> NameMap.parse(renames=["no equals sign"])
Traceback (most recent call last):
...
paramctl.errors.UsageError: --rename takes 'REGEX=REPLACEMENT', not 'no equals sign'
>>> names.options()
['--strip-prefix', 'module.', '--rename', '^(.*)\\\\.gamma$=\\\\1.weight']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from paramctl.errors import UsageError


@dataclass(frozen=True)
class NameMap:
    """A renaming of tensor names; calling it maps one name."""

    strip_prefixes: tuple[str, ...] = ()
    renames: tuple[tuple[re.Pattern[str], str], ...] = ()

    @classmethod
    def parse(cls, *, strip_prefixes: Iterable[str] = (), renames: Iterable[str] = ()) -> NameMap:
        """Build from the command line's ``--strip-prefix`` and ``--rename`` values."""
        return cls(tuple(strip_prefixes), tuple(_parse_rename(text) for text in renames))

    def __call__(self, name: str) -> str:
        for prefix in self.strip_prefixes:
            name = name.removeprefix(prefix)
        for pattern, replacement in self.renames:
            name = pattern.sub(replacement, name)
        return name

    def __bool__(self) -> bool:
        return bool(self.strip_prefixes or self.renames)

    def options(self) -> list[str]:
        """The command-line options that make this map (for printing a command to run)."""
        words: list[str] = []
        for prefix in self.strip_prefixes:
            words += ["--strip-prefix", prefix]
        for pattern, replacement in self.renames:
            words += ["--rename", f"{pattern.pattern}={replacement}"]
        return words

    def apply(self, names: Sequence[str]) -> dict[str, str]:
        """``{new name: old name}`` for ``names``; two names that map to one are an error."""
        mapped: dict[str, str] = {}
        for old in names:
            new = self(old)
            if new in mapped:
                raise UsageError(f"the renaming maps both {mapped[new]!r} and {old!r} to {new!r}")
            mapped[new] = old
        return mapped


def _parse_rename(text: str) -> tuple[re.Pattern[str], str]:
    pattern, equals, replacement = text.partition("=")
    if not equals or not pattern:
        raise UsageError(f"--rename takes 'REGEX=REPLACEMENT', not {text!r}")
    try:
        compiled = re.compile(pattern)
        compiled.sub(replacement, "")  # a bad group reference fails here, not mid-write
    except (re.error, IndexError) as exc:
        raise UsageError(f"--rename {text!r}: {exc}") from None
    return compiled, replacement
