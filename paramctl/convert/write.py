"""Carrying out a conversion: the plan, the scratch file for new bytes, the target's writer,
one atomic commit.

A file format's writer (:meth:`~paramctl.formats.Format.writer`) gets one file replaced
atomically; a format of several files (:meth:`~paramctl.formats.Format.set_writer`) gets a
directory, its files committed as one set with the index last. Bytes that are copied go
from file to file by the kernel; only casts and tensors the source does not store plainly
pass through a scratch file beside the output.

>>> parse_size("5GB"), parse_size("500MiB"), parse_size("1024")
(5000000000, 524288000, 1024)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint
from paramctl.convert.cast import materialize
from paramctl.convert.plan import ConvertOptions, ConvertPlan, plan_conversion
from paramctl.errors import UsageError
from paramctl.formats import Format, format_named, output_format, read_checkpoint
from paramctl.formats._format import Progress

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def parse_size(text: str) -> int:
    """``--max-shard-size``: bytes, with ``KB/MB/GB`` (powers of 1000, as Hugging Face
    counts) or ``KiB/MiB/GiB`` (powers of 1024)."""
    found = _SIZE.match(text)
    if found is None or float(found.group(1)) <= 0:
        raise UsageError(f"--max-shard-size {text!r}: give a size such as 5GB, 500MB or 2GiB")
    number, unit = found.groups()
    unit = unit.upper()
    base = 1024 if "I" in unit else 1000
    return int(float(number) * base ** _POWERS[unit[:1] if unit[:1] in "KMGT" else ""])


@dataclass
class ConvertResult:
    """What ``paramctl convert`` wrote, and what the target could not keep as it was."""

    source: str
    output: str
    format: str
    files: list[str]
    tensors: int
    bytes: int
    prefix: str = ""
    renamed: int = 0
    dtype: str | None = None
    cast: list[str] = field(default_factory=list)
    stored_whole: list[str] = field(default_factory=list)
    ties_copied: list[str] = field(default_factory=list)
    extras_kept: int = 0
    extras_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def target_format(destination: str | os.PathLike[str], to: str | None, input_format: str) -> Format:
    """The format to write (``--to``, else the suffix's, else the input's), which must be
    able to make new files."""
    try:
        fmt = format_named(output_format(destination, to, input_format))
    except UsageError as exc:  # the message names -o, which convert spells as DST
        raise UsageError(str(exc).removeprefix("-o ")) from None
    if fmt.writer() is None and fmt.set_writer() is None:
        raise UsageError(f"{destination}: paramctl {fmt.no_writer}")
    return fmt


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    to: str | None = None,
    options: ConvertOptions | None = None,
    on_progress: Progress | None = None,
) -> ConvertResult:
    """Convert the checkpoint at ``source`` into ``destination`` (a file, or a directory
    for a format of several files), in the format ``to`` or the one its suffix names."""
    checkpoint = read_checkpoint(source)
    fmt = target_format(destination, to, checkpoint.format)
    return convert_checkpoint(checkpoint, destination, fmt, options or ConvertOptions(), on_progress)


def convert_checkpoint(
    checkpoint: Checkpoint,
    destination: str | os.PathLike[str],
    fmt: Format,
    options: ConvertOptions,
    on_progress: Progress | None = None,
) -> ConvertResult:
    """:func:`convert` of a checkpoint already read, into the format ``fmt``."""
    from paramctl.atomic import atomic_file, atomic_files, scratch_file

    plan = plan_conversion(checkpoint, fmt.holds, fmt.title, options)
    target = Path(destination)
    set_writer = fmt.set_writer()
    if set_writer is not None:
        if target.exists() and not target.is_dir():
            raise UsageError(f"{target}: {fmt.title} is a directory; give a directory path")
        target.mkdir(parents=True, exist_ok=True)
    scratch_dir = target if set_writer is not None else target.parent
    with scratch_file(scratch_dir) as (scratch, scratch_path):
        made = materialize(checkpoint, plan.jobs, scratch, scratch_path, on_progress=on_progress)
        output = plan.checkpoint(made)
        if set_writer is not None:
            with atomic_files(target, last=fmt.index_name) as files:
                written = set_writer(output, files, max_shard_size=options.max_shard_size)
        else:
            with atomic_file(target) as out:
                fmt.write(output, out)
            written = [target.name]
    return _result(plan, output, str(target), fmt, written, options)


def _result(
    plan: ConvertPlan, output: Checkpoint, where: str, fmt: Format, files: list[str], options: ConvertOptions
) -> ConvertResult:
    from paramctl.storage import stored_bytes

    return ConvertResult(
        source=plan.source.label,
        output=where,
        format=fmt.name,
        files=files,
        tensors=len(output.entries),
        bytes=stored_bytes(output.entries),
        prefix=plan.prefix,
        renamed=plan.renamed,
        dtype=options.dtype,
        cast=plan.cast,
        stored_whole=plan.stored_whole,
        ties_copied=plan.ties_copied,
        extras_kept=plan.extras_kept,
        extras_dropped=plan.extras_dropped,
    )
