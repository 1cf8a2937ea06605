"""The registry of checkpoint formats: detection, reading, and the choice of output format.

Each format is a folder here whose ``FORMAT`` implements :class:`~paramctl.formats._format.Format`;
:data:`REGISTRY` lists them, most specific first, and everything else asks the registry:
``read_checkpoint`` detects a file's format by its bytes, :func:`output_format` picks the
format to write from ``--to`` or a suffix, :data:`WRITABLE` are ``--to``'s choices.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint
from paramctl.errors import CheckpointIOError, CorruptCheckpoint, ParamctlError, UsageError
from paramctl.formats import (
    dcp,
    gguf,
    hf_sharded,
    mxnet,
    npy,
    safetensors,
    torch_export,
    torch_legacy,
    torch_zip,
    torchscript,
)
from paramctl.formats._format import Finding, Format, Holds, NeedsTorch, Severity, Verification
from paramctl.formats._gc import collection_paused
from paramctl.formats._source import as_path, open_binary, open_zip
from paramctl.remote.url import url_of

# Zip formats come most specific first; torch-zip claims whatever zip the others decline.
REGISTRY: tuple[Format, ...] = (
    torchscript.FORMAT,
    torch_export.FORMAT,
    npy.NPZ,
    torch_zip.FORMAT,
    torch_legacy.FORMAT,
    safetensors.FORMAT,
    hf_sharded.FORMAT,
    dcp.FORMAT,
    gguf.FORMAT,
    npy.NPY,
    mxnet.FORMAT,
)
FORMATS = tuple(fmt.name for fmt in REGISTRY)
FORMATS_BY_NAME = {fmt.name: fmt for fmt in REGISTRY}
# Every format can be written back in its own layout; --to may name any of them.
WRITABLE = FORMATS
STDIN = "-"
STDIN_LABEL = "<stdin>"
_SNIFF_BYTES = 64
_ZIP_MAGIC = b"PK\x03\x04"


def format_named(name: str) -> Format:
    """The registered format called ``name``.

    >>> format_named("safetensors").suffixes
    ('.safetensors',)
    """
    try:
        return FORMATS_BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown format {name!r}: formats are {', '.join(FORMATS)}") from None


def format_of(checkpoint: Checkpoint) -> Format:
    """The format a checkpoint was read in."""
    return format_named(checkpoint.format)


def known_suffixes() -> list[str]:
    """Every output suffix some format claims, in registry order."""
    return list(dict.fromkeys(suffix for fmt in REGISTRY for suffix in fmt.suffixes))


def output_format(path: str | os.PathLike[str] | None, requested: str | None, input_format: str) -> str:
    """The format to write: ``requested`` (``--to``), else the one the suffix names (the
    input's own when it claims the suffix too), else, with no suffix, the input's.

    >>> output_format("out.safetensors", None, "torch-zip")
    'safetensors'
    >>> output_format("out.pt", None, "safetensors"), output_format(None, None, "torch-legacy")
    ('torch-zip', 'torch-legacy')
    >>> output_format("out.safetensor", None, "torch-zip")
    Traceback (most recent call last):
    paramctl.errors.UsageError: -o out.safetensor: no format claims the suffix '.safetensor' ...
    """
    if requested is not None:
        if requested not in WRITABLE:
            raise UsageError(f"--to {requested!r}: formats are {', '.join(WRITABLE)}")
        return requested
    suffix = Path(path).suffix.lower() if path is not None else ""
    if not suffix:
        return input_format
    claimants = [fmt for fmt in REGISTRY if suffix in fmt.suffixes]
    if any(fmt.name == input_format for fmt in claimants):
        return input_format
    for fmt in claimants:
        if fmt.writes_new:
            return fmt.name
    if claimants:
        raise UsageError(f"-o {path}: paramctl {claimants[0].no_writer}")
    raise UsageError(
        f"-o {path}: no format claims the suffix {suffix!r} (known: {', '.join(known_suffixes())}); "
        "give --to FORMAT to write it anyway"
    )


def detect_format(path: Path) -> Format:
    """The format of ``path``: a format that claims it by name or layout (a directory, an
    index file), else the one its first bytes show (the extension is ignored).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> with open(path, "wb") as file:
    ...     _ = file.write(b"PK\x03\x04" + bytes(60))
    >>> detect_format(Path(path)).name
    'torch-zip'
    """
    return locate(path)[1]


def locate(path: Path) -> tuple[Path, Format]:
    """The checkpoint at ``path`` and its format: ``path`` itself, or the one checkpoint a
    directory holds. A directory holding several is a :class:`UsageError` listing them."""
    path = as_path(path)
    claimed = {candidate: fmt for fmt in REGISTRY for candidate in fmt.claims(path)}
    if path in claimed:
        return path, claimed[path]
    if len(claimed) > 1:
        listed = ", ".join(sorted(str(candidate) for candidate in claimed))
        raise UsageError(f"{path}: holds several checkpoints; give one of {listed}")
    if claimed:
        (candidate,) = claimed
        return locate(candidate)
    return path, _sniffed(path)


def _sniffed(path: Path) -> Format:
    with _opened(path) as file:
        head = file.read(_SNIFF_BYTES)
        members: list[str] | None = None
        for fmt in REGISTRY:
            if not fmt.sniff(head):
                continue
            if head.startswith(_ZIP_MAGIC):
                members = _zip_members(file) if members is None else members
                if not fmt.sniff_zip(members):
                    continue
            return fmt
    if not head:
        raise CorruptCheckpoint(f"{path}: the file is empty")
    titles = ", ".join(fmt.title for fmt in REGISTRY)
    raise CorruptCheckpoint(f"{path}: not a checkpoint paramctl reads (it reads {titles})")


def _zip_members(file: BinaryIO) -> list[str]:
    """The member names of a zip archive, or none when its directory cannot be read (the
    format that claims every zip then reports the damage)."""
    import zipfile

    try:
        with open_zip(file) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return []


def read_checkpoint(
    source: str | os.PathLike[str], *, on_note: Callable[[str], None] | None = None
) -> Checkpoint:
    """Read a checkpoint's metadata; ``"-"`` reads standard input.

    When the metadata reader meets a torch feature it does not model (a sparse or quantized
    tensor, a tensor subclass), the file is loaded with ``torch.load(weights_only=True,
    mmap=True)`` instead, which is still safe; ``on_note`` hears about it.
    """
    if str(source) != STDIN:
        given = os.fspath(source)
        try:
            checkpoint = _read(as_path(given), on_note)
            if url_of(given) is not None:
                checkpoint.label = given  # an hf:// file is read from the cache's copy
            return checkpoint
        except ParamctlError as exc:
            # Path folds "https://host/m.pt" to "https:/host/m.pt": name the source as given.
            if str(Path(given)) != given:
                exc.args = (str(exc).replace(str(Path(given)), given),)
            raise
    path = spool_stdin()
    try:
        checkpoint = _read(path, on_note)
    except ParamctlError as exc:
        exc.args = (str(exc).replace(str(path), STDIN_LABEL),)
        raise
    checkpoint.label = STDIN_LABEL
    return checkpoint


def _read(path: Path, on_note: Callable[[str], None] | None) -> Checkpoint:
    path, fmt = locate(path)
    try:
        with collection_paused():
            return fmt.read(path)
    except NeedsTorch as needs:
        from paramctl.formats._fallback import load_with_torch

        checkpoint = load_with_torch(path, fmt.name, mmap=fmt.torch_mmap)
        note = f"{needs}; read it with torch.load(weights_only=True) instead"
        checkpoint.notes.append(note)
        if on_note:
            on_note(note)
        return checkpoint
    except OSError as exc:
        if url_of(path) is not None:  # a reader that maps or stats the whole file
            raise CheckpointIOError(
                f"{path}: {fmt.title} files are not read over the network; download it first"
            ) from exc
        raise CheckpointIOError(f"{path}: {exc.strerror or exc}") from exc
    except RecursionError as exc:
        raise CorruptCheckpoint(f"{path}: nested too deeply to read") from exc


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``open(path, "rb")`` whose OS errors become a one-line :class:`CheckpointIOError`."""
    try:
        file = open_binary(path)
    except IsADirectoryError as exc:
        raise CheckpointIOError(f"{path}: is a directory holding no checkpoint paramctl reads") from exc
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
    import shutil
    import tempfile

    stream = sys.stdin.buffer
    path = _spooled.get(stream)
    if path is None:
        handle, name = tempfile.mkstemp(prefix="paramctl-stdin-")
        path = _spooled[stream] = Path(name)
        atexit.register(path.unlink, missing_ok=True)
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    return path


__all__ = [
    "FORMATS",
    "FORMATS_BY_NAME",
    "REGISTRY",
    "STDIN",
    "STDIN_LABEL",
    "WRITABLE",
    "Finding",
    "Format",
    "Holds",
    "Severity",
    "Verification",
    "detect_format",
    "format_named",
    "format_of",
    "known_suffixes",
    "locate",
    "output_format",
    "read_checkpoint",
    "spool_stdin",
]
