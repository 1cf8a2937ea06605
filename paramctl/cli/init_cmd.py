"""``paramctl init``: reinitialize, edit or copy selected tensors, losing nothing else.

>>> import os, tempfile, torch
>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2, 2), "b": torch.arange(2.0)}, path)
>>> args = ["init", path, "-m", "b", "-s", "zeros", "-o", path + ".new.pt", "-f", "names"]
>>> result = CliRunner().invoke(app, args)
>>> result.stdout
'b\\n'
>>> torch.load(path + ".new.pt")["b"]
tensor([0., 0.])
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand

from paramctl.change.destination import Destination, init_destination
from paramctl.cli import options
from paramctl.cli.init_options import (
    AddOpt,
    BackupOpt,
    DryRunOpt,
    FromOpt,
    InPlaceOpt,
    OutputOpt,
    QuietOpt,
    RenameOpt,
    ReportOpt,
    ScaleOpt,
    SchemeOpt,
    SeedOpt,
    SetOpt,
    SkipIncompatibleOpt,
)
from paramctl.cli.several import each_file
from paramctl.errors import NothingSelected, UsageError
from paramctl.formats import read_checkpoint
from paramctl.live.routing import LiveRequest, TrustedPickle, check_live_change, open_or_trusted
from paramctl.render.engine import Environment, OutputFormat
from paramctl.render.several import Output
from paramctl.select import Selection, check_listed

if TYPE_CHECKING:
    from paramctl.api import CheckpointFile, TensorSelection
    from paramctl.change import CopySource, Edit
    from paramctl.schemes.catalog import InitScheme


class InitHelp(TyperCommand):
    """``init``'s help ends with the table of schemes, built only when help is shown."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from paramctl.schemes.catalog import schemes_help

        syntax = (
            "Give parameters by name or in torch's order: --scheme 'normal(std=0.01)', 'normal(0, 0.01)', "
            "'kaiming_normal(mode=fan_out, nonlinearity=relu)'; values may use sqrt(5), pi, gain(relu)."
        )
        # "\b" keeps click from re-wrapping the table of schemes.
        self.epilog = f"{syntax}\n\n\b\nSchemes, with torch's defaults:\n{schemes_help()}"
        super().format_epilog(ctx, formatter)


@dataclass(frozen=True)
class _Change:
    """What ``init`` does to the values, as its options say it, checked together."""

    scheme: str | None = None
    set_value: float | None = None
    from_path: str | None = None
    rename: tuple[str, ...] = ()
    scale: float | None = None
    add: float | None = None
    seed: int | None = None
    skip_incompatible: bool = False

    def __post_init__(self) -> None:
        if self.rename and not self.from_path:
            raise UsageError("--rename maps the names of --from; give --from FILE")
        if sum(x is not None for x in (self.scheme, self.set_value, self.from_path)) > 1:
            raise UsageError("--scheme, --set and --from exclude each other: give one")

    def new_values(self) -> InitScheme | None:
        from paramctl.schemes.catalog import make_scheme, parse_scheme

        if self.scheme is not None:
            return parse_scheme(self.scheme)
        return make_scheme("constant", val=self.set_value) if self.set_value is not None else None

    def edit(self) -> Edit | None:
        from paramctl.change import Edit

        return Edit(self.scale, self.add) if self.scale is not None or self.add is not None else None


@dataclass(frozen=True)
class _Init:
    """One run of ``init`` on one file: the change, the tensors it goes to, where the result
    and the report go."""

    change: _Change
    selection: Selection
    destination: Destination
    output: Output
    to: str | None = None
    all_tensors: bool = False
    quiet: bool = False
    output_format: OutputFormat | None = None
    full_report: bool = False


