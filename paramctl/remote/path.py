"""A URL as a :class:`~pathlib.Path`: the formats' path arithmetic (``path.parent /
shard``) works on it, and the few questions they ask of the file system (is it a file, a
folder, how big, what is in it) are answered by the remote store.

>>> path = RemotePath("https://example.org/models/model.safetensors.index.json")
>>> str(path.parent / "model-00001-of-00002.safetensors")
'https://example.org/models/model-00001-of-00002.safetensors'
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Generator
from pathlib import PosixPath
from typing import Any

from paramctl.remote.file import open_remote, remote_file, transport_for
from paramctl.remote.session import RemoteNotFound, current
from paramctl.remote.url import scheme_of, url_of


class RemotePath(PosixPath):
    """A path whose first part is a URL scheme, read over the network."""

    __slots__ = ()

    def __str__(self) -> str:
        return url_of(super().__str__()) or super().__str__()

    @property
    def url(self) -> str:
        return str(self)

    def resolve(self, strict: bool = False) -> RemotePath:
        return self  # a URL is absolute, and has no links to follow here

    def absolute(self) -> RemotePath:
        return self

    def expanduser(self) -> RemotePath:
        return self

    def is_file(self) -> bool:
        if self.url in current().folders:
            return False
        try:
            remote_file(self.url)
        except RemoteNotFound:
            return False
        current().folders.add(str(self.parent))
        return True

    def is_dir(self) -> bool:
        if scheme_of(self.url) == "s3":
            return transport_for(self.url).is_dir()
        return self.url in current().folders

    def exists(self, *, follow_symlinks: bool = True) -> bool:
        return self.is_file() or self.is_dir()

    def iterdir(self) -> Generator[RemotePath, None, None]:
        names = transport_for(self.url).children() if scheme_of(self.url) == "s3" else []
        for name in names:
            yield self / name

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        size = remote_file(self.url).size
        return os.stat_result((stat.S_IFREG | 0o444, 0, 0, 1, 0, 0, size, 0, 0, 0))

    def read_bytes(self) -> bytes:
        with self.open("rb") as file:
            data: bytes = file.read()
            return data

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        return self.read_bytes().decode(encoding or "utf-8", errors or "strict")

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        """The file for reading (a missing one is :class:`FileNotFoundError`, as a local
        file's is); writing to a URL is a usage error."""
        if "w" in mode or "a" in mode or "+" in mode or "x" in mode:
            from paramctl.errors import UsageError

            raise UsageError(f"{self.url}: paramctl reads remote files, it does not write them")
        try:
            binary = open_remote(self.url)
        except RemoteNotFound as exc:
            raise FileNotFoundError(2, str(exc), self.url) from None
        return binary if "b" in mode else io.TextIOWrapper(binary, *args, **kwargs)
