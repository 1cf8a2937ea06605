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

from enum import Enum
from typing import Annotated

import typer

from paramctl.cli import options
from paramctl.formats import read_checkpoint
from paramctl.render.engine import Environment, OutputFormat, emit


class ShowFormat(str, Enum):
    """What show writes: a page for people, or the data as JSON."""

    text = "text"
    json = "json"


RequiredPathArg = Annotated[
    str, typer.Argument(help="Checkpoint file; - reads standard input.", show_default=False, metavar="PATH")
]
NameArg = Annotated[
    str, typer.Argument(help="The tensor's name, as list shows it.", show_default=False, metavar="NAME")
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
BinsOpt = Annotated[int, typer.Option("--bins", help="Histogram bins.")]
ShowFormatOpt = Annotated[
    ShowFormat,
    typer.Option("--format", "-f", help="text for people, json with statistics and histogram bins."),
]


def show_command(
    path: RequiredPathArg,
    name: NameArg,
    index: SliceOpt = None,
    precision: PrecisionOpt = 4,
    full: FullOpt = False,
    bins: BinsOpt = 20,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    output_format: ShowFormatOpt = ShowFormat.text,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Print one tensor: metadata, statistics, torch's preview of the values, and a histogram."""
    from paramctl.inspect.show import show_tensor
    from paramctl.render.show import tensor_report

    env = Environment.current()
    checkpoint = read_checkpoint(options.checkpoint_source(path), on_note=env.note if verbose else None)
    report = show_tensor(
        checkpoint,
        name,
        key=key,
        all_tensors=all_tensors,
        index=index,
        bins=bins,
        precision=precision,
        full=full,
        linewidth=env.console().width if env.stdout_isatty else 80,
    )
    fmt = OutputFormat.json if output_format is ShowFormat.json else OutputFormat.table
    emit(tensor_report(report), fmt, env)
