"""A PyTorch zip opened for reading: its directory, the structure checks of
:mod:`~paramctl.formats.torch_zip.structure`, and the rules ``torch.load`` adds; a whole
file (zipfile reads its directory) or an archive inside a larger file (a DCP item, read
by :mod:`~paramctl.formats.torch_zip.window`), checked alike.

torch takes the archive's folder from the first record's name, reads ``<folder>/version``
(or ``.data/version``) and refuses a file without one, insists on a ``byteorder`` of
exactly ``little`` or ``big``, and hands an archive with ``constants.pkl`` to
``torch.jit.load``. A file those rules refuse is refused here too, so that paramctl never
calls fine what torch cannot load.

>>> import os, tempfile, torch
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2)}, path)
>>> with open_torch_zip(Path(path)) as archive:
...     archive.root, [problem.message for problem in archive.layout.problems]
('m/', [])
"""

from __future__ import annotations

import contextlib
import errno
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from paramctl.errors import AmbiguousFile, CorruptCheckpoint, UnsafePickle
from paramctl.formats._limits import LIMITS, Limits, check_count
from paramctl.formats._pickle import refuses
from paramctl.formats._pickle_names import global_pairs
from paramctl.formats._source import descriptor_of, fetch, open_binary, open_zip
from paramctl.formats.torch_zip.structure import (
    END_SEARCH,
    DirectoryEntry,
    EndRecord,
    Layout,
    Pread,
    Record,
    check_end,
    check_records,
    find_end_record,
    read_member,
    reader_of,
)

# The newest zip layout version torch 2.13's reader accepts (inline_container.cc).
NEWEST_VERSION = 10
# A decimal number, in ASCII, with the spaces and line ends writers leave around it.
_VERSION = re.compile(r"[ \t\r\n]*([0-9]{1,9})[ \t\r\n]*")
# Records a zip may hold: one per storage, and a few more.
_RECORDS_BEYOND_TENSORS = 1000


@dataclass
class TorchArchive:
    """An open torch zip: its records, what is wrong with it, and its folder; ``where``
    names it in messages (a file's path, or a DCP item's)."""

    where: str
    entries: Sequence[DirectoryEntry]  # the central directory, in its order
    layout: Layout
    root: str
    limits: Limits
    pread: Pread

    def reading(self, record: Record) -> Pread:
        """What reads ``record``'s bytes."""
        return self.pread

    def record(self, name: str) -> Record | None:
        """The record ``<root>/name``."""
        return self.layout.records.get(self.root + name)

    def member(self, name: str, limit: int) -> bytes:
        record = self.record(name)
        if record is None:
            raise CorruptCheckpoint(f"{self.where}: no record {self.root}{name}")
        return read_member(self.reading(record), record, limit, f"{self.where}: {self.root}{name}")

    def byteorder(self) -> str:
        return self.member("byteorder", 16).decode() if self.record("byteorder") else "little"

    def refuse_problems(self) -> None:
        """Raise for the first problem that stops reading: :class:`AmbiguousFile` when some
        reading of ``data.pkl`` would import a global off the allowlist (and run it in
        torch.load), else :class:`CorruptCheckpoint`."""
        blocking = [problem for problem in self.layout.problems if problem.blocks]
        if not blocking:
            return
        first = blocking[0]
        problem = f"{self.where}: {first.name + ': ' if first.name else ''}{first.message}"
        foreign = self._foreign_global()
        if foreign is not None:
            raise AmbiguousFile(problem, foreign)
        raise CorruptCheckpoint(problem)

    def _foreign_global(self) -> str | None:
        """The first global off the allowlist in any record a reader could take for data.pkl."""
        for info in self.entries:
            record = self.layout.placed.get(id(info))
            if record is None or "data.pkl" not in info.orig_filename:
                continue
            with contextlib.suppress(CorruptCheckpoint, UnsafePickle):
                data = read_member(self.reading(record), record, self.limits.pickle_bytes, info.filename)
                for module, name in global_pairs(data, limits=self.limits):
                    if refuses(module, name):
                        return f"{module}.{name}" if module else name
        return None


@dataclass
class TorchZipFile(TorchArchive):
    """A whole file opened as a torch zip, with zipfile's view of it for the readers of
    other zips torch writes (TorchScript, torch.export, ``.npz``)."""

    path: Path
    file: BinaryIO
    archive: zipfile.ZipFile

    def reading(self, record: Record) -> Pread:
        fetch(self.path, record.data_offset, record.end)  # a remote file's bytes, fetched first
        return self.pread


