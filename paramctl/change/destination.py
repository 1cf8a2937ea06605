"""Where ``paramctl init`` writes the checkpoint, and where its report goes.

The checkpoint goes to ``-o PATH``, over the input with ``--in-place``, or to standard
output when that is not a terminal; with ``--dry-run`` it goes nowhere. Standard output can
carry one thing: when it carries the checkpoint, the report moves to standard error.

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

from dataclasses import dataclass
from typing import BinaryIO

from paramctl.errors import UsageError
from paramctl.formats import STDIN
from paramctl.remote.url import check_local_output

STDOUT_LABEL = "<stdout>"
IN_PLACE_NEEDS_FILE = "--in-place rewrites a checkpoint file: give PATH and --model, or -o PATH"


@dataclass(frozen=True)
class Destination:
    """The checkpoint's destination: a file, standard output, or nothing (a dry run)."""

    path: str | None = None
    to_stdout: bool = False
    backup: str | None = None
    in_place: bool = False

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
        return Destination(path=source if in_place else output, backup=kept, in_place=in_place)
    if stdout_isatty:
        raise UsageError(
            "refusing to write a binary checkpoint to a terminal: give -o PATH or --in-place, "
            "or redirect standard output (> out.pt, | paramctl list)"
        )
    return Destination(to_stdout=True)