def init_command(
    paths: options.PathsArg = None,
    scheme: SchemeOpt = None,
    set_value: SetOpt = None,
    from_path: FromOpt = None,
    rename: RenameOpt = None,
    scale: ScaleOpt = None,
    add: AddOpt = None,
    seed: SeedOpt = None,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    key: options.KeyOpt = None,
    all_tensors: options.AllOpt = False,
    skip_incompatible: SkipIncompatibleOpt = False,
    output: OutputOpt = None,
    to: options.ToOpt = None,
    in_place: InPlaceOpt = False,
    backup: BackupOpt = False,
    dry_run: DryRunOpt = False,
    quiet: QuietOpt = False,
    report: ReportOpt = False,
    columns: options.ColumnsOpt = None,
    output_format: options.FormatOpt = None,
    model: options.ModelOpt = None,
    model_arg: options.ModelArgOpt = None,
    trust: options.TrustOpt = False,
    input_shape: options.InputShapeOpt = None,
    input_file: options.InputFileOpt = None,
    input_value: options.InputValueOpt = None,
    verbose: options.VerboseOpt = False,
    debug: options.DebugOpt = False,
) -> None:
    """Reinitialize, edit or copy selected tensors and write the checkpoint, losing nothing.

    Everything not selected comes out byte-identical. The checkpoint goes to -o PATH, \
over the input with --in-place, or to standard output when that is not a terminal; the \
report (mean/std before and after) goes to stdout, or to stderr when stdout carries the \
checkpoint. On a terminal, a change of more than 20 tensors is told in one line \
(--report shows the table). Several PATHs take --in-place or --dry-run.
    """
    env = Environment.current()
    live = options.live_request(model, model_arg, trust, key, input_shape, input_file, input_value)
    targets = _Targets(output, in_place, backup, dry_run)
    sources = targets.sources(paths, live)
    change = _Change(scheme, set_value, from_path, tuple(rename or ()), scale, add, seed, skip_incompatible)
    chosen = options.selection(
        match, regex, exclude, options.names_from(names_from, [s for s in sources if s])
    )
    several = len(sources) > 1
    shared = Output(env.resolve(output_format), env, several=several, columns=options.column_keys(columns))
    to_format = to.value if to else None
    settings = _Init(
        change, chosen, Destination(), shared, to_format, all_tensors, quiet, output_format, report
    )
    run = functools.partial(
        _init_path, settings=settings, targets=targets, live=live, env=env, verbose=verbose
    )
    each_file(sources, run, shared, debug=debug)


@dataclass(frozen=True)
class _Targets:
    """Where the options send each file's result: ``-o``, ``--in-place`` (``--backup``), or
    nowhere (``--dry-run``)."""

    output: str | None
    in_place: bool
    backup: bool
    dry_run: bool

    def sources(self, paths: list[str] | None, live: LiveRequest) -> list[str | None]:
        """The files to change (``None``: a live module built from nothing). A live module
        needs no file, so only a PATH actually given is read; several take ``--in-place``."""
        if (
            paths
            and len(paths) > 1
            and (live.builds_module or self.output or not (self.in_place or self.dry_run))
        ):
            raise UsageError(
                "several PATHs are changed with --in-place (or shown with --dry-run), not -o or a model"
            )
        if live.builds_module:
            given: list[str | None] = list(paths) if paths else [None]
            return [options.given_source(path) for path in given]
        return list(options.checkpoint_sources(paths))


def _init_path(
    source: str | None,
    *,
    settings: _Init,
    targets: _Targets,
    live: LiveRequest,
    env: Environment,
    verbose: bool,
) -> None:
    where = init_destination(
        source,
        targets.output,
        targets.in_place,
        targets.backup,
        dry_run=targets.dry_run,
        stdout_isatty=env.stdout_isatty,
    )
    shown = settings.output
    if where.report_on_stderr:  # one file only: stdout carries the checkpoint
        on_stderr = env.on_stderr()
        shown = Output(
            on_stderr.resolve(settings.output_format), on_stderr, several=False, columns=shown.columns
        )
    _init_one(source, live, replace(settings, destination=where, output=shown), env, verbose)


def _init_one(source: str | None, live: LiveRequest, run: _Init, env: Environment, verbose: bool) -> None:
    if source is None or live.builds_module:
        _init_live(live, source, run, env)
        return
    on_note = env.note if verbose else None
    opened = open_or_trusted(
        lambda: _open(source, live.key, run.all_tensors, on_note), source, trust=live.trust
    )
    if isinstance(opened, TrustedPickle):
        _init_live(live, opened.source, run, env)
    else:
        _init_file(opened, run, env)


