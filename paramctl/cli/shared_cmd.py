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
from paramctl.cli.several import per_file
from paramctl.formats import read_checkpoint
from paramctl.render.engine import Environment
from paramctl.render.several import Output
from paramctl.select import Selection, check_listed

ByValueOpt = Annotated[
    bool,
    typer.Option(
        "--by-value",
        help="Also find tensors stored apart with equal bytes (same dtype and shape), by hashing them.",
    ),
]


def shared_command(
    paths: options.PathsArg = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    by_value: ByValueOpt = False,
    columns: options.ColumnsOpt = None,
    output_format: options.FormatOpt = None,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Group names that share storage: aliases, overlapping views, disjoint views of one storage.

    Reads the file's own storage identity and byte ranges; values only with --by-value.
    Several files give one block each.

    Exits 0 whether or not anything is shared.
    """
    per_file(
        paths,
        _shared_file,
        picks=(match, regex, exclude, names_from),
        output_format=output_format,
        columns=columns,
        debug=debug,
        key=key,
        all_tensors=all_tensors,
        by_value=by_value,
        verbose=verbose,
    )


def _shared_file(
    source: str,
    *,
    chosen: Selection,
    key: str | None,
    all_tensors: bool,
    by_value: bool,
    verbose: bool,
    output: Output,
    env: Environment,
) -> None:
    from paramctl.checkpoint import model_view
    from paramctl.inspect.sharing import find_shared, value_work
    from paramctl.render.progress import progress
    from paramctl.render.shared import shared_report

    checkpoint = read_checkpoint(source, on_note=env.note if verbose else None)
    view = model_view(checkpoint, key=key, all_tensors=all_tensors)
    check_listed(chosen, [entry.name for entry in view.entries], checkpoint.label)
    total = value_work(checkpoint, view.entries) if by_value else 0
    with progress(env, total, "hashing") as on_progress:
        report = find_shared(
            checkpoint, chosen, key=key, all_tensors=all_tensors, by_value=by_value, on_progress=on_progress
        )
    output.add(source, shared_report(report))
