"""The ``paramctl`` command line: parse, call the library, render.

Each command is short: it turns options into library arguments, calls one library
function, and hands the data to :mod:`paramctl.render`. Library errors become one line on
stderr and the exit code their class names; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, TypeVar

import typer

from . import __version__
from .checkpoint import Checkpoint, model_view
from .errors import ExitCode, ParamctlError, UsageError
from .formats import STDIN, read_checkpoint
from .listing import Listing, SortKey, build_listing
from .render import Environment, OutputFormat, emit, listing_report, tree_view
from .render_inspect import emit_check, emit_shared, emit_tensor, progress
from .select import Selection

app = typer.Typer(
    name="paramctl",
    help="Inspect and reinitialize neural-network checkpoints (PyTorch .pt/.pth/.bin/.ckpt, "
    "safetensors) without loading them whole.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# -- options shared by commands -----------------------------------------------------------
PathArg = Annotated[
    str,
    typer.Argument(
        help="Checkpoint file; - or nothing reads standard input.", show_default=False, metavar="[PATH]"
    ),
]
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
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        help="Output format \\[default: table on a terminal, tsv in a pipe].",
        show_default=False,
    ),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Say how the file was read.")]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn library errors into one line on stderr and the exit code their class names."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ParamctlError as exc:
            if kwargs.get("debug"):
                raise
            _fail(str(exc), exc.exit_code)
        except BrokenPipeError:
            # The reader (head, grep -m1) has what it wanted; stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(ExitCode.OK) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if kwargs.get("debug"):
                raise
            _fail(
                f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)",
                ExitCode.NEGATIVE,
            )

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int) -> None:
    Environment.current().err_console().print(f"paramctl: error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def checkpoint_source(path: str) -> str:
    """The path to read; ``-`` (the default) means standard input, which must not be a terminal."""
    if path == STDIN and _stdin_isatty():
        raise UsageError("no checkpoint given: pass a path, or pipe one into standard input")
    return path


def _stdin_isatty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _selection(match: list[str] | None, regex: list[str] | None, exclude: list[str] | None) -> Selection:
    return Selection(match=tuple(match or ()), regex=tuple(regex or ()), exclude=tuple(exclude or ()))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paramctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Inspect and reinitialize neural-network checkpoints."""


