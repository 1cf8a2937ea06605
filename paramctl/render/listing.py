"""How ``paramctl list`` looks: a row per tensor, totals, where the names came from; the
tree of modules (``--tree``) and the bars of one statistic (``--plot``).

>>> import os, tempfile, torch
>>> from paramctl import read_checkpoint
>>> from paramctl.inspect.listing import build_listing
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.zeros(3, 4)}, path)
>>> listing_report(build_listing(read_checkpoint(path))).footer
['1 tensor, 12 elements, 48 B', 'by dtype: float32 1 (48 B)']
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from paramctl.checkpoint import Checkpoint
from paramctl.dtypes import DTYPES
from paramctl.errors import UsageError
from paramctl.inspect.listing import DTypeTotal, Listing, SortKey, Totals
from paramctl.render.columns import STAT_COLUMNS, TENSOR_COLUMNS, WITH_STATS_RANKS, ranked
from paramctl.render.engine import Column, OutputFormat, Report, as_text
from paramctl.units import format_bytes, plural

EXTRA_COLUMNS = [
    Column("name", "extra", style="bold", fold="name"),
    Column("value", "value", human=lambda value: "None" if value is None else as_text(value), fold="words"),
    Column("type", "type"),
]


FILE_COLUMN = Column("file", "file")
CHUNK_COLUMNS = [
    Column("name", "name", style="bold"),
    Column("file", "file"),
    Column("offsets", "offsets"),
    Column("sizes", "sizes"),
    Column("bytes", "bytes", "right"),
    Column("file_offset", "at", "right"),
]


def totals_footer(totals: Totals) -> list[str]:
    """The totals line (stored bytes too when sharing counts some twice) and the per-dtype line."""
    stored = format_bytes(totals.unique_bytes)
    lines = [
        f"{plural(totals.tensors, 'tensor')}, {plural(totals.numel, 'element')}, {format_bytes(totals.bytes)}"
        + (f" ({stored} stored, sharing counted once)" if totals.unique_bytes != totals.bytes else "")
    ]
    if totals.by_dtype:
        lines.append("by dtype: " + ", ".join(_dtype(name, t) for name, t in totals.by_dtype.items()))
    return lines


def _dtype(name: str, total: DTypeTotal) -> str:
    """A dtype's count and bytes, and its bits per weight where blocks make them uneven (Q4_K: 4.5)."""
    if not DTYPES[name].is_block_quantized:
        return f"{name} {total.tensors} ({format_bytes(total.bytes)})"
    return f"{name} {total.tensors} ({format_bytes(total.bytes)}, {total.bits_per_weight:.4g} bits/weight)"


def listing_footer(listing: Listing) -> list[str]:
    """Where the names came from (a model dict found or chosen), then the totals."""
    footer = totals_footer(listing.totals)
    if listing.shape_order:
        footer.append(f"shapes: {listing.shape_order}")
    if listing.prefix:
        origin = "found" if listing.prefix_detected else "chosen"
        others = ", ".join(k for k in listing.top_level_keys if k != listing.prefix) or "none"
        footer.insert(
            0, f"model dict {listing.prefix!r} ({origin}); other keys: {others}; --all shows every tensor"
        )
    return footer


def listing_report(listing: Listing) -> Report:
    """The report of ``paramctl list``: tensor rows, totals footer, where the names came from."""
    sections = []
    if listing.extras is not None:
        extras = [extra.to_dict() for extra in listing.extras]
        sections.append(Report(EXTRA_COLUMNS, extras, kind="extra", when_empty=""))
    if listing.chunks is not None:
        sections.append(Report(CHUNK_COLUMNS, listing.chunks, kind="chunk"))
    with_stats = any(row.stats is not None for row in listing.rows)
    by_file = [FILE_COLUMN] if any(row.file is not None for row in listing.rows) else []
    return Report(
        ranked(TENSOR_COLUMNS + by_file + STAT_COLUMNS, WITH_STATS_RANKS)
        if with_stats
        else TENSOR_COLUMNS + by_file,
        [row.to_dict() for row in listing.rows],
        document=listing.to_dict,
        title=f"{listing.source} ({listing.format})",
        footer=listing_footer(listing),
        sections=sections,
        rows_key="tensors",
        kind="tensor" if listing.extras is not None else None,
    )


@dataclass(frozen=True)
class ListingView:
    """How ``list`` shows a listing: rows or a tree (down to ``depth``), and a statistic
    drawn as bars (``plot``, on a ``log`` scale)."""

    tree: bool = False
    depth: int | None = None
    sort: SortKey = "file"
    plot: str | None = None
    log: bool = False

    def __post_init__(self) -> None:
        if self.log and self.plot is None:
            raise UsageError("--log draws the bars of --plot on a log scale: add --plot STAT")


def view_report(listing: Listing, view: ListingView, fmt: OutputFormat) -> Report:
    """The report of ``list`` as ``view`` asks; a plot is what a terminal's table becomes."""
    title = f"{listing.source} ({listing.format})"
    if not view.tree:
        report = listing_report(listing)
    else:
        from paramctl.inspect.tree import leaves_of, module_tree
        from paramctl.render.tree import tree_report

        root = module_tree(leaves_of(listing), view.sort)
        with_stats = any(row.stats is not None for row in listing.rows)
        report = tree_report(
            root, depth=view.depth, stats=with_stats, title=title, footer=listing_footer(listing)
        )
    if view.plot is None or fmt is not OutputFormat.table:
        return report
    from paramctl.render.plot import chart_rows

    if not view.tree:
        labels = [str(row["name"]) for row in report.rows]
        chart = chart_rows(labels, [row.stats for row in listing.rows], view.plot)
    else:
        from paramctl.render.tree import guides

        drawn = guides(root, view.depth)
        nodes = list(root.walk(view.depth))
        chart = chart_rows([drawn[n.path] for n in nodes], [n.stats for n in nodes], view.plot)
        chart.fold_labels = False
    chart.log = view.log
    chart.title = f"{title}: {view.plot} per {'module' if view.tree else 'tensor'}"
    return replace(report, human=lambda: chart, footer=[chart.legend(view.plot), *report.footer])


def how_read(checkpoint: Checkpoint) -> str:
    """``--verbose``'s account of the file."""
    tensors, storages = plural(len(checkpoint.entries), "tensor"), plural(len(checkpoint.storages), "storage")
    return f"{checkpoint.label}: {checkpoint.format}, {tensors} in {storages}"
