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
from paramctl.live.routing import ProbeRequest
from paramctl.render.engine import Environment, OutputFormat, emit
from paramctl.select import Selection

if TYPE_CHECKING:
    from paramctl.live.inputs import InputSpec
    from paramctl.live.model import ModelSource

ModulePathArg = Annotated[
    str | None,
    typer.Argument(
        help="Checkpoint to load into --model, or a full pickled module (with --trust); "
        "- reads standard input.",
        show_default=False,
        metavar="[PATH]",
    ),
]


def grads_command(
    path: ModulePathArg = None,
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
    output_format: options.FormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Gradients by a probe pass: input, forward, reduce (sum), backward.

    Shows per parameter the gradient's norm, mean, max |g| and fraction of zeros; marks
    parameters no gradient reached (unused in forward) and frozen ones. A parameter used
    twice shows its accumulated gradient once, under all its names.
    """
    live = options.live_request(model, model_arg, trust, key, input_shape, input_file, input_value)
    show_grads(
        live.model_source(options.given_source(path)),
        live.input_spec(),
        options.selection(match, regex, exclude),
        ProbeRequest(grads=True, loss=loss, eval_mode=eval_mode, seed=seed),
        output_format,
    )


def show_grads(
    source: ModelSource,
    inputs: InputSpec,
    chosen: Selection,
    probe: ProbeRequest,
    output_format: OutputFormat | None,
) -> None:
    """Probe the module and show its gradients (``grads``, and ``list --grads``)."""
    from paramctl.change import draw_seed
    from paramctl.live.probe import probe_model
    from paramctl.render.live import announce_globals, grads_report

    env = Environment.current()
    result = probe_model(
        source,
        inputs,
        loss=probe.loss,
        seed=draw_seed(probe.seed),
        mode="eval" if probe.eval_mode else None,
        selection=chosen,
        on_globals=functools.partial(announce_globals, env),
    )
    emit(grads_report(result), env.resolve(output_format), env)
