"""What a remote file system answers: a file's size and validator with its first bytes,
byte ranges of it, and (where the store can list) a folder's children.

>>> class Memory(Transport):
...     data = b"0123456789"
...     def head(self, length, known):
...         return Head(len(self.data), '"v1"', self.data[:length])
...     def fetch(self, start, end, validator):
...         return self.data[start:end]
>>> Memory("memory://m").fetch_many([(0, 2), (8, 10)], '"v1"')
[b'01', b'89']
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Head:
    """The first answer about a file: its size, its validator (an ETag), and its first bytes
    (``None`` when the copy already kept is still current; ``whole`` when the server sent
    all of it, ignoring the range asked for, and ``--download`` allowed that)."""

    size: int
    validator: str
    first: bytes | None
    whole: Iterator[bytes] | None = None


class Transport(ABC):
    """Range reads of one URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    @abstractmethod
    def head(self, length: int, known: str | None) -> Head:
        """Size, validator and the first ``length`` bytes (none when ``known`` is current)."""

    @abstractmethod
    def fetch(self, start: int, end: int, validator: str) -> bytes:
        """Bytes ``[start, end)``; a file whose validator is no longer ``validator`` is an error."""

    def fetch_many(self, spans: list[tuple[int, int]], validator: str) -> list[bytes]:
        """Several ranges (one request where the store can send several ranges at once)."""
        return [self.fetch(start, end, validator) for start, end in spans]

    def is_dir(self) -> bool:
        return False

    def children(self) -> list[str]:
        """The names in a folder (none where the store cannot list)."""
        return []
