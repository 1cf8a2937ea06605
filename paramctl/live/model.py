"""Live models: an ``nn.Module`` built from code or a trusted pickle, loaded from a checkpoint.

This module builds and loads live modules and lists them (``list --model``);
:mod:`paramctl.live.tensors` describes their tensors, :mod:`paramctl.live.inputs` feeds them
and :mod:`paramctl.live.probe` runs them. It imports torch, so paramctl imports it only when
a command needs a live model.

>>> from torch import nn
>>> live = open_model(None, model="torch.nn:Linear", model_args={"in_features": 2, "out_features": 1})
>>> [t.name for t in live.tensors()], live.origin
(['weight', 'bias'], ...)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from paramctl.checkpoint import model_view
from paramctl.errors import CorruptCheckpoint, ModelCodeError, UnsafePickle, UsageError
from paramctl.formats import STDIN, STDIN_LABEL, read_checkpoint, spool_stdin
from paramctl.live.inputs import InputSpec, materialize, seeded
from paramctl.live.tensors import LiveTensor, is_lazy, live_tensors
from paramctl.live.trust import load_trusted, refusal
from paramctl.select import Selection, select
from paramctl.usercode import call_user, load_object
from paramctl.values import ValueReader


@dataclass
class LiveModel:
    """A module and where it came from: the code that built it, the file loaded into it."""

    module: nn.Module
    origin: str
    loaded_from: str | None = None
    notes: list[str] = field(default_factory=list)

    def tensors(self) -> list[LiveTensor]:
        return live_tensors(self.module)


def build_module(spec: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Call the factory ``spec`` names (``pkg.mod:make`` or ``file.py:Net``) with ``kwargs``.

    >>> build_module("torch.nn:Linear", {"in_features": 4, "out_features": 3})
    Linear(in_features=4, out_features=3, bias=True)
    """
    factory = load_object(spec, option="--model")
    built = call_user(factory, spec, option="--model", **dict(kwargs or {}))
    if not isinstance(built, nn.Module):
        raise ModelCodeError(f"--model {spec!r} returned {type(built).__name__}, not a torch.nn.Module")
    return built


def load_state(module: nn.Module, source: str | os.PathLike[str], *, key: str | None = None) -> list[str]:
    """Copy a checkpoint's tensors into ``module`` by name, strictly; return notes.

    The checkpoint is read by paramctl's own safe reader (no code runs), the model dict is
    found as ``list`` finds it (or chosen by ``key``), and values come one at a time from
    the mapped file. Lazy parameters take their shapes from the checkpoint.
    """
    checkpoint = read_checkpoint(source)
    view = model_view(checkpoint, key=key)
    notes = []
    if view.prefix:
        notes.append(f"loaded {view.prefix_name!r} of {checkpoint.label}")
    with ValueReader(checkpoint) as values:
        state = {entry.name: values.tensor(entry, copy=False) for entry in view.entries}
        load_state_dict(module, state, checkpoint.label)
    return notes


