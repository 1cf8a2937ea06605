"""Where a checkpoint's bytes come from: a local file, or a URL read by range requests.

Readers open files with :func:`open_binary` (a local file is ``open(path, "rb")``, no
slower than before); :class:`~paramctl.values.ValueReader` gets a descriptor from
:func:`open_descriptor` and, for a remote file, has the bytes it is about to read fetched
first (:func:`fetch`). A URL is a :class:`~paramctl.remote.path.RemotePath`, which
answers ``is_file``, ``is_dir``, ``stat`` and ``iterdir`` from the remote store.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "m.bin")
>>> with open(path, "wb") as out:
...     _ = out.write(b"weights")
>>> with open_binary(as_path(path)) as file:
...     file.read(3)
b'wei'
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.formats._io import read_at, read_chunks
from paramctl.remote.url import scheme_of, url_of

if TYPE_CHECKING:
    import zipfile

    from paramctl.checkpoint import Checkpoint, Storage, TensorEntry


def as_path(source: str | os.PathLike[str]) -> Path:
    """``source`` as a path: a URL becomes a remote path (an ``hf://`` one the local
    cache's file when it is there)."""
    url = url_of(source)
    if url is None:
        return Path(source)
    if scheme_of(url) == "hf":
        from paramctl.remote.hub import resolve_hub

        resolved = resolve_hub(url)
        if isinstance(resolved, Path):
            return resolved
        url = resolved
    from paramctl.remote.path import RemotePath

    return RemotePath(url)


def open_binary(path: Path) -> BinaryIO:
    """``path`` opened for binary reading, seekable, wherever it is."""
    url = url_of(path)
    if url is None:
        return open(path, "rb")
    from paramctl.remote.file import open_remote

    return open_remote(url)


def open_descriptor(path: Path) -> int:
    """A descriptor to ``pread`` the file's bytes from (a remote file's local copy, whose
    bytes are there once :func:`fetch` has fetched them)."""
    url = url_of(path)
    if url is None:
        fd = os.open(path, os.O_RDONLY)
        # Entries are read in file order: a wider read-ahead keeps the disk ahead of the CPU.
        with contextlib.suppress(AttributeError, OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return fd
    from paramctl.remote.file import remote_file

    return os.dup(remote_file(url).copy.fd)


def read_part(file: BinaryIO, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` of a file :func:`open_binary` opened (fewer at its
    end), with one ``pread`` for a local file, without moving its position."""
    remote = getattr(file, "remote", None)
    if remote is not None:
        buffer = bytearray(size)
        return bytes(buffer[: remote.read_into(memoryview(buffer), offset)])
    parts, wanted = [], size
    while wanted > 0:
        part = os.pread(file.fileno(), wanted, offset + size - wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def fetch(path: Path, start: int, end: int) -> None:
    """Have bytes ``[start, end)`` of a remote file fetched (nothing to do for a local one)."""
    url = url_of(path)
    if url is not None and end > start:
        from paramctl.remote.file import remote_file

        remote_file(url).ensure(start, end)


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[mmap.mmap]:
    """The whole file mapped read-only (a remote file fetched whole first: only formats of
    small files that must be read from end to end ask for this)."""
    url = url_of(path)
    if url is None:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data
        return
    fetch(path, 0, size_of(path))
    fd = open_descriptor(path)
    try:
        with mmap.mmap(fd, size_of(path), access=mmap.ACCESS_READ) as data:
            yield data
    finally:
        os.close(fd)


def fetch_entry(storage: Storage, entry: TensorEntry) -> None:
    """Have an entry's bytes fetched, when its file is remote and holds them in place."""
    if storage.offset is not None and storage.inline is None:
        start, end = entry.byte_span
        fetch(storage.file, storage.offset + start, storage.offset + end)


def fetch_part(path: Path, view_offset: int, view: Any, part: Any) -> None:
    """Fetch the bytes an indexed ``part`` of ``view`` spans (a few rows of a tensor, not all
    of it): ``view`` is an array over the mapped file whose first element is at
    ``view_offset``, so an address in it is a file offset."""
    if url_of(path) is None or not hasattr(part, "strides") or part.size == 0 or view.size == 0:
        return
    origin = view_offset - view.ctypes.data
    reach = [step * (size - 1) for step, size in zip(part.strides, part.shape, strict=True)]
    low = part.ctypes.data + sum(min(0, r) for r in reach)
    high = part.ctypes.data + sum(max(0, r) for r in reach) + part.itemsize
    fetch(path, origin + low, origin + high)


def read_span(
    path: Path, fd: int, offset: int, length: int, *, chunk_size: int, buffer: bytearray | None = None
) -> Iterator[memoryview]:
    """:func:`~paramctl.formats._io.read_chunks` for a file anywhere: a remote file's chunks
    are fetched one at a time as they are read (kept only when the cache is on)."""
    url = url_of(path)
    if url is None:
        yield from read_chunks(fd, offset, length, chunk_size=chunk_size, buffer=buffer)
        return
    from paramctl.remote.file import remote_file
    from paramctl.remote.session import current

    remote, keep = remote_file(url), current().cache
    if buffer is None or len(buffer) < min(chunk_size, length):
        buffer = bytearray(max(1, min(chunk_size, length)))
    view = memoryview(buffer)
    while length > 0:
        part = view[: min(len(view), length)]
        if keep:
            remote.ensure(offset, offset + len(part))
            read_at(fd, part, offset)
        elif remote.read_into(part, offset, keep=False) < len(part):
            read_at(fd, part, remote.size)  # past the end: the damaged-checkpoint error
        yield part
        offset, length = offset + len(part), length - len(part)


def localized(checkpoint: Checkpoint) -> Checkpoint:
    """``checkpoint`` with its remote files fetched whole and named by their local copies,
    for a writer that copies the bytes it does not change (a local one is as it was)."""
    if url_of(checkpoint.path) is None and all(url_of(s.file) is None for s in checkpoint.storages.values()):
        return checkpoint
    from paramctl.remote.file import remote_file

    def local(path: Path) -> Path:
        url = url_of(path)
        return path if url is None else remote_file(url).local()

    storages = {
        key: replace(storage, file=local(storage.file)) for key, storage in checkpoint.storages.items()
    }
    return replace(checkpoint, path=local(checkpoint.path), storages=storages, label=checkpoint.label)


def size_of(path: str | os.PathLike[str]) -> int:
    """The file's size in bytes (0 when it cannot be told)."""
    url = url_of(path)
    try:
        if url is None:
            return os.path.getsize(path)
        from paramctl.remote.file import remote_file

        return remote_file(url).size
    except (OSError, ValueError):
        return 0


# A local record header is 30 bytes, its name, and an extra field (torch pads records to
# 64-byte boundaries with it, a zip64 record adds 20): this much covers every one written.
_LOCAL_HEADER_ROOM = 30 + 128
_SMALL_RECORD = 4 << 10


def descriptor_of(file: BinaryIO, *, tail: int = 0) -> tuple[int, int]:
    """A descriptor to ``pread`` the bytes of ``file`` (from :func:`open_binary`) and its
    size; for a remote file, its local copy, with the last ``tail`` bytes fetched."""
    remote = getattr(file, "remote", None)
    if remote is None:
        return file.fileno(), os.fstat(file.fileno()).st_size
    if tail:
        remote.ensure(max(0, remote.size - tail), remote.size)
    return remote.copy.fd, remote.size


def open_zip(file: BinaryIO) -> zipfile.ZipFile:
    """``zipfile.ZipFile(file)``; for a remote file, the records' local headers and the
    metadata records (pickles, small ones) are fetched at once, in one request where the
    server can send several ranges: reading a member needs its local header, and a
    checkpoint's headers lie all over the file."""
    import zipfile

    archive = zipfile.ZipFile(file)
    remote = getattr(file, "remote", None)
    if remote is not None:
        spans = []
        for info in archive.infolist():
            room = _LOCAL_HEADER_ROOM + len(info.filename.encode())
            whole = info.filename.endswith(".pkl") or info.compress_size <= _SMALL_RECORD
            end = info.header_offset + room + (info.compress_size if whole else 0)
            spans.append((info.header_offset, end))
        remote.prefetch(spans)
    return archive