def _torch_rules(archive: TorchArchive) -> None:
    """What torch.load adds to a zip's structure; the folder comes from the first record."""
    layout = archive.layout
    version = archive.record(".data/version") or archive.record("version")
    if archive.record("data.pkl") is None:
        layout.add("", f"a zip file, but not a PyTorch checkpoint (no {archive.root}data.pkl)")
    elif version is None:
        layout.add("", "no version record: torch.load refuses the file")
    else:
        text = _small(archive, version)
        number = _VERSION.fullmatch(text)
        if number is None or int(number.group(1)) < 1:
            layout.add(version.info.filename, f"version {text[:20]!r} is not a number torch reads")
        elif int(number.group(1)) > NEWEST_VERSION:
            message = f"version {int(number.group(1))}: newer than torch.load reads (up to {NEWEST_VERSION})"
            layout.add(version.info.filename, message, blocks=False)
    if archive.record("constants.pkl") is not None:
        layout.add(
            "", "a TorchScript archive: torch.load hands it to torch.jit.load, which paramctl does not read"
        )
    order = archive.record("byteorder")
    if order is not None and _small(archive, order) not in ("little", "big"):
        layout.add(
            order.info.filename, f"byteorder {_small(archive, order)[:20]!r} is neither little nor big"
        )


def _small(archive: TorchArchive, record: Record) -> str:
    try:
        return read_member(archive.reading(record), record, 64, record.info.filename).decode(
            "ascii", "replace"
        )
    except CorruptCheckpoint as exc:
        return str(exc)


def _zipfile(file: BinaryIO, path: Path) -> zipfile.ZipFile:
    """zipfile's parse of the directory; whatever it trips over is damage, not a bug."""
    try:
        return open_zip(file)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, None):
            raise
        raise CorruptCheckpoint(f"{path}: damaged or truncated zip archive ({exc})") from exc
    # zipfile raises many kinds for malformed directories (BadZipFile, UnicodeDecodeError
    # for a name flagged UTF-8, NotImplementedError for a version it does not know, ...).
    except Exception as exc:
        raise CorruptCheckpoint(f"{path}: damaged or truncated zip archive ({exc})") from exc


@contextlib.contextmanager
def open_torch_zip(
    path: Path, limits: Limits = LIMITS, *, torch_rules: bool = True
) -> Iterator[TorchZipFile]:
    """Open ``path``, parse and check its structure; problems are listed, not raised.
    ``torch_rules`` adds what ``torch.load`` asks of a checkpoint (other zips torch writes,
    TorchScript and torch.export archives, have only the structure checked)."""
    with open_binary(path) as file:
        fd, size = descriptor_of(file, tail=END_SEARCH)
        pread = reader_of(fd)
        end = end_record(pread, size, str(path), limits)
        with _zipfile(file, path) as archive:
            infos = archive.infolist()
            layout = check_structure(pread, size, end, archive.start_dir, infos, limits)
            root = root_of(infos)
            opened = TorchZipFile(str(path), infos, layout, root, limits, pread, path, file, archive)
            if torch_rules:
                check_torch_rules(opened)
            yield opened


def end_record(pread: Pread, size: int, where: str, limits: Limits) -> EndRecord:
    """The archive's end record, its count of records within the limits."""
    end = find_end_record(pread, size)
    if end is None:
        raise CorruptCheckpoint(f"{where}: damaged or truncated zip archive (no end record)")
    check_count(f"{where}: the zip", "records", end.entries, limits.tensors + _RECORDS_BEYOND_TENSORS)
    return end


def check_structure(
    pread: Pread, size: int, end: EndRecord, start_dir: int, entries: Sequence[DirectoryEntry], limits: Limits
) -> Layout:
    """Every record placed and every structural problem listed (none raised)."""
    layout = Layout(size)
    check_end(end, size, start_dir, len(entries), layout)
    check_records(pread, entries, start_dir, layout, limits)
    return layout


def root_of(entries: Sequence[DirectoryEntry]) -> str:
    """The archive's folder, as torch takes it: the first record's."""
    return (entries[0].filename if entries else "").partition("/")[0] + "/"


def check_torch_rules(archive: TorchArchive) -> None:
    """What ``torch.load`` asks of a checkpoint's zip, added to its problems."""
    first = archive.entries[0].filename if archive.entries else ""
    if "/" not in first:
        message = "a zip file, but not a PyTorch checkpoint (its first record is in no folder)"
        archive.layout.add(first, message)
    else:
        _torch_rules(archive)
