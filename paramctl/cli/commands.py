"""The ``paramctl`` command line: parse, call the library, render.

Each command is short: it turns options into library arguments, calls one library
function, and hands the data to :mod:`paramctl.render.engine`. Library errors become one line on
stderr and the exit code their class names; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from paramctl import __version__
from paramctl.checkpoint import Checkpoint, model_view
from paramctl.errors import (
    CheckpointIOError,
    ExitCode,
    NothingSelected,
    ParamctlError,
    UnsafePickle,
    UsageError,
)
from paramctl.formats import STDIN, read_checkpoint
from paramctl.inspect.listing import Listing, SortKey, build_listing
from paramctl.render.engine import (
    Environment,
    OutputFormat,
    emit,
    init_report,
    listing_report,
    plan_report,
    tree_view,
)
from paramctl.select import Selection, read_names, unknown_names

if TYPE_CHECKING:
    from paramctl.live.model import InputSpec, ModelSource

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
        help="Output format [default: table on a terminal, tsv in a pipe].",
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
    ctx: typer.Context,
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
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    trust: TrustOpt = False,
    input_shape: InputShapeOpt = None,
    input_file: InputFileOpt = None,
    input_value: InputValueOpt = None,
    grads: Annotated[
        bool, typer.Option("--grads", help="Gradients by a probe pass, as paramctl grads shows them.")
    ] = False,
    loss: LossOpt = "sum",
    seed: SeedOpt = None,
    eval_mode: EvalOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List every named tensor: shape, dtype, elements, bytes, and what shares its storage.

    Reads metadata only (no tensor values, no torch import) unless --stats is given. With
    --model (or --trust for a full pickled module) it lists the live module instead:
    parameters and buffers by the module's own names, lazy ones until --input-shape
    materializes them.
    """
    env = Environment.current()
    # Any option of live models means a live listing; --trust alone only matters for a
    # full pickle, which the plain reader refuses (handled below).
    live = model is not None or grads or bool(input_shape or model_arg) or eval_mode or loss != "sum"
    live = live or input_file is not None or input_value is not None or seed is not None
    if live:
        given = None if ctx.get_parameter_source("path").name == "DEFAULT" else path  # type: ignore[union-attr]
        options = _LiveListOptions(all_tensors, extras, grads, loss, eval_mode, seed, stats)
        _list_live(
            _model_source(given, model, model_arg, trust, key),
            _input_spec(input_shape, input_file, input_value),
            _selection(match, regex, exclude),
            options,
            tree=tree,
            sort=sort,
            output_format=output_format,
        )
        return
    try:
        checkpoint = read_checkpoint(checkpoint_source(path), on_note=env.note if verbose else None)
    except UnsafePickle:
        if not trust:
            from paramctl.live.trust import refusal_for

            raise refusal_for(path) from None
        _list_live(
            _model_source(path, None, model_arg, trust, key),
            _input_spec(None, None),
            _selection(match, regex, exclude),
            _LiveListOptions(all_tensors, extras, stats=stats),
            tree=tree,
            sort=sort,
            output_format=output_format,
        )
        return
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
    from paramctl.render.inspect import progress
    from paramctl.stats import with_stats, work_bytes

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
    from paramctl.inspect.sharing import find_shared, value_work
    from paramctl.render.inspect import emit_shared, progress

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
    from paramctl.inspect.show import show_tensor
    from paramctl.render.inspect import emit_tensor

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
    from paramctl.inspect.check import check_checkpoint
    from paramctl.render.inspect import emit_check, progress

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


