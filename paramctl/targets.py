"""What a write may replace, and what the new file keeps.

A target that is a symlink is written through: the file it points to is replaced in its own
directory, and the link stays a link. The new file keeps the old one's permission bits and,
where the writer may set them, its owner and group. Anything but a regular file or a new
path (a directory, a device such as ``/dev/full``, a FIFO) is refused, and so is a
read-only file. :class:`WriteLock` serializes read-modify-write cycles on one file.

>>> kept_attributes("/nonexistent/new.pt").owner is None
True
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from paramctl.errors import CheckpointIOError


@dataclass(frozen=True)
class _Kept:
    """What a replaced file keeps: its permission bits, and its owner and group."""

    mode: int
    owner: tuple[int, int] | None = None

    def apply(self, temp: Path) -> None:
        if self.owner is not None and self.owner != _owner_of(temp):
            # Only root (or a member of the group, for the group) may give a file away; a
            # writer that may not still replaces the file, as its own.
            with contextlib.suppress(PermissionError):
                os.chown(temp, *self.owner)
        os.chmod(temp, self.mode)  # after chown, which clears setuid bits


def _owner_of(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_uid, status.st_gid


def kept_attributes(target: str | os.PathLike[str]) -> _Kept:
    """The new file's permission bits and owner: the old file's, or the umask's."""
    try:
        status = os.stat(target)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return _Kept(0o666 & ~umask)
    return _Kept(stat.S_IMODE(status.st_mode), (status.st_uid, status.st_gid))


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


def check_target(target: str | os.PathLike[str]) -> None:
    """Refuse to replace anything but a regular file, or a read-only one; a new path is fine.

    >>> check_target("/dev/null")
    Traceback (most recent call last):
    paramctl.errors.CheckpointIOError: /dev/null: is a character device, not a regular file; ...
    """
    try:
        status = os.stat(target)  # through symlinks: what would be replaced
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CheckpointIOError(f"{target}: {exc.strerror or exc}") from exc
    kind = stat.S_IFMT(status.st_mode)
    if kind != stat.S_IFREG:
        raise CheckpointIOError(
            f"{target}: is {_KINDS.get(kind, 'not a regular file')}, not a regular file; paramctl "
            "writes checkpoints to files, replacing them whole (leave out -o to write to standard output)"
        )
    if not os.access(target, os.W_OK) or not status.st_mode & 0o222:
        raise CheckpointIOError(
            f"{target}: is read-only; paramctl does not replace it (chmod u+w to allow it)"
        )


def write_through(target: str | os.PathLike[str]) -> Path:
    """The path a write to ``target`` replaces: the file a symlink points to (the link stays).

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> os.symlink("real.pt", os.path.join(folder, "link.pt"))
    >>> write_through(os.path.join(folder, "link.pt")).name
    'real.pt'
    """
    path = Path(target)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


class WriteLock:
    """An exclusive lock on one existing file, held across a read-modify-write of it (two
    ``paramctl init --in-place`` on one file: the second waits, then reads what the first
    wrote, so neither change is lost and no mix is ever written).

    The lock is ``flock`` on the file itself, so no lock file is left behind. A writer
    replaces the file by renaming a new one over it; whoever waited on the old file then
    finds a new one at the path, and locks that instead.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
    >>> _ = path.write_bytes(b"old")
    >>> with WriteLock(path) as lock:
    ...     lock.held
    True
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = write_through(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> WriteLock:
        try:
            import fcntl
        except ImportError:  # no flock here: writes stay atomic, only unserialized
            return self
        while self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return self  # nothing to read-modify-write; the read reports it
            except OSError as exc:
                raise CheckpointIOError(f"{self.path}: {exc.strerror or exc}") from exc
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, self.path):
                self._fd = fd
            else:  # replaced while this waited: lock the new file
                os.close(fd)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
