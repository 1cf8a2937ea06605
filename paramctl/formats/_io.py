"""Byte helpers every format shares: positioned reads and writes, kernel-side copies and
chunked reading into one reused buffer.

Everything works on file descriptors with explicit offsets (``pread``/``pwrite``), so
several readers and writers can share one open file without seeking it.

>>> import os, tempfile
>>> fd, name = tempfile.mkstemp()
>>> write_at(fd, b"0123456789", 0)
>>> [bytes(chunk) for chunk in read_chunks(fd, 2, 7, chunk_size=3)]
[b'234', b'567', b'8']
>>> os.close(fd); os.unlink(name)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from paramctl.errors import CorruptCheckpoint

CHUNK = 8 << 20
_COPY_FALLBACK_ERRORS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM}


def copy_range(source: int, target: int, source_offset: int, target_offset: int, length: int) -> None:
    """Copy ``length`` bytes between two file descriptors at the given offsets.

    ``copy_file_range`` lets the kernel move the bytes (or share them, on file systems that
    can); where it is missing or refuses (across file systems on some kernels), the bytes
    go through a buffer instead.
    """
    copy_file_range = getattr(os, "copy_file_range", None)
    while length > 0 and copy_file_range is not None:
        try:
            done = copy_file_range(source, target, min(length, 1 << 30), source_offset, target_offset)
        except OSError as exc:
            if exc.errno not in _COPY_FALLBACK_ERRORS:
                raise
            break
        if done <= 0:
            break
        source_offset, target_offset, length = source_offset + done, target_offset + done, length - done
    while length > 0:
        chunk = os.pread(source, min(length, CHUNK), source_offset)
        if not chunk:
            raise CorruptCheckpoint("the checkpoint ended while it was being copied")
        write_at(target, chunk, target_offset)
        source_offset, target_offset, length = (
            source_offset + len(chunk),
            target_offset + len(chunk),
            length - len(chunk),
        )


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``pwrite`` all of ``data`` (a single call may write less)."""
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def read_at(fd: int, into: memoryview, offset: int) -> None:
    """Fill ``into`` from ``offset``; a short file is a damaged checkpoint."""
    view = into.cast("B")
    while view:
        done = os.preadv(fd, [view], offset)
        if done <= 0:
            raise CorruptCheckpoint("the checkpoint is shorter than its storages say")
        view, offset = view[done:], offset + done


def read_chunks(
    fd: int, offset: int, length: int, *, chunk_size: int = CHUNK, buffer: bytearray | None = None
) -> Iterator[memoryview]:
    """``length`` bytes from ``offset`` as views of one reused buffer, ``chunk_size`` at a time.

    Each view is valid until the next one is produced. A file shorter than asked for is a
    damaged checkpoint.
    """
    if buffer is None or len(buffer) < min(chunk_size, length):
        buffer = bytearray(max(1, min(chunk_size, length)))
    view = memoryview(buffer)
    while length > 0:
        part = view[: min(len(view), length)]
        read_at(fd, part, offset)
        yield part
        offset, length = offset + len(part), length - len(part)
