"""Commands over several files: each file answered in turn, one exit code for all.

A file that fails (missing, not a checkpoint, unsafe) is reported in one line and the
others still run; the exit code is the worst of them (the highest). With one file,
errors go to the command line's one error path, as ever.

>>> import io
>>> from paramctl.render.engine import Environment, OutputFormat
>>> from paramctl.errors import CheckpointIOError, ExitCode
>>> from paramctl.render.several import Output
>>> env = Environment(io.StringIO(), io.StringIO(), stdout_isatty=False, stderr_isatty=False)
>>> def answer(source):
...     if source == "b.pt":
...         raise CheckpointIOError("b.pt: No such file or directory")
...     return ExitCode.NEGATIVE
>>> worst_of(["a.pt", "b.pt"], answer, Output(OutputFormat.tsv, env, several=True))
<ExitCode.IO: 5>
>>> env.stderr.getvalue()
'paramctl: error: b.pt: No such file or directory\\n'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer

from paramctl.cli import options
from paramctl.errors import ExitCode, ParamctlError
from paramctl.render.engine import Environment, OutputFormat
from paramctl.render.several import Output

Source = TypeVar("Source", str, "str | None")


def worst_of(
    sources: Sequence[Source],
    answer: Callable[[Source], ExitCode | None],
    output: Output,
    *,
    debug: bool = False,
) -> ExitCode:
    """Run ``answer`` on each source; the worst exit code of all. One file's error is
    reported and the next file read (with one file, or ``debug``, it is raised)."""
    worst = ExitCode.OK
    for source in sources:
        try:
            code = answer(source) or ExitCode.OK
        except ParamctlError as exc:
            if not output.several or debug:
                raise
            output.failed(str(source), exc)
            code = exc.exit_code
        worst = max(worst, code)
    output.finish()
    return worst


def each_file(
    sources: Sequence[Source],
    answer: Callable[[Source], ExitCode | None],
    output: Output,
    *,
    debug: bool = False,
) -> None:
    """:func:`worst_of`, exiting with that code unless it is 0."""
    worst = worst_of(sources, answer, output, debug=debug)
    if worst != ExitCode.OK:
        raise typer.Exit(worst)


def per_file(
    paths: list[str] | None,
    run: Callable[..., ExitCode | None],
    *,
    picks: tuple[list[str] | None, list[str] | None, list[str] | None, str | None],
    output_format: OutputFormat | None,
    columns: str | None,
    debug: bool,
    **settings: Any,
) -> None:
    """The frame of a command over several checkpoints: the sources, the selection
    (``picks``: --match, --regex, --exclude, --names-from), one output, then ``run`` for each
    file with ``chosen``, ``output``, ``env`` and ``settings``; exits with the worst code."""
    env = Environment.current()
    sources = options.checkpoint_sources(paths)
    match, regex, exclude, names_from = picks
    chosen = options.selection(match, regex, exclude, options.names_from(names_from, sources))
    keys = options.column_keys(columns)
    output = Output(env.resolve(output_format), env, several=len(sources) > 1, columns=keys)
    answer = functools.partial(run, chosen=chosen, output=output, env=env, **settings)
    each_file(sources, answer, output, debug=debug)
