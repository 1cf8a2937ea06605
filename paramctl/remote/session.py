"""How remote files are read in this process: the settings the command line gives
(``--no-cache``, ``--download``), the counters ``--verbose`` reports, and the errors.

>>> with configured(cache=False) as current:
...     current.cache, current.requests
(False, 0)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paramctl.errors import CheckpointIOError
from paramctl.units import format_bytes, plural

DEFAULT_TIMEOUT = 30.0
EXTRA_HINT = "pip install 'paramctl[remote]'"


class RemoteError(CheckpointIOError):
    """A remote file could not be read: refused, missing, timed out, changed while read."""


class RemoteNotFound(RemoteError):
    """The server says there is no such file (404, or no such key)."""


class MissingExtra(RemoteError):
    """The package a kind of URL needs is not installed."""

    def __init__(self, scheme: str, package: str) -> None:
        super().__init__(f"{scheme}:// URLs need the {package} package: {EXTRA_HINT}")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/paramctl`` (``~/.cache/paramctl`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "paramctl"


@dataclass
class Session:
    """Settings and counters for the remote files read in this process."""

    cache: bool = True
    download: bool = False
    timeout: float = field(default_factory=lambda: float(os.environ.get("PARAMCTL_TIMEOUT", DEFAULT_TIMEOUT)))
    cache_dir: Path | None = None
    requests: int = 0
    fetched: int = 0
    files: dict[str, Any] = field(default_factory=dict)
    # HTTP cannot list a folder: the folders files were found in are known to be folders.
    folders: set[str] = field(default_factory=set)

    def counted(self, body_bytes: int) -> None:
        self.requests += 1
        self.fetched += body_bytes

    def summary(self) -> str:
        """What was fetched, for ``--verbose``.

        >>> Session(requests=2, fetched=70_000).summary()
        'remote: 2 requests, 68.36 KiB fetched'
        """
        return f"remote: {plural(self.requests, 'request')}, {format_bytes(self.fetched)} fetched"

    def directory(self) -> Path:
        return self.cache_dir or default_cache_dir()


_current = Session()


def current() -> Session:
    """The session remote files are read in now."""
    return _current


@contextmanager
def configured(**settings: Any) -> Iterator[Session]:
    """A fresh session with these settings for the block (files opened in it are closed after)."""
    global _current
    previous, _current = _current, replace(Session(), **settings)
    try:
        yield _current
    finally:
        for opened in _current.files.values():
            opened.close()
        _current = previous