@app.command("list")
@reports_errors
def list_command(
    path: PathArg = STDIN,
    match: MatchOpt = None,
    regex: RegexOpt = None,
    exclude: ExcludeOpt = None,
    key: KeyOpt = None,
    all_tensors: AllOpt = False,
    extras: Annotated[
        bool,
        typer.Option("--extras", "-e", help="Also show non-tensor entries (epoch, hyper-parameters)."),
    ] = False,
    tree: Annotated[
        bool, typer.Option("--tree", "-t", help="Group names by module path with subtotals.")
    ] = False,
    sort: Annotated[
        SortKey,
        typer.Option("--sort", "-s", help="file order, name, or largest first by size or numel."),
    ] = "file",
    stats: Annotated[
        bool,
        typer.Option(
            "--stats", help="Add value statistics: mean, std, min, max, max|x|, L2 norm, zeros, NaN, Inf."
        ),
    ] = False,
    output_format: FormatOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List every named tensor: shape, dtype, elements, bytes, and what shares its storage.

    Reads metadata only (no tensor values, no torch import) unless --stats is given.
    """
    env = Environment.current()
    checkpoint = read_checkpoint(checkpoint_source(path), on_note=env.note if verbose else None)
    listing = build_listing(
        checkpoint,
        _selection(match, regex, exclude),
        key=key,
        all_tensors=all_tensors,
        sort=sort,
        extras=extras,
    )
    if stats:
        listing = _with_stats(listing, checkpoint, env)
    fmt = env.resolve(output_format)
    if verbose:
        tensors, storages = len(checkpoint.entries), len(checkpoint.storages)
        env.note(f"{checkpoint.label}: {checkpoint.format}, {tensors} tensors in {storages} storages")
    if listing.prefix and fmt not in (OutputFormat.table, OutputFormat.json):
        env.note(f"showing {listing.prefix!r} with its prefix cut; --all shows every tensor")
    if tree:
        tree_view([row.to_dict() for row in listing.rows], env, fmt)
        return
    emit(listing_report(listing), fmt, env)


# -- shared, show, check, and list --stats ------------------------------------------------


# The modules behind these commands load when a command needs them, so `list` without
# --stats starts as fast as it can.


def _with_stats(listing: Listing, checkpoint: Checkpoint, env: Environment) -> Listing:
    from .stats import with_stats, work_bytes

    entries = [row.entry for row in listing.rows]
    with progress(env, work_bytes(entries), "statistics") as on_progress:
        return with_stats(listing, checkpoint, on_progress=on_progress)


@app.command("shared")
@reports_errors
def shared_command(
    path: PathArg = STDIN,
    match: MatchOpt = None,
    regex: RegexOpt = None,
    exclude: ExcludeOpt = None,
    key: KeyOpt = None,
    all_tensors: AllOpt = False,
    by_value: Annotated[
        bool,
        typer.Option(
            "--by-value",
            help="Also find tensors stored apart with equal bytes (same dtype and shape), by hashing them.",
        ),
    ] = False,
    output_format: FormatOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Group names that share storage: aliases, overlapping views, disjoint views of one storage.

    Reads the file's own storage identity and byte ranges; values only with --by-value.

    Exits 0 whether or not anything is shared.
    """
    from .sharing import find_shared, value_work

    env = Environment.current()
    checkpoint = read_checkpoint(checkpoint_source(path), on_note=env.note if verbose else None)
    selection = _selection(match, regex, exclude)
    total = 0
    if by_value:
        total = value_work(checkpoint, model_view(checkpoint, key=key, all_tensors=all_tensors).entries)
    with progress(env, total, "hashing") as on_progress:
        report = find_shared(
            checkpoint,
            selection,
            key=key,
            all_tensors=all_tensors,
            by_value=by_value,
            on_progress=on_progress,
        )
    emit_shared(report, env.resolve(output_format), env)


class ShowFormat(str, Enum):
    """What show writes: a page for people, or the data as JSON."""

    text = "text"
    json = "json"


@app.command("show")
@reports_errors
def show_command(
    path: Annotated[
        str,
        typer.Argument(help="Checkpoint file; - reads standard input.", show_default=False, metavar="PATH"),
    ],
    name: Annotated[
        str, typer.Argument(help="The tensor's name, as list shows it.", show_default=False, metavar="NAME")
    ],
    index: Annotated[
        str | None,
        typer.Option(
            "--slice",
            help="Show part of the tensor, in Python's indexing syntax: '0,:5', '...,-1', '::2'.",
            show_default=False,
        ),
    ] = None,
    precision: Annotated[int, typer.Option("--precision", "-p", help="Digits after the point.")] = 4,
    full: Annotated[bool, typer.Option("--full", help="Print every value, not the edges.")] = False,
    bins: Annotated[int, typer.Option("--bins", help="Histogram bins.")] = 20,
    key: KeyOpt = None,
    all_tensors: AllOpt = False,
    output_format: Annotated[
        ShowFormat,
        typer.Option("--format", "-f", help="text for people, json with statistics and histogram bins."),
    ] = ShowFormat.text,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Print one tensor: metadata, statistics, torch's preview of the values, and a histogram."""
    from .show import show_tensor

    env = Environment.current()
    checkpoint = read_checkpoint(checkpoint_source(path), on_note=env.note if verbose else None)
    width = env.console().width if env.stdout_isatty else 80
    report = show_tensor(
        checkpoint,
        name,
        key=key,
        all_tensors=all_tensors,
        index=index,
        bins=bins,
        precision=precision,
        full=full,
        linewidth=width,
    )
    emit_tensor(report, OutputFormat.json if output_format is ShowFormat.json else OutputFormat.table, env)


@app.command("check")
@reports_errors
def check_command(
    path: PathArg = STDIN,
    match: MatchOpt = None,
    regex: RegexOpt = None,
    exclude: ExcludeOpt = None,
    key: KeyOpt = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
    values: Annotated[
        bool,
        typer.Option("--values/--no-values", help="Scan tensor values for NaN, Inf and constant matrices."),
    ] = True,
    output_format: FormatOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Verify a checkpoint: zip CRCs, safetensors layout, readable metadata, NaN/Inf, constant weights.

    One line per finding. Exits 1 when an error is found (or a warning, with --strict).
    """
    from .check import check_checkpoint

    env = Environment.current()
    source = checkpoint_source(path)
    size = 0 if source == STDIN else _file_size(source)
    with progress(env, size * (2 if values else 1), "checking") as on_progress:
        result = check_checkpoint(
            source,
            selection=_selection(match, regex, exclude),
            key=key,
            values=values,
            on_progress=on_progress,
            on_note=env.note if verbose else None,
        )
    emit_check(result, env.resolve(output_format), env, strict)
    if not result.passed(strict):
        raise typer.Exit(ExitCode.NEGATIVE)


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
