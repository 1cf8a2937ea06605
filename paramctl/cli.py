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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from . import __version__
from .errors import ExitCode, ParamctlError, UnsafePickle, UsageError
from .formats import STDIN, read_checkpoint
from .listing import SortKey, build_listing
from .render import Environment, OutputFormat, emit, listing_report, tree_view
from .select import Selection
from .trust import refusal_for
from .usercode import parse_assignments

if TYPE_CHECKING:
    from .live import InputSpec, ModelSource

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

    Reads metadata only: no tensor values, no torch import. With --model (or --trust for a
    full pickled module) it lists the live module instead: parameters and buffers by the
    module's own names, lazy ones until --input-shape materializes them.
    """
    env = Environment.current()
    live = model is not None or grads or bool(input_shape) or input_file is not None
    if live:
        given = None if ctx.get_parameter_source("path").name == "DEFAULT" else path  # type: ignore[union-attr]
        options = _LiveListOptions(all_tensors, extras, grads, loss, eval_mode, seed)
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
            raise refusal_for(path) from None
        _list_live(
            _model_source(path, None, model_arg, trust, key),
            _input_spec(None, None),
            _selection(match, regex, exclude),
            _LiveListOptions(all_tensors, extras),
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


# -- live models: list --model, grads -----------------------------------------------------
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Build the model with this factory, 'package.module:name' or 'path/file.py:name'; "
        "a PATH given is loaded into it.",
        show_default=False,
    ),
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg",
        help="key=value for the factory (repeatable; values read as Python literals).",
        show_default=False,
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
        "-i",
        help="Input of torch.rand with this shape, e.g. 2,4 (repeatable: one per forward argument).",
        show_default=False,
    ),
]
InputFileOpt = Annotated[
    str | None,
    typer.Option(
        "--input",
        help="Input saved with torch.save: a tensor, a list of tensors, or a dict of keyword arguments.",
        show_default=False,
    ),
]
InputValueOpt = Annotated[
    float | None,
    typer.Option(
        "--input-value",
        help="Fill the --input-shape input with this value instead of random numbers.",
        show_default=False,
    ),
]
LossOpt = Annotated[
    str,
    typer.Option("--loss", help="Reduce the output to one number: sum, mean, or 'file.py:fn' as fn(output)."),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        help="Seed torch once before building the model, drawing the input and running it "
        "[default: a fresh seed, reported].",
        show_default=False,
    ),
]
EvalOpt = Annotated[
    bool, typer.Option("--eval", help="Probe in eval mode (dropout off, running statistics used).")
]


def _model_source(
    path: str | None, model: str | None, model_arg: list[str] | None, trust: bool, key: str | None
) -> ModelSource:
    from .live import ModelSource

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
    from .live import InputSpec, parse_shape

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
    from .live import fresh_seed
    from .probe import probe_model
    from .render import grads_report

    env = Environment.current()
    probe = probe_model(
        source,
        inputs,
        loss=loss,
        seed=fresh_seed() if seed is None else seed,
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

    def check(self) -> None:
        if self.all_tensors or self.extras:
            raise UsageError("--all and --extras list a checkpoint file; a live module has its own names")
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
    from .live import live_listing
    from .render import live_listing_report

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
