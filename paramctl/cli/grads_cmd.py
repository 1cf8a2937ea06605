"""``paramctl grads``: gradients by a probe pass through a live module.

>>> from typer.testing import CliRunner
>>> from paramctl.cli import app
>>> linear = ["--model", "torch.nn:Linear", "--model-arg", "in_features=2", "--model-arg", "out_features=1"]
>>> result = CliRunner().invoke(app, ["grads", *linear, "--input-shape", "1,2", "-f", "names"])
>>> result.stdout.split()
['weight', 'bias']
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import typer

from paramctl.cli import options
from paramctl.cli.several import each_file
from paramctl.live.routing import ProbeRequest
from paramctl.render.engine import Environment, Report
from paramctl.render.several import Output
from paramctl.select import Selection

if TYPE_CHECKING:
    from paramctl.live.inputs import InputSpec
    from paramctl.live.model import ModelSource

ModulePathsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Checkpoints to load into --model (one probe each), or full pickled modules (with "
        "--trust); - reads standard input.",
        show_default=False,
        metavar="[PATH]...",
    ),
]


def grads_command(
    paths: ModulePathsArg = None,
    model: options.ModelOpt = None,
    model_arg: options.ModelArgOpt = None,
    trust: options.TrustOpt = False,
    key: options.KeyOpt = None,
    input_shape: options.InputShapeOpt = None,
    input_file: options.InputFileOpt = None,
    input_value: options.InputValueOpt = None,
    loss: options.LossOpt = "sum",
    seed: options.ProbeSeedOpt = None,
    eval_mode: options.EvalOpt = False,
    match: options.MatchOpt = None,
    regex: options.RegexOpt = None,
    exclude: options.ExcludeOpt = None,
    names_from: options.NamesFromOpt = None,
    columns: options.ColumnsOpt = None,
    output_format: options.FormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Gradients by a probe pass: input, forward, reduce (sum), backward.

    Shows per parameter the gradient's norm, mean, max |g| and fraction of zeros; marks
    parameters no gradient reached (unused in forward) and frozen ones. A parameter used
    twice shows its accumulated gradient once, under all its names.
    """
    env = Environment.current()
    live = options.live_request(model, model_arg, trust, key, input_shape, input_file, input_value)
    sources = [options.given_source(path) for path in (list(paths) if paths else [None])]
    given = [source for source in sources if source is not None]
    chosen = options.selection(match, regex, exclude, options.names_from(names_from, given))
    probe = ProbeRequest(grads=True, loss=loss, eval_mode=eval_mode, seed=seed)
    output = Output(
        env.resolve(output_format), env, several=len(sources) > 1, columns=options.column_keys(columns)
    )

    def answer(source: str | None) -> None:
        report = grads_of(live.model_source(source), live.input_spec(), chosen, probe, env)
        output.add(source or "", report)

    each_file(sources, answer, output, debug=debug)


def grads_of(
    source: ModelSource, inputs: InputSpec, chosen: Selection, probe: ProbeRequest, env: Environment
) -> Report:
    """Probe the module: the report of its gradients (``grads``, and ``list --grads``)."""
    from paramctl.change import draw_seed
    from paramctl.live.probe import probe_model
    from paramctl.render.live import announce_globals, grads_report

    result = probe_model(
        source,
        inputs,
        loss=probe.loss,
        seed=draw_seed(probe.seed),
        mode="eval" if probe.eval_mode else None,
        selection=chosen,
        on_globals=functools.partial(announce_globals, env),
    )
    return grads_report(result)
