"""``paramctl diff``: what differs between two checkpoints, or between a checkpoint and the
model it should load into (``--model``).

>>> import os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> folder = tempfile.mkdtemp()
>>> a, b = os.path.join(folder, "a.pt"), os.path.join(folder, "b.pt")
>>> torch.save({"w": torch.ones(2), "b": torch.zeros(2)}, a)
>>> torch.save({"w": torch.tensor([1.0, 3.0]), "b": torch.zeros(2)}, b)
>>> result = CliRunner().invoke(app, ["diff", a, b, "--columns", "name,change,max_abs"])
>>> print(result.stdout, end=""); int(result.exit_code)
name	change	max_abs
w	values	2.0
1
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import typer

from paramctl.cli import options
from paramctl.errors import ExitCode, UsageError
from paramctl.formats import read_checkpoint
from paramctl.live.routing import TrustedPickle, open_or_trusted
from paramctl.rename import NameMap
from paramctl.render.engine import Environment
from paramctl.render.several import Output

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.compare.diff import CheckpointDiff
    from paramctl.compare.fit import ModelFit
    from paramctl.live.routing import LiveRequest
    from paramctl.select import Selection

FirstArg = Annotated[
    str | None,
    typer.Argument(help="The first checkpoint (A); - reads standard input.", show_default=False, metavar="A"),
]
SecondArg = Annotated[
    str | None,
    typer.Argument(
        help="The checkpoint to compare A with (B); none with --model.", show_default=False, metavar="[B]"
    ),
]
AtolOpt = Annotated[
    float, typer.Option("--atol", help="Values equal within |a-b| <= atol + rtol*|b| (numpy.isclose).", min=0)
]
RtolOpt = Annotated[float, typer.Option("--rtol", help="Relative tolerance, with --atol.", min=0)]
NamesOnlyOpt = Annotated[
    bool, typer.Option("--names-only", help="Compare names, shapes, dtypes and ties; read no values.")
]


def diff_command(
    first: FirstArg = None,
    second: SecondArg = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    strip_prefix: options.StripPrefixOpt = None,
    rename: options.RenameOpt = None,
    atol: AtolOpt = 0.0,
    rtol: RtolOpt = 0.0,
    names_only: NamesOnlyOpt = False,
    model: options.ModelOpt = None,
    model_arg: options.ModelArgOpt = None,
    trust: options.TrustOpt = False,
    columns: options.ColumnsOpt = None,
    output_format: options.FormatOpt = None,
    verbose: options.VerboseOpt = False,
    no_cache: options.NoCacheOpt = False,
    download: options.DownloadOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Compare two checkpoints of any formats: names only in A or B, shapes, dtypes, values, ties.

    Values are compared one pair of tensors at a time (max |a-b|, relative L2, elements that
    differ); tensors whose bytes are the same need no arithmetic. With --model, compare A's
    names and shapes with the model's state_dict instead, and print the convert command
    that renames A to fit.

    Exits 0 when they are equal (A fits the model as saved), 1 when they differ.
    """
    env = Environment.current()
    names = NameMap.parse(strip_prefixes=strip_prefix or (), renames=rename or ())
    output = Output(env.resolve(output_format), env, several=False, columns=options.column_keys(columns))
    live = options.live_request(model, model_arg, trust, key)
    if model is not None:
        if second is not None:
            raise UsageError("--model takes the place of B: give one checkpoint with --model")
        if match or regex or exclude or names_from or atol or rtol or names_only:
            raise UsageError(
                "--match, --regex, --exclude, --names-from, --atol, --rtol and --names-only compare "
                "two checkpoints; with --model every name and shape is met"
            )
        code = _fit(options.checkpoint_source(first), live, names, all_tensors, output, env)
        raise typer.Exit(code)
    if second is None:
        raise UsageError("diff compares two checkpoints: give A and B, or A and --model SPEC")
    if trust or model_arg:
        raise UsageError("--trust and --model-arg build a model: they go with --model")
    sources = options.checkpoint_sources([first or "-", second])
    chosen = options.selection(match, regex, exclude, options.names_from(names_from, sources))
    on_note = env.note if verbose else None
    with options.remote_reading(env, options.RemoteOptions(no_cache, download, verbose)):
        a, b = (read_checkpoint(source, on_note=on_note) for source in sources)
        found = _compare(a, b, chosen, names, key, all_tensors, (atol, rtol), names_only, env)
    from paramctl.render.diff import diff_report

    output.add(sources[0], diff_report(found, output.fmt))
    output.finish()
    raise typer.Exit(ExitCode.OK if found.equal else ExitCode.NEGATIVE)


def _compare(
    a: Checkpoint,
    b: Checkpoint,
    chosen: Selection,
    names: NameMap,
    key: str | None,
    all_tensors: bool,
    tolerances: tuple[float, float],
    names_only: bool,
    env: Environment,
) -> CheckpointDiff:
    from paramctl.compare import Tolerance, diff_checkpoints
    from paramctl.compare.diff import value_work
    from paramctl.render.progress import progress

    tolerance = Tolerance(*tolerances)
    sides = functools.partial(
        value_work, a, b, key=key, all_tensors=all_tensors, selection=chosen, names=names
    )
    with progress(env, 0 if names_only else sides(), "comparing") as on_progress:
        return diff_checkpoints(
            a,
            b,
            key=key,
            all_tensors=all_tensors,
            selection=chosen,
            names=names,
            tolerance=tolerance,
            names_only=names_only,
            on_progress=on_progress,
        )


def _fit(
    source: str, live: LiveRequest, names: NameMap, all_tensors: bool, output: Output, env: Environment
) -> ExitCode:
    """``diff A --model SPEC``: the fit report; 0 when A loads into the model as saved."""
    from paramctl.compare.fit import fit_model, state_shapes
    from paramctl.live.model import build_module
    from paramctl.render.diff import fit_report

    assert live.model is not None
    checkpoint = _checkpoint_shapes(source, live, all_tensors, env)
    module = build_module(live.model, live.model_source(None).model_args)
    fit: ModelFit = fit_model(
        checkpoint,
        state_shapes(module),
        source=source,
        model_label=f"--model {live.model}",
        names=names or None,
        key=live.key,
        all_tensors=all_tensors,
    )
    output.add(source, fit_report(fit))
    output.finish()
    return ExitCode.OK if fit.fits and not fit.renaming else ExitCode.NEGATIVE


def _checkpoint_shapes(
    source: str, live: LiveRequest, all_tensors: bool, env: Environment
) -> dict[str, tuple[int, ...]]:
    """The checkpoint's names and shapes: read as data, or (a full pickled module, with
    --trust) from the state_dict of the module it unpickles to."""
    opened = open_or_trusted(lambda: read_checkpoint(source), source, trust=live.trust)
    if isinstance(opened, TrustedPickle):
        from paramctl.compare.fit import state_shapes
        from paramctl.live.model import ModelSource
        from paramctl.render.live import announce_globals

        trusted = ModelSource(source=source, trust=True, key=live.key)
        module = trusted.open(functools.partial(announce_globals, env)).module
        return {name: shape or () for name, shape in state_shapes(module).items()}
    from paramctl.compare.names import tensors_by_name

    tensors = tensors_by_name(opened, key=live.key, all_tensors=all_tensors)
    return {name: entry.shape for name, entry in tensors.items()}
