"""How ``paramctl convert`` looks: what was written, and what the target could not keep as
it was (views stored whole, ties stored as copies, values left out); one row for pipes,
the notes after it, everything as JSON.

>>> from paramctl.convert import ConvertResult
>>> written = ["a.safetensors"]
>>> convert_notes(ConvertResult("a.pt", "a.safetensors", "safetensors", written, 3, 48, ties_copied=["b"]))
['1 tie stored as a copy (the format records no sharing): b']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramctl.render.engine import Column, Report
from paramctl.units import format_bytes, plural

if TYPE_CHECKING:
    from rich.console import RenderableType

    from paramctl.convert import ConvertResult

CONVERT_COLUMNS = [
    Column("source", "source", fold="name"),
    Column("output", "output", style="bold", fold="name"),
    Column("format", "format"),
    Column("tensors", "tensors", "right"),
    Column("bytes", "bytes", "right", human=lambda n: format_bytes(int(n))),
    Column("files", "files", "right"),
]
_SHOWN = 6


def _names(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def convert_notes(result: ConvertResult) -> list[str]:
    """One line for each thing the output holds otherwise than the source did."""
    notes = []
    if result.prefix:
        notes.append(f"the model dict {result.prefix!r}, its prefix cut")
    if result.renamed:
        notes.append(f"{plural(result.renamed, 'tensor')} renamed")
    if result.cast:
        notes.append(f"{plural(len(result.cast), 'tensor')} cast to {result.dtype}")
    if result.stored_whole:
        notes.append(
            f"{plural(len(result.stored_whole), 'view')} of shared bytes stored whole, each its own "
            f"copy: {_names(result.stored_whole)}"
        )
    if result.ties_copied:
        copies = "tie stored as a copy" if len(result.ties_copied) == 1 else "ties stored as copies"
        shown = _names(result.ties_copied)
        notes.append(f"{len(result.ties_copied)} {copies} (the format records no sharing): {shown}")
    if result.extras_dropped:
        notes.append(f"{plural(result.extras_dropped, 'other value')} left out (--drop-extras)")
    return notes


def _human(result: ConvertResult) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    line = Text(f"{result.source} → ")
    line.append(result.output, style="bold")
    line.append(
        f" ({result.format}): {plural(result.tensors, 'tensor')}, {format_bytes(result.bytes)}"
        + (f", {plural(len(result.files), 'file')}" if len(result.files) > 1 else "")
    )
    return Group(line, *(Text(f"  {note}") for note in convert_notes(result)))


def convert_report(result: ConvertResult) -> Report:
    """The conversion as one row, its notes after it."""
    row = {
        "source": result.source,
        "output": result.output,
        "format": result.format,
        "tensors": result.tensors,
        "bytes": result.bytes,
        "files": len(result.files),
    }
    return Report(
        CONVERT_COLUMNS,
        [row],
        document=result.to_dict,
        human=lambda: _human(result),
        footer=convert_notes(result),
        footer_as_notes=True,
        name_key="output",
    )