# -- live models: list --model, grads -----------------------------------------------------
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
LossOpt = Annotated[
    str,
    typer.Option(
        "--loss",
        help="Reduce the output to one number: sum, mean, or 'file.py:fn' as fn(output).",
        metavar="sum|mean|SPEC",
    ),
]
SeedOpt = Annotated[
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


def _model_source(
    path: str | None, model: str | None, model_arg: list[str] | None, trust: bool, key: str | None
) -> ModelSource:
    from paramctl.live.model import ModelSource
    from paramctl.usercode import parse_assignments

    return ModelSource(
        source=checkpoint_source(path) if path is not None else None,
        model=model,
        model_args=parse_assignments(model_arg or (), option="--model-arg"),
        trust=trust,
        key=key,
    )


def _input_spec(
    input_shape: list[str] | None, input_file: str | None, input_value: float | None = None
) -> InputSpec:
    from paramctl.live.model import InputSpec, parse_shape

    return InputSpec(tuple(parse_shape(text) for text in input_shape or ()), input_file, input_value)


def _announce_globals(names: list[str]) -> None:
    """What a trusted load imports, on stderr, before it runs: the safety notice of --trust."""
    console = Environment.current().err_console()
    console.print(
        f"paramctl: --trust: loading runs code from {len(names)} globals:", markup=False, soft_wrap=True
    )
    for name in names:
        console.print(f"  {name}", markup=False, highlight=False, soft_wrap=True)


def _show_grads(
    source: ModelSource,
    inputs: InputSpec,
    selection: Selection,
    *,
    loss: str,
    seed: int | None,
    eval_mode: bool,
    output_format: OutputFormat | None,
) -> None:
    from paramctl.change import draw_seed
    from paramctl.live.probe import probe_model
    from paramctl.render.engine import grads_report

    env = Environment.current()
    probe = probe_model(
        source,
        inputs,
        loss=loss,
        seed=draw_seed() if seed is None else seed,
        mode="eval" if eval_mode else None,
        selection=selection,
        on_globals=_announce_globals,
    )
    emit(grads_report(probe), env.resolve(output_format), env)


@app.command("grads")
@reports_errors
def grads_command(
    path: Annotated[
        str | None,
        typer.Argument(
            help="Checkpoint to load into --model, or a full pickled module (with --trust); "
            "- reads standard input.",
            show_default=False,
            metavar="[PATH]",
        ),
    ] = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    trust: TrustOpt = False,
    key: KeyOpt = None,
    input_shape: InputShapeOpt = None,
    input_file: InputFileOpt = None,
    input_value: InputValueOpt = None,
    loss: LossOpt = "sum",
    seed: SeedOpt = None,
    eval_mode: EvalOpt = False,
    match: MatchOpt = None,
    regex: RegexOpt = None,
    exclude: ExcludeOpt = None,
    output_format: FormatOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Gradients by a probe pass: input, forward, reduce (sum), backward.

    Shows per parameter the gradient's norm, mean, max |g| and fraction of zeros; marks
    parameters no gradient reached (unused in forward) and frozen ones. A parameter used
    twice shows its accumulated gradient once, under all its names.
    """
    _show_grads(
        _model_source(path, model, model_arg, trust, key),
        _input_spec(input_shape, input_file, input_value),
        _selection(match, regex, exclude),
        loss=loss,
        seed=seed,
        eval_mode=eval_mode,
        output_format=output_format,
    )


@dataclass(frozen=True)
class _LiveListOptions:
    """The options of ``list`` that only some listings take, checked in one place."""

    all_tensors: bool = False
    extras: bool = False
    grads: bool = False
    loss: str = "sum"
    eval_mode: bool = False
    seed: int | None = None
    stats: bool = False  # list --stats reads a file's values

    def check(self) -> None:
        if self.all_tensors or self.extras or self.stats:
            raise UsageError("--all, --extras and --stats list a checkpoint file, not a live module")
        if not self.grads and (self.loss != "sum" or self.eval_mode):
            raise UsageError("--loss and --eval shape the gradient probe: add --grads")


def _list_live(
    source: ModelSource,
    inputs: InputSpec,
    selection: Selection,
    options: _LiveListOptions,
    *,
    tree: bool,
    sort: SortKey,
    output_format: OutputFormat | None,
) -> None:
    from paramctl.live.model import live_listing
    from paramctl.render.engine import live_listing_report

    options.check()
    if options.grads:
        if tree or sort != "file":
            raise UsageError("--tree and --sort list tensors; the gradient table keeps module order")
        _show_grads(
            source,
            inputs,
            selection,
            loss=options.loss,
            seed=options.seed,
            eval_mode=options.eval_mode,
            output_format=output_format,
        )
        return
    env = Environment.current()
    listing = live_listing(
        source, inputs, selection, seed=options.seed, sort=sort, on_globals=_announce_globals
    )
    fmt = env.resolve(output_format)
    if tree:
        rows = [{**row.to_dict(), "numel": row.numel or 0, "bytes": row.nbytes or 0} for row in listing.rows]
        tree_view(rows, env, fmt)
        return
    emit(live_listing_report(listing), fmt, env)


# -- paramctl init ------------------------------------------------------------------------


class WriteFormat(str, Enum):
    torch_zip = "torch-zip"
    torch_legacy = "torch-legacy"
    safetensors = "safetensors"


def _init_epilog() -> str:
    from paramctl.schemes.catalog import schemes_help

    syntax = (
        "Give parameters by name or in torch's order: --scheme 'normal(std=0.01)', 'normal(0, 0.01)', "
        "'kaiming_normal(mode=fan_out, nonlinearity=relu)'; values may use sqrt(5), pi, gain(relu)."
    )
    # "\b" keeps click from re-wrapping the table of schemes.
    return f"{syntax}\n\n\b\nSchemes, with torch's defaults:\n{schemes_help()}"


class _InitCommand(TyperCommand):
    """``init``'s help ends with the table of schemes, built only when help is shown."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        self.epilog = _init_epilog()
        super().format_epilog(ctx, formatter)


@app.command("init", cls=_InitCommand)
@reports_errors
def init_command(
    ctx: typer.Context,
    path: PathArg = STDIN,
    scheme: Annotated[
        str | None,
        typer.Option(
            "--scheme",
            "-s",
            help="Where new values come from: NAME or NAME(param=value, ...), 'default', "
            "FILE.py:FUNC or MODULE:FUNC (schemes below).",
            show_default=False,
        ),
    ] = None,
    set_value: Annotated[
        float | None,
        typer.Option("--set", help="Set every value to X (constant(val=X)).", show_default=False),
    ] = None,
    from_path: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Copy the same-named tensors from this checkpoint.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    rename: Annotated[
        list[str] | None,
        typer.Option(
            "--rename",
            help="With --from: rewrite source names by regex, FROM=TO (repeatable, applied in order).",
            show_default=False,
        ),
    ] = None,
    scale: Annotated[
        float | None, typer.Option("--scale", help="Multiply the values by X (after any new values).")
    ] = None,
    add: Annotated[float | None, typer.Option("--add", help="Add X to the values (after --scale).")] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the torch.Generator shared by the tensors, in file order."),
    ] = None,
    match: MatchOpt = None,
    regex: RegexOpt = None,
    exclude: ExcludeOpt = None,
    names_from: Annotated[
        str | None,
        typer.Option(
            "--names-from",
            help="Select the names listed in FILE, one a line (- reads standard input).",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    key: KeyOpt = None,
    all_tensors: AllOpt = False,
    skip_incompatible: Annotated[
        bool,
        typer.Option(
            "--skip-incompatible", help="Leave tensors the change cannot fill unchanged instead of failing."
        ),
    ] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="Write here (replaced atomically).", show_default=False, metavar="PATH"
        ),
    ] = None,
    to: Annotated[
        WriteFormat | None,
        typer.Option(
            "--to",
            help="Output format [default: from -o's extension, else the input's].",
            show_default=False,
        ),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", "-i", help="Replace the input file (atomically).")
    ] = False,
    backup: Annotated[
        bool, typer.Option("--backup", help="With --in-place: keep the old file as PATH.bak.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", "-n", help="Show what would change (and the inferred layers); write nothing."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    output_format: FormatOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    trust: TrustOpt = False,
    input_shape: InputShapeOpt = None,
    input_file: InputFileOpt = None,
    input_value: InputValueOpt = None,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Reinitialize, edit or copy selected tensors and write the checkpoint, losing nothing.

    Everything not selected comes out byte-identical. The checkpoint goes to -o PATH, \
over the input with --in-place, or to standard output when that is not a terminal; the \
report (mean/std before and after) goes to stdout, or to stderr when stdout carries the \
checkpoint.
    """
    from paramctl.api import CheckpointFile
    from paramctl.change import Change, Edit, copy_source, parse_rename
    from paramctl.schemes.catalog import make_scheme, parse_scheme

    env = Environment.current()
    live = _LiveInit(model, model_arg, trust, input_shape, input_file, input_value)
    # A live model needs no file: only a PATH actually given is read ("" when none is).
    path_given = ctx.get_parameter_source("path").name != "DEFAULT"  # type: ignore[union-attr]
    source = checkpoint_source(path) if path_given or not live.requested else ""
    if in_place and output:
        raise UsageError("--in-place and --output exclude each other")
    if in_place and source == STDIN:
        raise UsageError("--in-place needs a file, not standard input")
    if backup and not in_place:
        raise UsageError("--backup goes with --in-place")
    if rename and not from_path:
        raise UsageError("--rename maps the names of --from; give --from FILE")
    if sum(x is not None for x in (scheme, set_value, from_path)) > 1:
        raise UsageError("--scheme, --set and --from exclude each other: give one")
    if names_from == STDIN and source == STDIN:
        raise UsageError("standard input cannot carry both the checkpoint and --names-from")
    to_stdout = not (dry_run or output or in_place)
    if to_stdout and env.stdout_isatty:
        raise UsageError(
            "refusing to write a binary checkpoint to a terminal: give -o PATH or --in-place, "
            "or redirect standard output (> out.pt, | paramctl list)"
        )

    def run_live(live_source: str | None) -> None:
        live.run(
            live_source,
            scheme=scheme,
            set_value=set_value,
            scale=scale,
            add=add,
            seed=seed,
            from_path=from_path,
            selection=Selection(
                match=tuple(match or ()),
                regex=tuple(regex or ()),
                exclude=tuple(exclude or ()),
                names=_read_name_file(names_from) if names_from else None,
            ),
            key=key,
            all_tensors=all_tensors,
            skip_incompatible=skip_incompatible,
            output=output,
            to=to.value if to is not None else None,
            in_place=in_place,
            backup=backup,
            dry_run=dry_run,
            quiet=quiet,
            output_format=output_format,
        )

    if live.requested:
        run_live(source or None)
        return

    try:
        file = CheckpointFile(source, key=key, all_tensors=all_tensors, on_note=env.note if verbose else None)
    except UnsafePickle:
        if not trust:
            from paramctl.live.trust import refusal_for

            raise refusal_for(source) from None
        run_live(source)
        return
    names = _read_name_file(names_from) if names_from else None
    unknown = unknown_names(Selection(names=names), file.names())
    if unknown:
        raise NothingSelected(
            f"--names-from lists {len(unknown)} names not in {file.label}: {', '.join(unknown[:5])}"
        )
    targets = file.select(match or (), regex or (), exclude=exclude or (), names=names)

    copy = None
    if from_path:
        other = read_checkpoint(from_path)
        copy = copy_source(targets.tensors, other, rename_rules=parse_rename(rename or ()))
        if not copy.pairs:
            raise NothingSelected(
                f"none of the {len(targets)} selected tensors is in {other.label} "
                f"(its names look like: {', '.join(other.names()[:3])}); --rename FROM=TO maps names"
            )
        if copy.missing and not quiet:
            env.note(f"not in {other.label}, left unchanged: {', '.join(copy.missing[:8])}")
    chosen = make_scheme("constant", val=set_value) if set_value is not None else None
    if scheme is not None:
        chosen = parse_scheme(scheme)
    edit = Edit(scale, add) if scale is not None or add is not None else None
    targets.apply_(
        Change(scheme=chosen, copy=copy, edit=edit), seed=seed, skip_incompatible=skip_incompatible
    )
    if dry_run:
        emit(plan_report(file.pending()[0]), env.resolve(output_format), env)
        return

    destination: Any = file.checkpoint.path if in_place else output or sys.stdout.buffer
    saved = file.save(
        destination,
        to=to.value if to is not None else None,
        backup=f"{file.checkpoint.path}.bak" if backup else None,
        stats=not quiet,
        output_label="<stdout>" if to_stdout else None,
    )
    if quiet:
        return
    (result,) = saved.changes
    report_env = (
        Environment(env.stderr, env.stderr, env.stderr_isatty, env.stderr_isatty) if to_stdout else env
    )
    if result.seed is not None and seed is None:
        env.note(f"seed {result.seed} (pass --seed {result.seed} to repeat)")
    report = init_report(result)
    fmt = report_env.resolve(output_format)
    emit(report, fmt, report_env)
    if fmt not in (OutputFormat.table, OutputFormat.json):
        for line in report.footer:
            env.note(line)


def _read_name_file(names_from: str) -> frozenset[str]:
    if names_from == STDIN:
        return read_names(sys.stdin)
    try:
        with open(names_from, encoding="utf-8") as file:
            return read_names(file)
    except OSError as exc:
        raise CheckpointIOError(f"--names-from {names_from}: {exc.strerror or exc}") from exc


@dataclass(frozen=True)
class _LiveInit:
    """``init --model``/``--trust``/``--input-shape``: the change is made in a live module."""

    model: str | None
    model_arg: list[str] | None
    trust: bool
    input_shape: list[str] | None
    input_file: str | None
    input_value: float | None

    @property
    def requested(self) -> bool:
        return self.model is not None or bool(self.input_shape) or self.input_file is not None

    def run(
        self,
        source: str | None,
        *,
        scheme: str | None,
        set_value: float | None,
        scale: float | None,
        add: float | None,
        seed: int | None,
        from_path: str | None,
        selection: Selection,
        key: str | None,
        all_tensors: bool,
        skip_incompatible: bool,
        output: str | None,
        to: str | None,
        in_place: bool,
        backup: bool,
        dry_run: bool,
        quiet: bool,
        output_format: OutputFormat | None,
    ) -> None:
        from paramctl.change import Edit
        from paramctl.live.init_model import LiveChange, LivePlan, init_model
        from paramctl.schemes.catalog import make_scheme, parse_scheme

        if from_path:
            raise UsageError("--from copies between files; with --model, give the checkpoint as PATH")
        if all_tensors:
            raise UsageError("--all lists a file's every tensor; a live module has its own names")
        if in_place and (source is None or self.model is None):
            raise UsageError("--in-place rewrites a checkpoint file: give PATH and --model, or -o PATH")
        env = Environment.current()
        chosen = make_scheme("constant", val=set_value) if set_value is not None else None
        if scheme is not None:
            chosen = parse_scheme(scheme)
        edit = Edit(scale, add) if scale is not None or add is not None else None
        destination: Any = None
        if not dry_run:
            destination = source if in_place else output or sys.stdout.buffer
        result = init_model(
            _model_source(source, self.model, self.model_arg, self.trust, key),
            LiveChange(chosen, edit),
            destination,
            selection=selection,
            inputs=_input_spec(self.input_shape, self.input_file, self.input_value),
            seed=seed,
            to=to,
            backup=f"{source}.bak" if backup and source else None,
            skip_incompatible=skip_incompatible,
            on_globals=_announce_globals,
        )
        if isinstance(result, LivePlan):
            emit(plan_report(result.plan), env.resolve(output_format), env)
            return
        if quiet:
            return
        to_stdout = destination is sys.stdout.buffer
        report_env = (
            Environment(env.stderr, env.stderr, env.stderr_isatty, env.stderr_isatty) if to_stdout else env
        )
        if result.seed is not None and seed is None:
            env.note(f"seed {result.seed} (pass --seed {result.seed} to repeat)")
        if result.materialized:
            env.note(f"materialized by a dry forward pass: {', '.join(result.materialized)}")
        report = init_report(result)
        if not (chosen or edit):
            report.footer[0] = (
                f"wrote {len(result.changed)} tensors as built → {result.output} ({result.format})"
            )
        fmt = report_env.resolve(output_format)
        emit(report, fmt, report_env)
        if fmt not in (OutputFormat.table, OutputFormat.json):
            for line in report.footer:
                env.note(line)
