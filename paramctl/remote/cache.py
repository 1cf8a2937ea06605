"""Fetched byte ranges of a remote file, kept in a sparse local copy of it.

The copy has the remote file's size and holds the ranges fetched so far (the rest is a
hole that takes no disk); a small record beside it lists the ranges and the validator
(ETag) they belong to. Kept under the user cache directory, a second command reads the
same ranges without fetching them; with ``--no-cache`` the copy is a temporary file,
removed when it is closed.

>>> ranges = Ranges([(0, 10), (20, 30)])
>>> ranges.missing(5, 25)
[(10, 20)]
>>> ranges.add(10, 20); ranges.spans
[(0, 30)]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

from paramctl.formats._io import write_at


class Ranges:
    """Sorted, merged half-open byte ranges ``[start, end)``."""

    def __init__(self, spans: list[tuple[int, int]] | None = None) -> None:
        self.spans: list[tuple[int, int]] = []
        for start, end in spans or []:
            self.add(start, end)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        kept = []
        for low, high in self.spans:
            if high < start or low > end:
                kept.append((low, high))
            else:
                start, end = min(start, low), max(end, high)
        kept.append((start, end))
        self.spans = sorted(kept)

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` not held."""
        gaps, position = [], start
        for low, high in self.spans:
            if high <= position:
                continue
            if low >= end:
                break
            if low > position:
                gaps.append((position, low))
            position = max(position, high)
        if position < end:
            gaps.append((position, end))
        return gaps


class LocalCopy:
    """A sparse local copy of one remote file: the bytes fetched so far, where they belong."""

    def __init__(self, url: str, size: int, validator: str, directory: Path | None) -> None:
        self.size = size
        self.validator = validator
        self._record: Path | None = None
        if directory is None:
            handle, name = tempfile.mkstemp(prefix="paramctl-remote-")
            self.fd, self.path, self._temporary = handle, Path(name), True
            self.held = Ranges()
        else:
            folder = directory / "ranges" / hashlib.sha256(url.encode()).hexdigest()[:32]
            folder.mkdir(parents=True, exist_ok=True)
            self._record = folder / "ranges.json"
            self.held = Ranges(_held_ranges(self._record, size, validator))
            if not self.held.spans:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / "data")  # bytes of another version of the file
            self.path, self._temporary = folder / "data", False
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._save(url)
        os.ftruncate(self.fd, size)
        self._url = url

    def store(self, offset: int, data: bytes | memoryview) -> None:
        write_at(self.fd, data, offset)
        self.held.add(offset, offset + len(data))
        if self._record is not None:
            self._save(self._url)

    def read_into(self, view: memoryview, offset: int) -> None:
        while view:
            done = os.preadv(self.fd, [view], offset)
            if done <= 0:
                break
            view, offset = view[done:], offset + done

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if self._temporary:
            self.path.unlink(missing_ok=True)

    def _save(self, url: str) -> None:
        assert self._record is not None
        record = {"url": url, "validator": self.validator, "size": self.size, "held": self.held.spans}
        handle, name = tempfile.mkstemp(dir=self._record.parent, prefix=".ranges-")
        with os.fdopen(handle, "w") as out:
            json.dump(record, out)
        os.replace(name, self._record)


def kept(directory: Path, url: str) -> tuple[str, int] | None:
    """The validator (ETag) and size of the copy of ``url`` kept in ``directory``, if any."""
    record = directory / "ranges" / hashlib.sha256(url.encode()).hexdigest()[:32] / "ranges.json"
    try:
        saved = json.loads(record.read_text())
        validator, size = saved["validator"], saved["size"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (validator, size) if isinstance(validator, str) and isinstance(size, int) else None


def _held_ranges(record: Path, size: int, validator: str) -> list[tuple[int, int]]:
    try:
        saved = json.loads(record.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(saved, dict) or saved.get("validator") != validator or saved.get("size") != size:
        return []
    return [(int(low), int(high)) for low, high in saved.get("held", [])]
