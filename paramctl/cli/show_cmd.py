"""``paramctl show``: one tensor's metadata, statistics, values and histogram.

>>> import os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2, 2), "b": torch.arange(2.0)}, path)
>>> import json
>>> shown = json.loads(CliRunner().invoke(app, ["show", path, "b", "-f", "json"]).stdout)
>>> shown["stats"]["mean"], shown["stats"]["max"]
(0.5, 1.0)
"""

from __future__ import annotations

import functools
import os
from enum import Enum
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from paramctl.cli import options
from paramctl.cli.several import each_file
from paramctl.formats import read_checkpoint
from paramctl.render.engine import Environment, OutputFormat
from paramctl.render.several import Output


class ShowFormat(str, Enum):
    """What show writes: a page for people, or the data as JSON."""

    text = "text"
    json = "json"


class ShowUsage(TyperCommand):
    """``show``'s usage line names its arguments as a person reads them: ``PATH... NAME``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.options_metavar or "[OPTIONS]", "PATH...", "NAME"]


def complete_name(ctx: Any, incomplete: str) -> list[str]:
    """Shell completion after ``show PATH``: the names of the checkpoint already given (none
    when no such file is on the line, so the shell completes file names instead)."""
    from paramctl.checkpoint import model_view
    from paramctl.errors import ParamctlError

    given = [*(ctx.params.get("paths") or ()), ctx.params.get("name") or ""]
    for path in given:
        if path and os.path.isfile(path):
            try:
                checkpoint = read_checkpoint(path)
            except ParamctlError:
                return []
            view = model_view(
                checkpoint, key=ctx.params.get("key"), all_tensors=bool(ctx.params.get("all_tensors"))
            )
            return [entry.name for entry in view.entries if entry.name.startswith(incomplete)]
    return []


PathsArg = Annotated[
    list[str],
    typer.Argument(
        help="Checkpoint files (the tensor is shown from each); - reads standard input.",
        show_default=False,
        metavar="PATH...",
        autocompletion=complete_name,
    ),
]
NameArg = Annotated[
    str,
    typer.Argument(
        help="The tensor's name, as list shows it.",
        show_default=False,
        metavar="NAME",
        autocompletion=complete_name,
    ),
]
SliceOpt = Annotated[
    str | None,
    typer.Option(
        "--slice",
        help="Show part of the tensor, in Python's indexing syntax: '0,:5', '...,-1', '::2'.",
        show_default=False,
    ),
]
PrecisionOpt = Annotated[int, typer.Option("--precision", "-p", help="Digits after the point.")]
FullOpt = Annotated[bool, typer.Option("--full", help="Print every value, not the edges.")]
BinsOpt = Annotated[
    int | None,
    typer.Option(
        "--bins", help="Histogram bins [default: 20; on a short terminal, fewer].", show_default=False
    ),
]
ShowFormatOpt = Annotated[
    ShowFormat,
    typer.Option("--format", "-f", help="text for people, json with statistics and histogram bins."),
]


def show_command(
    paths: PathsArg,
    name: NameArg,
    index: SliceOpt = None,
    precision: PrecisionOpt = 4,
    full: FullOpt = False,
    bins: BinsOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    output_format: ShowFormatOpt = ShowFormat.text,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Print one tensor: metadata, statistics, torch's preview of the values, and a histogram.

    With several files, the tensor of that name in each.
    """
    env = Environment.current()
    sources = options.checkpoint_sources(paths)
    fmt = OutputFormat.json if output_format is ShowFormat.json else OutputFormat.table
    output = Output(fmt, env, several=len(sources) > 1)
    settings = {"key": key, "all_tensors": all_tensors, "index": index, "bins": bins}
    settings.update(precision=precision, full=full)
    run = functools.partial(_show_file, name=name, settings=settings, verbose=verbose, output=output, env=env)
    each_file(sources, run, output, debug=debug)


def _show_file(
    source: str, *, name: str, settings: dict[str, Any], verbose: bool, output: Output, env: Environment
) -> None:
    from paramctl.inspect.show import show_tensor
    from paramctl.render.show import DEFAULT_BINS, page_bins, preview_lines, tensor_report

    checkpoint = read_checkpoint(source, on_note=env.note if verbose else None)
    # A page on a terminal fits its screen; JSON and pipes get the data as asked.
    console = env.console()
    page = env.stdout_isatty and output.fmt is OutputFormat.table
    bins = page_bins(console.height, settings["bins"]) if page else settings["bins"] or DEFAULT_BINS
    report = show_tensor(
        checkpoint,
        name,
        linewidth=console.width if page else 80,
        max_lines=preview_lines(console.height, bins) if page else None,
        **{**settings, "bins": bins},
    )
    output.add(source, tensor_report(report))
