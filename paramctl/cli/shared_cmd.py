"""``paramctl shared``: the names that share storage, and with --by-value equal bytes.

>>> import os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> tied = torch.ones(2, 2)
>>> torch.save({"w": tied, "head": tied, "b": torch.arange(2.0)}, path)
>>> print(CliRunner().invoke(app, ["shared", path, "-f", "csv"]).stdout, end="")
group,relation,name,shape,dtype,bytes,storage,start,end,view
1,alias,w,"[2, 2]",float32,16,0,0,16,1
1,alias,head,"[2, 2]",float32,16,0,0,16,1
"""

from __future__ import annotations

from typing import Annotated

import typer

from paramctl.cli import options
from paramctl.formats import read_checkpoint
from paramctl.render.engine import Environment, emit

ByValueOpt = Annotated[
    bool,
    typer.Option(
        "--by-value",
        help="Also find tensors stored apart with equal bytes (same dtype and shape), by hashing them.",
    ),
]


def shared_command(
    path: options.PathArg = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    by_value: ByValueOpt = False,
    output_format: options.FormatOpt = None,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Group names that share storage: aliases, overlapping views, disjoint views of one storage.

    Reads the file's own storage identity and byte ranges; values only with --by-value.

    Exits 0 whether or not anything is shared.
    """
    from paramctl.checkpoint import model_view
    from paramctl.inspect.sharing import find_shared, value_work
    from paramctl.render.progress import progress
    from paramctl.render.shared import shared_report

    env = Environment.current()
    checkpoint = read_checkpoint(options.checkpoint_source(path), on_note=env.note if verbose else None)
    chosen = options.selection(match, regex, exclude)
    total = 0
    if by_value:
        total = value_work(checkpoint, model_view(checkpoint, key=key, all_tensors=all_tensors).entries)
    with progress(env, total, "hashing") as on_progress:
        report = find_shared(
            checkpoint, chosen, key=key, all_tensors=all_tensors, by_value=by_value, on_progress=on_progress
        )
    emit(shared_report(report), env.resolve(output_format), env)