def _open(
    source: str, key: str | None, all_tensors: bool, on_note: Callable[[str], None] | None
) -> CheckpointFile:
    from paramctl.api import CheckpointFile

    return CheckpointFile(source, key=key, all_tensors=all_tensors, on_note=on_note)


def _init_file(file: CheckpointFile, run: _Init, env: Environment) -> None:
    """The change made on the file's own bytes, by the library's :class:`CheckpointFile`."""
    from paramctl.change import Change
    from paramctl.render.init import brief_report, emit_init, plan_report
    from paramctl.render.progress import progress

    check_listed(run.selection, file.names(), file.label)
    chosen = run.selection
    targets = file.select(chosen.match, chosen.regex, exclude=chosen.exclude, names=chosen.names)
    change = run.change
    copy = _copy_source(targets, change.from_path, change.rename) if change.from_path else None
    targets.apply_(
        Change(scheme=change.new_values(), copy=copy, edit=change.edit()),
        seed=change.seed,
        skip_incompatible=change.skip_incompatible,
    )
    where = run.destination
    (plan,) = file.pending()
    if where.dry_run:
        run.output.add(file.label, plan_report(plan))
        return
    target = where.target(sys.stdout.buffer)
    # One line will tell a big change on a terminal: its table's statistics go unmeasured.
    brief = brief_report(len(plan.tensors), run.output, run.output_format, run.full_report)
    work = sum(tensor.entry.nbytes for tensor in plan.tensors)
    with progress(env, work, "loading torch") as bar:
        if bar is not None:
            # Filling needs torch; loading it under the bar tells the first second's wait.
            import torch  # noqa: F401

            bar.describe(f"writing {where.label or where.path}")
        saved = file.save(
            target,
            to=run.to,
            backup=where.backup,
            stats=not (run.quiet or brief),
            output_label=where.label,
            on_progress=bar,
        )
    if not run.quiet:
        (result,) = saved.changes
        emit_init(
            result,
            run.output,
            env,
            requested=run.output_format,
            seed_given=change.seed is not None,
            full_report=run.full_report,
        )


def _copy_source(targets: TensorSelection, from_path: str, rename: tuple[str, ...]) -> CopySource:
    """``--from``: the same-named tensors of another checkpoint, after ``--rename``. Those
    it lacks are skipped, and the report says so once."""
    from paramctl.change import copy_source, parse_rename

    other = read_checkpoint(from_path)
    copy = copy_source(targets.tensors, other, rename_rules=parse_rename(rename))
    if not copy.pairs:
        raise NothingSelected(
            f"none of the {len(targets)} selected tensors is in {other.label} "
            f"(its names look like: {', '.join(other.names()[:3])}); --rename FROM=TO maps names"
        )
    return copy


def _init_live(live: LiveRequest, source: str | None, run: _Init, env: Environment) -> None:
    """The change made in a live module, whose tensors are then written back."""
    from paramctl.live.init_model import LiveChange, LivePlan, init_model
    from paramctl.render.init import emit_init, plan_report
    from paramctl.render.live import announce_globals

    where, change = run.destination, run.change
    check_live_change(
        live, copying=bool(change.from_path), all_tensors=run.all_tensors, in_place=where.in_place
    )
    values = LiveChange(change.new_values(), change.edit())
    result = init_model(
        live.model_source(source),
        values,
        None if where.dry_run else where.target(sys.stdout.buffer),
        selection=run.selection,
        inputs=live.input_spec(),
        seed=change.seed,
        to=run.to,
        backup=where.backup,
        skip_incompatible=change.skip_incompatible,
        on_globals=functools.partial(announce_globals, env),
        output_label=where.label,
    )
    if isinstance(result, LivePlan):
        run.output.add(str(source), plan_report(result.plan))
    elif not run.quiet:
        emit_init(
            result,
            run.output,
            env,
            requested=run.output_format,
            seed_given=change.seed is not None,
            as_built=not values.changes_values,
            materialized=result.materialized,
            full_report=run.full_report,
        )
