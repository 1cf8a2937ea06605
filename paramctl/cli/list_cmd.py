"""``paramctl list``: every named tensor of checkpoints, or of a live module.

>>> import os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2, 2), "b": torch.arange(2.0)}, path)
>>> print(CliRunner().invoke(app, ["list", path]).stdout, end="")
name    shape   dtype   numel   bytes   shared_with
w       [2, 2]  float32 4       16
b       [2]     float32 2       8
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from paramctl.cli import options
from paramctl.cli.several import per_file
from paramctl.errors import UsageError
from paramctl.formats import read_checkpoint
from paramctl.inspect.listing import Listing, SortKey, build_listing
from paramctl.live.routing import (
    LiveRequest,
    ProbeRequest,
    TrustedPickle,
    check_live_listing,
    lists_live,
    open_or_trusted,
)
from paramctl.render.engine import Environment, OutputFormat, Report
from paramctl.render.listing import ListingView, how_read, view_report
from paramctl.render.several import Output
from paramctl.select import Selection, check_listed

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.live.model import ModelSource


class PlotStat(str, Enum):
    """The statistics ``--plot`` draws."""

    std = "std"
    mean = "mean"
    norm = "norm"
    absmax = "absmax"
    zeros = "zeros"


ExtrasOpt = Annotated[
    bool, typer.Option("--extras", "-e", help="Also show non-tensor entries (epoch, hyper-parameters).")
]
TreeOpt = Annotated[
    bool, typer.Option("--tree", "-t", help="Group names by module path, with subtotals of stored bytes.")
]
FullOpt = Annotated[
    bool, typer.Option("--full", help="With --extras: long arrays (a vocabulary) in full, not summarized.")
]
ByFileOpt = Annotated[
    bool, typer.Option("--by-file", help="Add the file holding each tensor (shards, rank files).")
]
ChunksOpt = Annotated[
    bool, typer.Option("--chunks", help="Also show where each piece of a split tensor lies (DCP rank files).")
]
DepthOpt = Annotated[
    int | None,
    typer.Option("--depth", help="With --tree: show N levels below the root (implies --tree).", min=0),
]
SortOpt = Annotated[
    SortKey, typer.Option("--sort", "-s", help="file order, name, or largest first by size or numel.")
]
StatsOpt = Annotated[
    bool,
    typer.Option(
        "--stats", help="Add value statistics: mean, std, min, max, max|x|, L2 norm, zeros, NaN, Inf."
    ),
]
PlotOpt = Annotated[
    PlotStat | None,
    typer.Option(
        "--plot",
        help="Draw one statistic as a bar per tensor (per module with --tree); implies --stats.",
        show_default=False,
    ),
]
LogOpt = Annotated[bool, typer.Option("--log", help="Draw --plot's bars on a logarithmic scale.")]
GradsOpt = Annotated[
    bool, typer.Option("--grads", help="Gradients by a probe pass, as paramctl grads shows them.")
]


@dataclass(frozen=True)
class _Shown:
    """How the listing is asked for: which tensors and columns, the view, the format."""

    all_tensors: bool
    extras: bool
    stats: bool
    view: ListingView
    output_format: OutputFormat | None
    columns: list[str] | None = None
    key: str | None = None
    verbose: bool = False
    full: bool = False
    by_file: bool = False
    chunks: bool = False


def list_command(
    paths: options.PathsArg = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    extras: ExtrasOpt = False,
    full: FullOpt = False,
    by_file: ByFileOpt = False,
    chunks: ChunksOpt = False,
    tree: TreeOpt = False,
    depth: DepthOpt = None,
    sort: SortOpt = "file",
    stats: StatsOpt = False,
    plot: PlotOpt = None,
    log: LogOpt = False,
    columns: options.ColumnsOpt = None,
    output_format: options.FormatOpt = None,
    model: options.ModelOpt = None,
    model_arg: options.ModelArgOpt = None,
    trust: options.TrustOpt = False,
    input_shape: options.InputShapeOpt = None,
    input_file: options.InputFileOpt = None,
    input_value: options.InputValueOpt = None,
    grads: GradsOpt = False,
    loss: options.LossOpt = "sum",
    seed: options.ProbeSeedOpt = None,
    eval_mode: options.EvalOpt = False,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """List every named tensor: shape, dtype, elements, bytes, and what shares its storage.

    Reads metadata only (no values, no torch) unless --stats; several files give a block each.
    With --model (or --trust for a full pickled module) it lists the live module instead, by
    its own names, lazy parameters until --input-shape materializes them.
    """
    live = options.live_request(model, model_arg, trust, key, input_shape, input_file, input_value)
    probe = ProbeRequest(grads, loss, eval_mode, seed)
    view = ListingView(tree or depth is not None, depth, sort, plot.value if plot else None, log)
    keys, asked = options.column_keys(columns), {"full": full, "by_file": by_file, "chunks": chunks}
    shown = _Shown(
        all_tensors, extras, stats or plot is not None, view, output_format, keys, key, verbose, **asked
    )
    picks = (match, regex, exclude, names_from)
    if lists_live(live, probe):
        _list_live(paths, picks, live, probe, shown)
        return
    per_file(
        paths,
        _list_file,
        picks=picks,
        output_format=output_format,
        columns=columns,
        debug=debug,
        shown=shown,
        live=live,
    )


def _list_live(
    paths: list[str] | None,
    picks: tuple[list[str] | None, list[str] | None, list[str] | None, str | None],
    live: LiveRequest,
    probe: ProbeRequest,
    shown: _Shown,
) -> None:
    env = Environment.current()
    if paths and len(paths) > 1:
        raise UsageError("a live module loads one checkpoint: give one PATH with --model")
    match, regex, exclude, names_from = picks
    chosen = options.selection(match, regex, exclude, options.names_from(names_from, []))
    source = live.model_source(options.given_source(paths[0] if paths else None))
    output = Output(env.resolve(shown.output_format), env, several=False, columns=shown.columns)
    output.add(str(source.source), _live_report(source, live, probe, chosen, shown, env))


def _list_file(
    source: str, *, chosen: Selection, shown: _Shown, live: LiveRequest, output: Output, env: Environment
) -> None:
    on_note = env.note if shown.verbose else None
    checkpoint = open_or_trusted(lambda: read_checkpoint(source, on_note=on_note), source, trust=live.trust)
    if isinstance(checkpoint, TrustedPickle):
        model = live.model_source(checkpoint.source)
        output.add(source, _live_report(model, live, ProbeRequest(), chosen, shown, env))
        return
    from paramctl.checkpoint import model_view

    view = model_view(checkpoint, key=shown.key, all_tensors=shown.all_tensors)
    check_listed(chosen, [entry.name for entry in view.entries], checkpoint.label)
    listing = build_listing(
        checkpoint,
        chosen,
        key=shown.key,
        all_tensors=shown.all_tensors,
        sort=shown.view.sort,
        extras=shown.extras,
        full=shown.full,
        by_file=shown.by_file,
        chunks=shown.chunks,
    )
    if shown.stats:
        listing = _with_stats(listing, checkpoint, env)
    if shown.verbose:
        env.note(how_read(checkpoint))
    fmt = output.fmt
    if listing.prefix and fmt not in (OutputFormat.table, OutputFormat.json):
        env.note(f"showing {listing.prefix!r} with its prefix cut; --all shows every tensor")
    output.add(source, view_report(listing, shown.view, fmt))


def _with_stats(listing: Listing, checkpoint: Checkpoint, env: Environment) -> Listing:
    # Loaded only for --stats, so a plain listing starts as fast as it can.
    from paramctl.render.progress import progress
    from paramctl.stats import with_stats, work_bytes

    entries = [row.entry for row in listing.rows]
    with progress(env, work_bytes(entries), "statistics") as on_progress:
        return with_stats(listing, checkpoint, on_progress=on_progress)


def _live_report(
    source: ModelSource,
    live: LiveRequest,
    probe: ProbeRequest,
    chosen: Selection,
    shown: _Shown,
    env: Environment,
) -> Report:
    from paramctl.cli.grads_cmd import grads_of
    from paramctl.live.model import live_listing
    from paramctl.render.live import announce_globals, live_listing_report, live_tree

    view = shown.view
    check_live_listing(
        probe,
        all_tensors=shown.all_tensors,
        extras=shown.extras,
        stats=shown.stats,
        tree=view.tree,
        sort=view.sort,
    )
    if probe.grads:
        return grads_of(source, live.input_spec(), chosen, probe, env)
    on_globals = functools.partial(announce_globals, env)
    listing = live_listing(
        source, live.input_spec(), chosen, seed=probe.seed, sort=view.sort, on_globals=on_globals
    )
    return live_tree(listing, view.depth, view.sort) if view.tree else live_listing_report(listing)
