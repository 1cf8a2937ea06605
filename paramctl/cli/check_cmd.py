"""``paramctl check``: verify checkpoints for scripts and CI.

>>> import json, os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2, 2), "b": torch.arange(2.0)}, path)
>>> result = CliRunner().invoke(app, ["check", path, "--strict", "-f", "json"])
>>> result.exit_code, [finding["message"] for finding in json.loads(result.stdout)["findings"]]
(<ExitCode.NEGATIVE: 1>, ['all 4 values are 1.0'])
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from paramctl.cli import options
from paramctl.cli.several import per_file
from paramctl.errors import ExitCode
from paramctl.formats import STDIN
from paramctl.render.engine import Environment
from paramctl.render.several import Output
from paramctl.select import Selection

StrictOpt = Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")]
ValuesOpt = Annotated[
    bool,
    typer.Option("--values/--no-values", help="Scan tensor values for NaN, Inf and constant matrices."),
]


def check_command(
    paths: options.PathsArg = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    key: options.KeyOpt = None,
    strict: StrictOpt = False,
    values: ValuesOpt = True,
    columns: options.ColumnsOpt = None,
    output_format: options.FormatOpt = None,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Verify checkpoints: zip CRCs, safetensors layout, readable metadata, NaN/Inf, constant weights.

    One line per finding. Exits 1 when an error is found (or a warning, with --strict);
    with several files, the worst exit code of them all.
    """
    per_file(
        paths,
        _check_file,
        picks=(match, regex, exclude, names_from),
        output_format=output_format,
        columns=columns,
        debug=debug,
        key=key,
        strict=strict,
        values=values,
        verbose=verbose,
    )


def _check_file(
    source: str,
    *,
    chosen: Selection,
    key: str | None,
    strict: bool,
    values: bool,
    verbose: bool,
    output: Output,
    env: Environment,
) -> ExitCode:
    from paramctl.inspect.check import check_checkpoint
    from paramctl.render.check import check_report
    from paramctl.render.progress import progress

    size = 0 if source == STDIN else _file_size(source)
    with progress(env, size * (2 if values else 1), "checking") as on_progress:
        result = check_checkpoint(
            source,
            selection=chosen,
            key=key,
            values=values,
            on_progress=on_progress,
            on_note=env.note if verbose else None,
        )
    output.add(source, check_report(result, output.fmt, strict))
    return ExitCode.OK if result.passed(strict) else ExitCode.NEGATIVE


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
