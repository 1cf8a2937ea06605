"""One remote file as this process reads it: a local copy of the ranges fetched, filled
by as few requests as the reading needs.

A format reads a file's beginning (safetensors' header length and header), its end (a
zip's end-of-central-directory record and central directory) and the few places those
point to (``data.pkl``). So the first request takes the first 64 KiB, a read near the end
takes the last 256 KiB, and each further miss reads ahead twice as far as the one before;
values are fetched exactly as asked (:meth:`RemoteFile.ensure`), a tensor's bytes and no more.

>>> from paramctl.remote.session import configured
>>> from paramctl.remote.transport import Head, Transport
>>> class Memory(Transport):  # a store of one file, counting the ranges asked for
...     data, asked = bytes(range(256)) * 4096, []
...     def head(self, length, known):
...         self.asked.append((0, length))
...         return Head(len(self.data), '"v1"', self.data[:length])
...     def fetch(self, start, end, validator):
...         self.asked.append((start, end))
...         return self.data[start:end]
>>> with configured(cache=False):
...     remote = RemoteFile("memory://m", Memory("memory://m"))
...     _ = remote.read_into(memoryview(bytearray(4)), 10)  # in the first 64 KiB: no request
...     _ = remote.read_into(memoryview(bytearray(22)), remote.size - 22)  # the end: the last 256 KiB
...     remote.ensure(300_000, 300_004)  # values: exactly these bytes
>>> Memory.asked
[(0, 65536), (786432, 1048576), (300000, 300004)]
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, cast

from paramctl.remote.cache import LocalCopy, kept
from paramctl.remote.session import current
from paramctl.remote.transport import Transport
from paramctl.remote.url import scheme_of

HEAD_BYTES = 64 << 10
TAIL_BYTES = 256 << 10
FIRST_AHEAD = 256 << 10
MAX_AHEAD = 16 << 20
_NEAR = 4 << 10


class RemoteFile:
    """A remote file's size, validator and the bytes fetched of it so far."""

    def __init__(self, url: str, transport: Transport) -> None:
        self.url = url
        self._transport = transport
        session = current()
        directory = session.directory() if session.cache else None
        previous = kept(directory, url) if directory is not None else None
        head = transport.head(HEAD_BYTES, previous[0] if previous else None)
        unchanged = previous is not None and head.first is None and head.whole is None
        self.size = previous[1] if unchanged and previous else head.size
        self.validator = head.validator
        self.copy = LocalCopy(url, self.size, self.validator, directory)
        if head.first:
            self.copy.store(0, head.first)
        if head.whole is not None:
            offset = 0
            for block in head.whole:
                self.copy.store(offset, block)
                offset += len(block)
        self._ahead = FIRST_AHEAD

    def read_into(self, view: memoryview, offset: int, *, keep: bool = True) -> int:
        """Fill ``view`` from ``offset`` (less at the end of the file); the bytes a reader
        reads next are fetched with them. ``keep=False`` reads a range held nowhere straight
        into ``view`` without keeping it (streamed values under ``--no-cache``)."""
        end = min(offset + len(view), self.size)
        if end <= offset:
            return 0
        gaps = self.copy.held.missing(offset, end)
        if not keep and gaps == [(offset, end)]:
            view[: end - offset] = self._transport.fetch(offset, end, self.validator)
            return end - offset
        if gaps:
            self._fetch_around(offset, end)
        self.copy.read_into(view[: end - offset], offset)
        return end - offset

    def ensure(self, start: int, end: int) -> None:
        """Fetch whatever of ``[start, end)`` is not held, exactly that."""
        for low, high in self.copy.held.missing(start, min(end, self.size)):
            # A request at most MAX_AHEAD long: memory stays bounded whatever the range.
            for piece in range(low, high, MAX_AHEAD):
                last = min(high, piece + MAX_AHEAD)
                self.copy.store(piece, self._transport.fetch(piece, last, self.validator))

    def prefetch(self, spans: list[tuple[int, int]]) -> None:
        """Fetch the parts of these ranges not held, together (ranges a few KiB apart as one)."""
        gaps: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            for low, high in self.copy.held.missing(max(0, start), min(end, self.size)):
                if gaps and low - gaps[-1][1] <= _NEAR:
                    gaps[-1] = (gaps[-1][0], max(high, gaps[-1][1]))
                else:
                    gaps.append((low, high))
        for (low, _), data in zip(gaps, self._transport.fetch_many(gaps, self.validator), strict=True):
            self.copy.store(low, data)

    def local(self) -> Path:
        """All of the file fetched into its local copy, and that copy's path (for a writer
        that copies the bytes it does not change)."""
        self.ensure(0, self.size)
        return self.copy.path

    def close(self) -> None:
        self.copy.close()

    def _fetch_around(self, start: int, end: int) -> None:
        if end > self.size - TAIL_BYTES:
            start, end = min(start, max(0, self.size - TAIL_BYTES)), self.size
        else:
            end = min(self.size, max(end, start + self._ahead))
            self._ahead = min(self._ahead * 2, MAX_AHEAD)
        gaps = self.copy.held.missing(start, end)
        if gaps:  # one request for all of them: bytes held between the gaps come again
            low, high = gaps[0][0], gaps[-1][1]
            self.copy.store(low, self._transport.fetch(low, high, self.validator))


def transport_for(url: str) -> Transport:
    """The transport for a URL's scheme (``hf://`` is resolved before it gets here)."""
    if scheme_of(url) == "s3":
        from paramctl.remote.s3 import S3Transport

        return S3Transport(url)
    from paramctl.remote.http import HttpTransport

    return HttpTransport(url)


def remote_file(url: str) -> RemoteFile:
    """The remote file at ``url``, opened once per session."""
    files = current().files
    if url not in files:
        files[url] = RemoteFile(url, transport_for(url))
    opened: RemoteFile = files[url]
    return opened


class RemoteReader(io.RawIOBase):
    """A seekable binary file over a :class:`RemoteFile`."""

    def __init__(self, remote: RemoteFile) -> None:
        super().__init__()
        self.remote = remote
        self._position = 0
        self.name = remote.url

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        done = self.remote.read_into(memoryview(buffer).cast("B"), self._position)
        self._position += done
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.remote.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


def open_remote(url: str) -> BinaryIO:
    """The file at ``url`` opened for reading, as ``open(path, "rb")`` opens a local one.

    Unbuffered: a buffer would read past what the reader asks for, and a read past the
    bytes fetched is one more request.
    """
    return cast(BinaryIO, RemoteReader(remote_file(url)))
