"""A PyTorch zip opened for reading: zipfile's directory, the structure checks of
:mod:`~paramctl.formats.torch_zip.structure`, and the rules ``torch.load`` adds.

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
from collections.abc import Iterator
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
    Layout,
    Record,
    check_end,
    check_records,
    find_end_record,
    read_member,
)

# The newest zip layout version torch 2.13's reader accepts (inline_container.cc).
NEWEST_VERSION = 10
# A decimal number, in ASCII, with the spaces and line ends writers leave around it.
_VERSION = re.compile(r"[ \t\r\n]*([0-9]{1,9})[ \t\r\n]*")
# Records a zip may hold: one per storage, and a few more.
_RECORDS_BEYOND_TENSORS = 1000


@dataclass
class TorchArchive:
    """An open torch zip: its records, what is wrong with it, and its folder."""

    path: Path
    file: BinaryIO
    archive: zipfile.ZipFile
    layout: Layout
    root: str
    limits: Limits

    def reading(self, record: Record) -> int:
        """The descriptor to read ``record``'s bytes from (a remote file's are fetched first)."""
        fetch(self.path, record.data_offset, record.end)
        return descriptor_of(self.file)[0]

    def record(self, name: str) -> Record | None:
        """The record ``<root>/name``."""
        return self.layout.records.get(self.root + name)

    def member(self, name: str, limit: int) -> bytes:
        record = self.record(name)
        if record is None:
            raise CorruptCheckpoint(f"{self.path}: no record {self.root}{name}")
        return read_member(self.reading(record), record, limit, f"{self.path}: {self.root}{name}")

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
        problem = f"{self.path}: {first.name + ': ' if first.name else ''}{first.message}"
        foreign = self._foreign_global()
        if foreign is not None:
            raise AmbiguousFile(problem, foreign)
        raise CorruptCheckpoint(problem)

    def _foreign_global(self) -> str | None:
        """The first global off the allowlist in any record a reader could take for data.pkl."""
        for info in self.archive.infolist():
            record = self.layout.placed.get(id(info))
            if record is None or "data.pkl" not in info.orig_filename:
                continue
            with contextlib.suppress(CorruptCheckpoint, UnsafePickle):
                data = read_member(self.reading(record), record, self.limits.pickle_bytes, info.filename)
                for module, name in global_pairs(data, limits=self.limits):
                    if refuses(module, name):
                        return f"{module}.{name}" if module else name
        return None


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
) -> Iterator[TorchArchive]:
    """Open ``path``, parse and check its structure; problems are listed, not raised.
    ``torch_rules`` adds what ``torch.load`` asks of a checkpoint (other zips torch writes,
    TorchScript and torch.export archives, have only the structure checked)."""
    with open_binary(path) as file:
        fd, size = descriptor_of(file, tail=END_SEARCH)
        end = find_end_record(fd, size)
        if end is None:
            raise CorruptCheckpoint(f"{path}: damaged or truncated zip archive (no end record)")
        check_count(f"{path}: the zip", "records", end.entries, limits.tensors + _RECORDS_BEYOND_TENSORS)
        with _zipfile(file, path) as archive:
            layout = Layout(size)
            check_end(end, size, archive, layout)
            check_records(fd, archive, layout, limits)
            infos = archive.infolist()
            first = infos[0].filename if infos else ""
            opened = TorchArchive(path, file, archive, layout, first.partition("/")[0] + "/", limits)
            if torch_rules and "/" not in first:
                layout.add(
                    first, "a zip file, but not a PyTorch checkpoint (its first record is in no folder)"
                )
            elif torch_rules:
                _torch_rules(opened)
            yield opened
