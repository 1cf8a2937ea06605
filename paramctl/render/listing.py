"""How ``paramctl list`` looks: a row per tensor, totals, where the names came from.

>>> import os, tempfile, torch
>>> from paramctl import read_checkpoint
>>> from paramctl.inspect.listing import build_listing
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.zeros(3, 4)}, path)
>>> listing_report(build_listing(read_checkpoint(path))).footer
['1 tensors, 12 elements, 48 B', 'by dtype: float32 1 (48 B)']
"""

from __future__ import annotations

from paramctl.checkpoint import Checkpoint
from paramctl.dtypes import DTYPES
from paramctl.inspect.listing import DTypeTotal, Listing
from paramctl.render.columns import STAT_COLUMNS, TENSOR_COLUMNS
from paramctl.render.engine import Column, Environment, OutputFormat, Report, as_text, emit
from paramctl.render.tree import tree_report
from paramctl.units import format_bytes

FILE_COLUMN = Column("file", "file")
CHUNK_COLUMNS = [
    Column("name", "name", style="bold"),
    Column("file", "file"),
    Column("offsets", "offsets"),
    Column("sizes", "sizes"),
    Column("bytes", "bytes", "right"),
    Column("file_offset", "at", "right"),
]
EXTRA_COLUMNS = [
    Column("name", "extra", style="bold"),
    Column("value", "value", human=lambda value: "None" if value is None else as_text(value)),
    Column("type", "type"),
]


def listing_report(listing: Listing) -> Report:
    """The report of ``paramctl list``: tensor rows, totals footer, where the names came from."""
    totals = listing.totals
    stored = format_bytes(totals.unique_bytes)
    footer = [
        f"{totals.tensors} tensors, {totals.numel:,} elements, {format_bytes(totals.bytes)}"
        + (f" ({stored} stored, sharing counted once)" if totals.unique_bytes != totals.bytes else "")
    ]
    if totals.by_dtype:
        parts = (f"{name} {t.tensors} ({_dtype_size(name, t)})" for name, t in totals.by_dtype.items())
        footer.append("by dtype: " + ", ".join(parts))
    if listing.shape_order:
        footer.append(f"shapes: {listing.shape_order}")
    if listing.prefix:
        origin = "found" if listing.prefix_detected else "chosen"
        others = ", ".join(k for k in listing.top_level_keys if k != listing.prefix) or "none"
        footer.insert(
            0, f"model dict {listing.prefix!r} ({origin}); other keys: {others}; --all shows every tensor"
        )
    sections = []
    if listing.extras is not None:
        sections.append(Report(EXTRA_COLUMNS, [extra.to_dict() for extra in listing.extras]))
    if listing.chunks is not None:
        sections.append(Report(CHUNK_COLUMNS, listing.chunks))
    with_stats = any(row.stats is not None for row in listing.rows)
    by_file = [FILE_COLUMN] if any(row.file is not None for row in listing.rows) else []
    return Report(
        TENSOR_COLUMNS + by_file + (STAT_COLUMNS if with_stats else []),
        [row.to_dict() for row in listing.rows],
        document=listing.to_dict,
        title=f"{listing.source} ({listing.format})",
        footer=footer,
        sections=sections,
    )


def _dtype_size(name: str, total: DTypeTotal) -> str:
    """A dtype's bytes, and its bits per weight where blocks make them uneven (Q4_K: 4.5)."""
    if not DTYPES[name].is_block_quantized:
        return format_bytes(total.bytes)
    return f"{format_bytes(total.bytes)}, {total.bits_per_weight:.4g} bits/weight"


def how_read(checkpoint: Checkpoint) -> str:
    """``--verbose``'s account of the file."""
    tensors, storages = len(checkpoint.entries), len(checkpoint.storages)
    return f"{checkpoint.label}: {checkpoint.format}, {tensors} tensors in {storages} storages"


def emit_listing(listing: Listing, fmt: OutputFormat, env: Environment, *, tree: bool = False) -> None:
    """The listing as rows, or as a tree of modules; a cut prefix is said where the footer is not."""
    if listing.prefix and fmt not in (OutputFormat.table, OutputFormat.json):
        env.note(f"showing {listing.prefix!r} with its prefix cut; --all shows every tensor")
    if tree:
        emit(tree_report([row.to_dict() for row in listing.rows]), fmt, env)
    else:
        emit(listing_report(listing), fmt, env)
