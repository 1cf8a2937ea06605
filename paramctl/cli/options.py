"""The options the commands share, each defined once, and what turns them into library
arguments (a :class:`~paramctl.select.Selection`, a checked checkpoint source).

>>> selection(["*.weight"], None, ["head.*"]).describe()
'--match *.weight --exclude head.*'
>>> from paramctl.formats import WRITABLE
>>> [member.value for member in WriteFormat] == list(WRITABLE)
True
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from paramctl.errors import UsageError
from paramctl.formats import STDIN, WRITABLE
from paramctl.live.routing import LiveRequest
from paramctl.render.engine import OutputFormat
from paramctl.select import Selection

# The formats --to offers come from the format registry; mypy cannot see members made at
# run time, and no format is named here.
WriteFormat = Enum("WriteFormat", {name: name for name in WRITABLE}, type=str)  # type: ignore[misc]

ToOpt = Annotated[
    WriteFormat | None,
    typer.Option(
        "--to", help="Output format [default: from -o's extension, else the input's].", show_default=False
    ),
]

# -- the checkpoint ---------------------------------------------------------------------------
PathArg = Annotated[
    str | None,
    typer.Argument(
        help="Checkpoint file; - or nothing reads standard input.", show_default=False, metavar="[PATH]"
    ),
]
PathsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Checkpoint files, one block of output each; - or nothing reads standard input.",
        show_default=False,
        metavar="[PATH]...",
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        "-k",
        help="Dotted path of the sub-dict to use (e.g. model.ema).",
        show_default=False,
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", "-a", help="Every tensor in the file, with full paths.")]

# -- selection ----------------------------------------------------------------------------------
MatchOpt = Annotated[
    list[str] | None,
    typer.Option("--match", "-m", help="Shell glob on the dotted name (repeatable).", show_default=False),
]
RegexOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--regex",
        "-r",
        help="Regular expression searched in the name (repeatable).",
        show_default=False,
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude", "-x", help="Shell glob of names to leave out (repeatable).", show_default=False
    ),
]
NamesFromOpt = Annotated[
    str | None,
    typer.Option(
        "--names-from",
        help="Select the names listed in FILE, one a line (- reads standard input).",
        show_default=False,
        metavar="FILE",
    ),
]

# -- output and diagnostics ----------------------------------------------------------------------
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format [default: table on a terminal, tsv in a pipe].",
        show_default=False,
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Show these columns, in this order, in every format (comma-separated keys, "
        "as the TSV header names them).",
        show_default=False,
        metavar="A,B,...",
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Say how the file was read.")]

# -- live modules ---------------------------------------------------------------------------------
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Build the model with this factory, 'package.module:name' or 'path/file.py:name'; "
        "a PATH given is loaded into it.",
        show_default=False,
        metavar="SPEC",
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg",
        help="key=value for the factory (repeatable; values read as Python literals).",
        show_default=False,
        metavar="KEY=VALUE",
    ),
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust",
        help="Load a full pickled module (torch.save(model)) although that runs its code; "
        "the globals it imports are printed first.",
    ),
]
InputShapeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        help="Input of torch.rand with this shape, e.g. 2,4 (repeatable: one per forward argument).",
        show_default=False,
        metavar="SHAPE",
    ),
]
InputFileOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        help="Input saved with torch.save: a tensor, a list of tensors, or a dict of keyword arguments.",
        show_default=False,
        metavar="FILE",
    ),
]
InputValueOpt = Annotated[
    float | None,
    typer.Option(
        "--input-value",
        help="Fill the --input-shape input with this value instead of random numbers.",
        show_default=False,
        metavar="X",
    ),
]

# -- the gradient probe ----------------------------------------------------------------------------
LossOpt = Annotated[
    str,
    typer.Option(
        "--loss",
        help="Reduce the output to one number: sum, mean, or 'file.py:fn' as fn(output).",
        metavar="sum|mean|SPEC",
    ),
]
ProbeSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Seed torch once before building the model, drawing the input and running it "
        "[default: a fresh seed, reported].",
        show_default=False,
        metavar="N",
    ),
]
EvalOpt = Annotated[
    bool, typer.Option("--eval", help="Probe in eval mode (dropout off, running statistics used).")
]


def selection(
    match: list[str] | None,
    regex: list[str] | None,
    exclude: list[str] | None,
    names: frozenset[str] | None = None,
) -> Selection:
    """``--match``, ``--regex``, ``--exclude`` (and the names of ``--names-from``) as one selection."""
    return Selection(
        match=tuple(match or ()), regex=tuple(regex or ()), exclude=tuple(exclude or ()), names=names
    )


def live_request(
    model: str | None,
    model_arg: list[str] | None,
    trust: bool,
    key: str | None,
    input_shape: list[str] | None = None,
    input_file: str | None = None,
    input_value: float | None = None,
) -> LiveRequest:
    """The live-module options as one request."""
    return LiveRequest(
        model, tuple(model_arg or ()), trust, key, tuple(input_shape or ()), input_file, input_value
    )


def checkpoint_source(path: str | None) -> str:
    """The path to read; ``-`` or none means standard input, which must not be a terminal."""
    source = STDIN if path is None else path
    if source == STDIN and _stdin_isatty():
        raise UsageError("no checkpoint given: pass a path, or pipe one into standard input")
    return source


def checkpoint_sources(paths: list[str] | None) -> list[str]:
    """The paths to read, in order; none means standard input, which only one may be."""
    given: list[str | None] = list(paths) if paths else [None]
    sources = [checkpoint_source(path) for path in given]
    if sources.count(STDIN) > 1:
        raise UsageError("standard input (-) can be read once: give it as one PATH")
    return sources


def names_from(path: str | None, sources: list[str]) -> frozenset[str] | None:
    """The names ``--names-from`` lists (``-`` is standard input, unless a checkpoint comes
    from there)."""
    from paramctl.select import read_name_file

    return read_name_file(path, stdin_taken=STDIN in sources) if path else None


def column_keys(text: str | None) -> list[str] | None:
    """``--columns a,b,c`` as keys (spaces around them ignored).

    >>> column_keys("name, shape,mean")
    ['name', 'shape', 'mean']
    """
    if text is None:
        return None
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise UsageError("--columns: give one or more column keys, e.g. name,shape,mean")
    return keys


def given_source(path: str | None) -> str | None:
    """:func:`checkpoint_source` of a PATH that may be left out (a live module needs none)."""
    return None if path is None else checkpoint_source(path)


def _stdin_isatty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False