def load_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], label: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with a one-line error that names the
    missing, unexpected and mis-shaped tensors.
    """
    problems = _state_mismatch(module.state_dict(), state)
    if problems:
        raise CorruptCheckpoint(f"{label} does not fit the model: {problems}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1].strip()
        raise CorruptCheckpoint(f"{label} does not fit the model: {last}") from exc


def _state_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    """One line naming missing, unexpected and mis-shaped tensors (a few of each)."""

    def few(names: Sequence[str]) -> str:
        return ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")

    missing = [n for n in expected if n not in given]
    unexpected = [n for n in given if n not in expected]
    shapes = [
        f"{n} {list(given[n].shape)} vs {list(t.shape)}"
        for n, t in expected.items()
        if n in given and not is_lazy(t) and tuple(given[n].shape) != tuple(t.shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if unexpected:
        parts.append(f"unexpected {few(unexpected)}")
    if shapes:
        parts.append(f"shape differs: {few(shapes)}")
    if unexpected and missing and all(n.startswith("module.") for n in unexpected):
        parts.append("the checkpoint's names carry a 'module.' prefix (saved from DataParallel)")
    return "; ".join(parts)


def find_module(loaded: Any, key: str | None = None) -> nn.Module:
    """The module inside what a trusted pickle held: itself, or under ``key`` / a model key."""
    from paramctl.checkpoint import MODEL_KEYS, resolve_key

    node = loaded
    if key:
        for part in resolve_key(loaded, key):
            node = node[part]
    if isinstance(node, nn.Module):
        return node
    if isinstance(node, dict):
        for name in (*MODEL_KEYS, *node):
            if isinstance(node.get(name), nn.Module):
                return node[name]  # type: ignore[no-any-return]
    raise UsageError(
        f"the trusted pickle holds {type(node).__name__}, not a torch.nn.Module; "
        "give --model to build one and load its tensors into it"
    )


def _state_dict_of(loaded: Any, key: str | None) -> dict[str, torch.Tensor]:
    if isinstance(loaded, nn.Module):
        return loaded.state_dict()
    with contextlib.suppress(UsageError):
        return find_module(loaded, key).state_dict()
    node = loaded
    if isinstance(node, dict):
        from paramctl.checkpoint import MODEL_KEYS

        for name in MODEL_KEYS:
            if isinstance(node.get(name), dict):
                node = node[name]
                break
    if isinstance(node, dict) and all(isinstance(v, torch.Tensor) for v in node.values()):
        return dict(node)
    raise UsageError("the trusted pickle holds neither a module nor a state_dict")


def open_model(
    source: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    trust: bool = False,
    key: str | None = None,
    on_globals: Callable[[list[str]], None] | None = None,
) -> LiveModel:
    """A live module: built by ``model`` (and filled from ``source``), or unpickled from it.

    - ``model`` given: call the factory, then load ``source`` into it if there is one.
    - only ``source``: it must be a full pickled module, which loads only with
      ``trust=True``; ``on_globals`` hears what it imports before anything runs.

    A full pickle without ``trust`` raises :class:`UnsafePickle` (exit 4) naming the
    globals it would import; nothing was executed.
    """
    if model is None and source is None:
        raise UsageError("no model: give --model 'package.module:factory' or a trusted full-module pickle")
    if model is not None:
        module = build_module(model, model_args)
        live = LiveModel(module, f"--model {model}")
        if source is None:
            return live
        path, label = _local_path(source)
        try:
            live.notes += load_state(module, path, key=key)
        except UnsafePickle:
            if not trust:
                raise refusal(path, label) from None
            state = _state_dict_of(load_trusted(path, on_globals=on_globals), key)
            load_state_dict(module, state, label)
        live.loaded_from = label
        return live
    assert source is not None
    path, label = _local_path(source)
    if model_args:
        raise UsageError("--model-arg needs --model")
    try:
        read_checkpoint(path)
    except UnsafePickle:
        if not trust:
            raise refusal(path, label) from None
        module = find_module(load_trusted(path, on_globals=on_globals), key)
        return LiveModel(module, f"trusted pickle {label}", loaded_from=label)
    raise UsageError(
        f"{label} holds tensors, not a module: give --model 'package.module:factory' to build "
        "the model they belong to"
    )


def _local_path(source: str | os.PathLike[str]) -> tuple[Path, str]:
    if str(source) == STDIN:
        return spool_stdin(), STDIN_LABEL
    return Path(source), str(source)


# -- inputs and dry runs -------------------------------------------------------------------


# -- what the commands ask for ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelSource:
    """Where a live module comes from: ``--model``/``--model-arg``, a checkpoint, ``--trust``."""

    source: str | None = None
    model: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    trust: bool = False
    key: str | None = None

    def open(self, on_globals: Callable[[list[str]], None] | None = None) -> LiveModel:
        return open_model(
            self.source,
            model=self.model,
            model_args=self.model_args,
            trust=self.trust,
            key=self.key,
            on_globals=on_globals,
        )


@dataclass(frozen=True)
class LiveListing:
    """What ``list --model`` shows: every name of the module's tensors, and their origin."""

    origin: str
    loaded_from: str | None
    rows: list[LiveTensor]
    materialized: list[str] = field(default_factory=list)
    inputs: str | None = None

    @property
    def lazy(self) -> list[str]:
        return [row.name for row in self.rows if not row.initialized]

    def to_dict(self) -> dict[str, Any]:
        counts = {kind: sum(row.kind == kind for row in self.rows) for kind in ("parameter", "buffer")}
        return {
            "model": self.origin,
            "loaded_from": self.loaded_from,
            "inputs": self.inputs,
            "materialized": self.materialized,
            "uninitialized": self.lazy,
            "tensors": [row.to_dict() for row in self.rows],
            "counts": counts,
        }


def live_listing(
    model: ModelSource,
    inputs: InputSpec = InputSpec(),
    selection: Selection = Selection(),
    *,
    seed: int | None = None,
    sort: Literal["file", "name", "size", "numel"] = "file",
    on_globals: Callable[[list[str]], None] | None = None,
) -> LiveListing:
    """Open a live module, materialize lazy layers when ``inputs`` are given, and list it.

    Lazy parameters without inputs are listed with an unknown shape. The selection is
    applied after materialization, so names keep their meaning.
    """
    with seeded(seed):
        live = model.open(on_globals)
        materialized: list[str] = []
        described = None
        if inputs:
            prepared = inputs.make(live.module)
            described = prepared.describe()
            materialized = materialize(live.module, prepared)
    rows = select(live.tensors(), selection)
    if sort == "name":
        rows.sort(key=lambda row: row.name)
    elif sort in ("size", "numel"):
        # Unknown (lazy) sizes go last; sorted() is stable, so ties keep module order.
        rows.sort(key=lambda row: -((row.nbytes if sort == "size" else row.numel) or -1))
    return LiveListing(live.origin, live.loaded_from, rows, materialized, described)
