"""Format detection and the one entry point for reading: :func:`read_checkpoint`.

Each format module offers ``FORMAT`` (its name), ``sniff(head) -> bool`` on the first bytes
of the file and ``read(path) -> Checkpoint`` that reads metadata only.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint
from paramctl.errors import CheckpointIOError, CorruptCheckpoint, ParamctlError
from paramctl.formats import safetensors, torch_legacy, torch_zip
from paramctl.formats._pickle import NeedsTorch

READERS: tuple[ModuleType, ...] = (torch_zip, torch_legacy, safetensors)
FORMATS = tuple(reader.FORMAT for reader in READERS)
STDIN = "-"
STDIN_LABEL = "<stdin>"
_SNIFF_BYTES = 64


def detect_format(path: Path) -> ModuleType:
    """The reader for ``path``, chosen by its first bytes (the extension is ignored).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> with open(path, "wb") as file:
    ...     _ = file.write(b"PK\x03\x04" + bytes(60))
    >>> detect_format(Path(path)).FORMAT
    'torch-zip'
    """
    with _opened(path) as file:
        head = file.read(_SNIFF_BYTES)
    for reader in READERS:
        if reader.sniff(head):
            return reader
    if not head:
        raise CorruptCheckpoint(f"{path}: the file is empty")
    raise CorruptCheckpoint(
        f"{path}: not a checkpoint paramctl reads (expected a PyTorch zip or legacy file, or safetensors)"
    )


def read_checkpoint(
    source: str | os.PathLike[str], *, on_note: Callable[[str], None] | None = None
) -> Checkpoint:
    """Read a checkpoint's metadata; ``"-"`` reads standard input.

    When the metadata reader meets a torch feature it does not model (a sparse or quantized
    tensor, a tensor subclass), the file is loaded with ``torch.load(weights_only=True,
    mmap=True)`` instead, which is still safe; ``on_note`` hears about it.
    """
    if str(source) != STDIN:
        return _read(Path(source), on_note)
    path = spool_stdin()
    try:
        checkpoint = _read(path, on_note)
    except ParamctlError as exc:
        exc.args = (str(exc).replace(str(path), STDIN_LABEL),)
        raise
    checkpoint.label = STDIN_LABEL
    return checkpoint


def _read(path: Path, on_note: Callable[[str], None] | None) -> Checkpoint:
    reader = detect_format(path)
    try:
        return reader.read(path)  # type: ignore[no-any-return]
    except NeedsTorch as needs:
        from paramctl.values import load_with_torch

        checkpoint = load_with_torch(path, reader.FORMAT)
        note = f"{needs}; read it with torch.load(weights_only=True) instead"
        checkpoint.notes.append(note)
        if on_note:
            on_note(note)
        return checkpoint
    except OSError as exc:
        raise CheckpointIOError(f"{path}: {exc.strerror or exc}") from exc
    except RecursionError as exc:
        raise CorruptCheckpoint(f"{path}: nested too deeply to read") from exc


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``open(path, "rb")`` whose OS errors become a one-line :class:`CheckpointIOError`."""
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except IsADirectoryError as exc:
        raise CheckpointIOError(f"{path}: is a directory") from exc
    except OSError as exc:
        raise CheckpointIOError(f"{path}: {exc.strerror or exc}") from exc
    with file:
        yield file


# One spooled copy per standard-input stream: a command may read "-" more than once.
_spooled: weakref.WeakKeyDictionary[Any, Path] = weakref.WeakKeyDictionary()


def spool_stdin() -> Path:
    """Copy standard input to a temporary file once, so it can be mapped and re-read.

    Checkpoints need random access (zip's directory is at the end), which a pipe lacks.
    """
    stream = sys.stdin.buffer
    path = _spooled.get(stream)
    if path is None:
        handle, name = tempfile.mkstemp(prefix="paramctl-stdin-")
        path = _spooled[stream] = Path(name)
        atexit.register(path.unlink, missing_ok=True)
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    return path
