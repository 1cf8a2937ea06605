"""``paramctl list``: every named tensor of a checkpoint, or of a live module.

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
from typing import TYPE_CHECKING, Annotated

import typer

from paramctl.cli import options
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
from paramctl.render.engine import Environment, OutputFormat, emit
from paramctl.render.listing import emit_listing, how_read
from paramctl.select import Selection

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.live.model import ModelSource

ExtrasOpt = Annotated[
    bool, typer.Option("--extras", "-e", help="Also show non-tensor entries (epoch, hyper-parameters).")
]
FullOpt = Annotated[
    bool, typer.Option("--full", help="With --extras: long arrays (a vocabulary) in full, not summarized.")
]
TreeOpt = Annotated[bool, typer.Option("--tree", "-t", help="Group names by module path with subtotals.")]
SortOpt = Annotated[
    SortKey, typer.Option("--sort", "-s", help="file order, name, or largest first by size or numel.")
]
StatsOpt = Annotated[
    bool,
    typer.Option(
        "--stats", help="Add value statistics: mean, std, min, max, max|x|, L2 norm, zeros, NaN, Inf."
    ),
]
ByFileOpt = Annotated[
    bool, typer.Option("--by-file", help="Add the file holding each tensor (shards, rank files).")
]
ChunksOpt = Annotated[
    bool, typer.Option("--chunks", help="Also show where each piece of a split tensor lies (DCP rank files).")
]
GradsOpt = Annotated[
    bool, typer.Option("--grads", help="Gradients by a probe pass, as paramctl grads shows them.")
]


def list_command(
    path: options.PathArg = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    extras: ExtrasOpt = False,
    full: FullOpt = False,
    tree: TreeOpt = False,
    sort: SortOpt = "file",
    stats: StatsOpt = False,
    by_file: ByFileOpt = False,
    chunks: ChunksOpt = False,
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

    Reads metadata only (no tensor values, no torch import) unless --stats is given. With
    --model (or --trust for a full pickled module) it lists the live module instead:
    parameters and buffers by the module's own names, lazy ones until --input-shape
    materializes them.
    """
    env = Environment.current()
    live = options.live_request(model, model_arg, trust, key, input_shape, input_file, input_value)
    probe = ProbeRequest(grads, loss, eval_mode, seed)
    chosen = options.selection(match, regex, exclude)
    shown = _Shown(all_tensors, extras, stats, tree, sort, output_format)
    if lists_live(live, probe):
        _list_live(live.model_source(options.given_source(path)), live, probe, chosen, shown)
        return
    location = options.checkpoint_source(path)
    on_note = env.note if verbose else None
    checkpoint = open_or_trusted(lambda: read_checkpoint(location, on_note=on_note), location, trust=trust)
    if isinstance(checkpoint, TrustedPickle):
        _list_live(live.model_source(checkpoint.source), live, ProbeRequest(), chosen, shown)
        return
    listing = build_listing(
        checkpoint,
        chosen,
        key=key,
        all_tensors=all_tensors,
        sort=sort,
        extras=extras,
        by_file=by_file,
        chunks=chunks,
        full=full,
    )
    if stats:
        listing = _with_stats(listing, checkpoint, env)
    if verbose:
        env.note(how_read(checkpoint))
    emit_listing(listing, env.resolve(output_format), env, tree=tree)


@dataclass(frozen=True)
class _Shown:
    """How the listing is asked for: which tensors and columns, their order, the format."""

    all_tensors: bool
    extras: bool
    stats: bool
    tree: bool
    sort: SortKey
    output_format: OutputFormat | None


def _with_stats(listing: Listing, checkpoint: Checkpoint, env: Environment) -> Listing:
    # Loaded only for --stats, so a plain listing starts as fast as it can.
    from paramctl.render.progress import progress
    from paramctl.stats import with_stats, work_bytes

    entries = [row.entry for row in listing.rows]
    with progress(env, work_bytes(entries), "statistics") as on_progress:
        return with_stats(listing, checkpoint, on_progress=on_progress)


def _list_live(
    source: ModelSource, live: LiveRequest, probe: ProbeRequest, chosen: Selection, shown: _Shown
) -> None:
    from paramctl.cli.grads_cmd import show_grads
    from paramctl.live.model import live_listing
    from paramctl.render.live import announce_globals, live_listing_report, live_tree_rows
    from paramctl.render.tree import tree_report

    check_live_listing(
        probe,
        all_tensors=shown.all_tensors,
        extras=shown.extras,
        stats=shown.stats,
        tree=shown.tree,
        sort=shown.sort,
    )
    if probe.grads:
        show_grads(source, live.input_spec(), chosen, probe, shown.output_format)
        return
    env = Environment.current()
    on_globals = functools.partial(announce_globals, env)
    listing = live_listing(
        source, live.input_spec(), chosen, seed=probe.seed, sort=shown.sort, on_globals=on_globals
    )
    report = tree_report(live_tree_rows(listing)) if shown.tree else live_listing_report(listing)
    emit(report, env.resolve(shown.output_format), env)
