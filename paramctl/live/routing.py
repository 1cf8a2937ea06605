"""Whether a command works on a checkpoint file or on a live module, decided without torch.

A checkpoint file is read as data. A live ``nn.Module`` is built from code (``--model``),
materialized by a dry forward pass (``--input-shape``, ``--input``), or loaded from a full
pickle the user trusts (``--trust``). These rules pick the route from the options alone, so
torch is imported only once the answer is "live"; a full pickle met without ``--trust`` is
refused, naming what loading it would import.

>>> LiveRequest().builds_module, LiveRequest(model="pkg.nets:mlp").builds_module
(False, True)
>>> lists_live(LiveRequest(), ProbeRequest(seed=0)), lists_live(LiveRequest(trust=True), ProbeRequest())
(True, False)
>>> open_or_trusted(lambda: "metadata", "m.pt", trust=False)
'metadata'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from paramctl.errors import UnsafePickle, UsageError

if TYPE_CHECKING:
    from paramctl.live.inputs import InputSpec
    from paramctl.live.model import ModelSource

T = TypeVar("T")


@dataclass(frozen=True)
class LiveRequest:
    """The options of live modules as given: where the module comes from, its probe input.

    ``model_args`` are ``KEY=VALUE`` texts and ``input_shapes`` ``2,4`` texts, parsed when
    the module is opened.
    """

    model: str | None = None
    model_args: tuple[str, ...] = ()
    trust: bool = False
    key: str | None = None
    input_shapes: tuple[str, ...] = ()
    input_file: str | None = None
    input_value: float | None = None

    @property
    def builds_module(self) -> bool:
        """A module is built or materialized: ``--model``, ``--input-shape`` or ``--input``."""
        return self.model is not None or bool(self.input_shapes) or self.input_file is not None

    def model_source(self, path: str | None) -> ModelSource:
        """Where the module comes from, with ``path`` (a checkpoint, or ``None``) loaded into it."""
        from paramctl.live.model import ModelSource
        from paramctl.usercode import parse_assignments

        return ModelSource(
            source=path,
            model=self.model,
            model_args=parse_assignments(self.model_args, option="--model-arg"),
            trust=self.trust,
            key=self.key,
        )

    def input_spec(self) -> InputSpec:
        from paramctl.live.inputs import InputSpec, parse_shape

        shapes = tuple(parse_shape(text) for text in self.input_shapes)
        return InputSpec(shapes, self.input_file, self.input_value)


@dataclass(frozen=True)
class ProbeRequest:
    """``list``'s options of the gradient probe (``paramctl grads``'s own as options)."""

    grads: bool = False
    loss: str = "sum"
    eval_mode: bool = False
    seed: int | None = None

    @property
    def given(self) -> bool:
        return self.grads or self.loss != "sum" or self.eval_mode or self.seed is not None


def lists_live(live: LiveRequest, probe: ProbeRequest) -> bool:
    """``list`` lists a live module when any option of live modules is given. ``--trust``
    alone is not one: it only matters for a full pickle, which the file route meets first.
    """
    return live.builds_module or bool(live.model_args) or live.input_value is not None or probe.given


def check_live_listing(
    probe: ProbeRequest, *, all_tensors: bool, extras: bool, stats: bool, tree: bool, sort: str
) -> None:
    """The options of ``list`` a live listing cannot take, refused with the reason."""
    if all_tensors or extras or stats:
        raise UsageError("--all, --extras and --stats list a checkpoint file, not a live module")
    if not probe.grads and (probe.loss != "sum" or probe.eval_mode):
        raise UsageError("--loss and --eval shape the gradient probe: add --grads")
    if probe.grads and (tree or sort != "file"):
        raise UsageError("--tree and --sort list tensors; the gradient table keeps module order")


def check_live_change(live: LiveRequest, *, copying: bool, all_tensors: bool, in_place: bool) -> None:
    """The options of ``init`` a change in a live module cannot take."""
    if copying:
        raise UsageError("--from copies between files; with --model, give the checkpoint as PATH")
    if all_tensors:
        raise UsageError("--all lists a file's every tensor; a live module has its own names")
    if in_place and live.model is None:
        from paramctl.change.destination import IN_PLACE_NEEDS_FILE

        raise UsageError(IN_PLACE_NEEDS_FILE)


@dataclass(frozen=True)
class TrustedPickle:
    """A full pickled object at ``source`` that ``--trust`` lets paramctl load as a live module."""

    source: str


def open_or_trusted(open_file: Callable[[], T], source: str, *, trust: bool) -> T | TrustedPickle:
    """``open_file()``, the file route; a full pickle there takes the live route with
    ``trust``, and without it is refused naming what loading it would import (nothing is
    executed either way until the live module is opened).
    """
    try:
        return open_file()
    except UnsafePickle as refused:
        if not trust:
            from paramctl.live.trust import refusal_for

            raise refusal_for(source, refused) from None
        return TrustedPickle(source)
