"""Where ``paramctl init`` writes the checkpoint, and where its report goes.

The checkpoint goes to ``-o PATH``, over the input with ``--in-place``, or to standard
output when that is not a terminal; with ``--dry-run`` it goes nowhere. Standard output can
carry one thing: when it carries the checkpoint, the report moves to standard error.

A file destination must be a regular file or a new path (never a device or FIFO) and
writable; this is checked before anything is read. A directory is the destination of a
checkpoint of several files, each of them checked as it is written. Rewriting the input
(``--in-place``, or ``-o`` naming the input itself) takes the file's :class:`WriteLock`
first, so that two such runs on one file follow each other instead of one undoing the other.

>>> into_file = init_destination("m.pt", "out.pt", stdout_isatty=True)
>>> into_file.path, into_file.label, into_file.report_on_stderr
('out.pt', None, False)
>>> piped = init_destination("-", stdout_isatty=False)
>>> piped.path, piped.label, piped.report_on_stderr
(None, '<stdout>', True)
>>> init_destination("m.pt", in_place=True, backup=True).backup
'm.pt.bak'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO

from paramctl.errors import UsageError
from paramctl.formats import STDIN
from paramctl.remote.url import check_local_output
from paramctl.targets import WriteLock, check_target

STDOUT_LABEL = "<stdout>"
IN_PLACE_NEEDS_FILE = "--in-place rewrites a checkpoint file: give PATH and --model, or -o PATH"


@dataclass(frozen=True)
class Destination:
    """The checkpoint's destination: a file, standard output, or nothing (a dry run)."""

    path: str | None = None
    to_stdout: bool = False
    backup: str | None = None
    in_place: bool = False
    # Held from before the input is read until this destination is let go.
    lock: WriteLock | None = field(default=None, compare=False, repr=False)

    @property
    def dry_run(self) -> bool:
        return self.path is None and not self.to_stdout

    @property
    def label(self) -> str | None:
        """How reports name the output; ``None``: by its path."""
        return STDOUT_LABEL if self.to_stdout else None

    @property
    def report_on_stderr(self) -> bool:
        """Standard output carries the checkpoint, so the report cannot go there."""
        return self.to_stdout

    def target(self, stdout: BinaryIO) -> str | BinaryIO:
        """What the writer gets: the path, or ``stdout``. A dry run has no target."""
        if self.path is not None:
            return self.path
        if not self.to_stdout:
            raise ValueError("a dry run writes nothing")
        return stdout


def init_destination(
    source: str | None,
    output: str | None = None,
    in_place: bool = False,
    backup: bool = False,
    *,
    dry_run: bool = False,
    stdout_isatty: bool = False,
) -> Destination:
    """The destination ``init``'s options name, after checking they agree.

    ``source`` is the checkpoint read (``-`` for standard input; ``None`` when a live
    module is built with no file). Raises :class:`~paramctl.errors.UsageError` for
    conflicting options and for a binary checkpoint bound for a terminal.
    """
    if in_place and output:
        raise UsageError("--in-place and --output exclude each other")
    check_local_output(output)
    if in_place and source is not None:
        check_local_output(source)
    if in_place and source == STDIN:
        raise UsageError("--in-place needs a file, not standard input")
    if in_place and source is None:
        raise UsageError(IN_PLACE_NEEDS_FILE)
    if backup and not in_place:
        raise UsageError("--backup goes with --in-place")
    kept = f"{source}.bak" if backup else None
    if dry_run:
        return Destination(backup=kept, in_place=in_place)
    if in_place or output:
        path = source if in_place else output
        assert path is not None
        if not os.path.isdir(path):  # a directory holds a set of files, each checked as written
            check_target(path)
        lock = WriteLock(path).acquire() if in_place or _same_file(source, path) else None
        return Destination(path=path, backup=kept, in_place=in_place, lock=lock)
    if stdout_isatty:
        raise UsageError(
            "refusing to write a binary checkpoint to a terminal: give -o PATH or --in-place, "
            "or redirect standard output (> out.pt, | paramctl list)"
        )
    return Destination(to_stdout=True)


def _same_file(source: str | None, output: str) -> bool:
    """Whether ``-o`` names the input itself (under another name or through a link)."""
    if source is None or source == STDIN:
        return False
    try:
        return os.path.samefile(source, output)
    except OSError:
        return False
