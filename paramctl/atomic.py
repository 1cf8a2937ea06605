"""Where a written checkpoint goes: a file replaced atomically, or standard output.

:func:`atomic_file` is the one way paramctl writes a file: the bytes go to a temporary file
in the target's own directory, which is flushed and fsynced, then renamed over the target
(and the directory fsynced, so the rename itself is durable). On any error, Ctrl-C or
SIGTERM/SIGHUP, the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from paramctl.errors import CheckpointIOError

TEMP_SUFFIX = ".paramctl-tmp"


@contextlib.contextmanager
def terminations_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` for the block, so cleanups run.

    Python's default for those signals is to die on the spot, leaving temporary files.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _creation_mode(target: Path) -> int:
    """The permission bits the new file should get: the old file's, or the umask's."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path_in(directory: Path, stem: str) -> tuple[BinaryIO, Path]:
    """A new, empty temporary file opened read-write in ``directory``."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise CheckpointIOError(f"cannot write in {directory}: {exc.strerror or exc}") from exc
    return os.fdopen(fd, "w+b"), Path(name)


@contextlib.contextmanager
def atomic_file(
    target: str | os.PathLike[str], *, backup: str | os.PathLike[str] | None = None
) -> Iterator[BinaryIO]:
    """A file opened for writing (``w+b``) that replaces ``target`` when the block succeeds.

    With ``backup``, the old ``target`` is kept under that name (a hard link where the file
    system allows, else a copy), itself replaced atomically.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_file(path) as out:
    ...     _ = out.write(b"new")
    >>> path.read_bytes()
    b'new'
    """
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise CheckpointIOError(f"{target}: is a directory")
    mode = _creation_mode(target)
    with terminations_raise():
        file, temp = temp_path_in(directory, target.name)
        try:
            yield file
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.chmod(temp, mode)
            if backup is not None and target.exists():
                keep(target, Path(backup))
            os.replace(temp, target)
            fsync_directory(directory)
        except OSError as exc:
            raise CheckpointIOError(f"{target}: {exc.strerror or exc}") from exc
        finally:
            file.close()
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def keep(original: Path, backup: Path) -> None:
    """Make ``backup`` hold the current ``original`` (atomically replacing any old backup)."""
    file, temp = temp_path_in(backup.parent if str(backup.parent) else Path("."), backup.name)
    file.close()
    try:
        temp.unlink()
        try:
            os.link(original, temp)
        except OSError:
            shutil.copy2(original, temp)
            with open(temp, "rb+") as copied:
                os.fsync(copied.fileno())
        os.replace(temp, backup)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


@contextlib.contextmanager
def scratch_file(directory: str | os.PathLike[str] | None = None) -> Iterator[tuple[BinaryIO, Path]]:
    """A temporary read-write file and its path, removed afterwards (system temp by default)."""
    where = Path(directory) if directory is not None else Path(tempfile.gettempdir())
    with terminations_raise():
        file, temp = temp_path_in(where, "scratch")
        try:
            yield file, temp
        finally:
            file.close()
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def copy_to_stream(file: BinaryIO, stream: BinaryIO) -> None:
    """Send a finished file to ``stream`` (standard output), from its start."""
    file.flush()
    file.seek(0)
    shutil.copyfileobj(file, stream, 1 << 20)
    stream.flush()
