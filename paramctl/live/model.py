"""Live models: an ``nn.Module`` built from code or a trusted pickle, seen by its own names.

A checkpoint only holds tensors; a live module also knows which are parameters and which
buffers, which require gradients, which module owns each, which names are one tensor, and
which lazy parameters still wait for their shape. This module builds and loads live modules
and describes their tensors; :mod:`paramctl.live.probe` runs them.

It imports torch, so paramctl imports it only when a command needs a live model.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.LazyLinear(3), nn.ReLU(), nn.Linear(3, 1))
>>> [(t.name, t.shape) for t in live_tensors(net)]
[('0.weight', None), ('0.bias', None), ('2.weight', (1, 3)), ('2.bias', (1,))]
>>> materialize(net, random_inputs(net, [(2, 4)]))
['0.weight', '0.bias']
>>> [(t.name, t.shape) for t in live_tensors(net)]
[('0.weight', (3, 4)), ('0.bias', (3,)), ('2.weight', (1, 3)), ('2.bias', (1,))]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.parameter import is_lazy as _is_lazy

from paramctl.checkpoint import model_view
from paramctl.errors import CorruptCheckpoint, ModelCodeError, UnsafePickle, UsageError
from paramctl.formats import STDIN, STDIN_LABEL, read_checkpoint, spool_stdin
from paramctl.live.trust import load_trusted, refusal
from paramctl.select import Selection, select
from paramctl.usercode import call_user, load_object
from paramctl.values import ValueReader

TensorKind = Literal["parameter", "buffer"]


@dataclass(frozen=True)
class LiveTensor:
    """One name of a live module's tensors: what ``list --model`` shows per row.

    ``shape`` is ``None`` while a lazy parameter waits for its first input.
    """

    name: str
    kind: TensorKind
    shape: tuple[int, ...] | None
    dtype: str
    requires_grad: bool
    module: str
    shared_with: tuple[str, ...] = ()
    persistent: bool = True

    @property
    def initialized(self) -> bool:
        return self.shape is not None

    @property
    def numel(self) -> int | None:
        if self.shape is None:
            return None
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def nbytes(self) -> int | None:
        numel = self.numel
        return None if numel is None else numel * torch.empty((), dtype=_dtype(self.dtype)).element_size()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": None if self.shape is None else list(self.shape),
            "dtype": self.dtype,
            "numel": self.numel,
            "bytes": self.nbytes,
            "requires_grad": self.requires_grad,
            "module": self.module,
            "shared_with": list(self.shared_with),
            "initialized": self.initialized,
            "persistent": self.persistent,
        }


def _dtype(name: str) -> torch.dtype:
    return getattr(torch, name)  # type: ignore[no-any-return]


def is_lazy(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a lazy layer's parameter or buffer still waiting for its shape.

    >>> is_lazy(nn.LazyLinear(3).weight), is_lazy(nn.Linear(2, 3).weight)
    (True, False)
    """
    return bool(_is_lazy(tensor))


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` as paramctl spells dtypes everywhere: ``float32``."""
    return str(dtype).removeprefix("torch.")


def _module_label(module: nn.Module) -> str:
    """The owner's class and the arguments that size it, e.g. ``LazyLinear(in_features=0, ...)``."""
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if extra and len(extra) <= 60 else type(module).__name__


def live_tensors(module: nn.Module) -> list[LiveTensor]:
    """Every parameter and buffer under every name, in ``state_dict`` order.

    A module reachable by two paths (``Sequential(linear, linear)``) gives its tensors two
    names; each lists the other in ``shared_with``. Non-persistent buffers (not saved in a
    ``state_dict``) are included and marked.
    """
    rows: list[tuple[str, TensorKind, torch.Tensor, nn.Module, bool]] = []
    for prefix, owner in module.named_modules(remove_duplicate=False):
        base = f"{prefix}." if prefix else ""
        for attr, param in owner._parameters.items():
            if param is not None:
                rows.append((base + attr, "parameter", param, owner, True))
        hidden = owner._non_persistent_buffers_set
        for attr, buffer in owner._buffers.items():
            if buffer is not None:
                rows.append((base + attr, "buffer", buffer, owner, attr not in hidden))
    names_of: dict[int, list[str]] = {}
    for name, _, tensor, _, _ in rows:
        names_of.setdefault(id(tensor), []).append(name)
    return [
        LiveTensor(
            name=name,
            kind=kind,
            shape=None if is_lazy(tensor) else tuple(tensor.shape),
            dtype=dtype_name(tensor.dtype),
            requires_grad=tensor.requires_grad,
            module=_module_label(owner),
            shared_with=tuple(other for other in names_of[id(tensor)] if other != name),
            persistent=persistent,
        )
        for name, kind, tensor, owner, persistent in rows
    ]


def unique_parameters(module: nn.Module) -> list[tuple[list[str], nn.Parameter]]:
    """Each distinct parameter once, with all its names (first name first).

    >>> linear = nn.Linear(1, 1, bias=False)
    >>> [names for names, _ in unique_parameters(nn.Sequential(linear, linear))]
    [['0.weight', '1.weight']]
    """
    found: dict[int, tuple[list[str], nn.Parameter]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        found.setdefault(id(param), ([], param))[0].append(name)
    return list(found.values())


def owner_of(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The submodule that holds ``name`` directly, and the attribute it holds it under."""
    path, _, attr = name.rpartition(".")
    return (module.get_submodule(path) if path else module), attr


def has_lazy(module: nn.Module) -> bool:
    """Whether any parameter or buffer still waits for its shape."""
    return any(is_lazy(t) for t in (*module.parameters(), *module.buffers()))


# -- building and loading ---------------------------------------------------------------


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


@dataclass
class Inputs:
    """The arguments a forward pass gets, and how to describe them."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """Each argument as ``name: [shape] dtype``, positional ones first.

        >>> Inputs((torch.zeros(2, 4),)).describe()
        'x: [2, 4] float32'
        """
        parts = [_describe_value(f"x{i}" if len(self.args) > 1 else "x", a) for i, a in enumerate(self.args)]
        parts += [_describe_value(k, v) for k, v in self.kwargs.items()]
        return ", ".join(parts)

    def call(self, module: nn.Module) -> Any:
        return module(*self.args, **self.kwargs)


def _describe_value(label: str, value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{label}: {list(value.shape)} {dtype_name(value.dtype)}"
    return f"{label}: {type(value).__name__}"


def parse_shape(text: str) -> tuple[int, ...]:
    """``2,4`` (or ``2x4``) as a shape.

    >>> parse_shape("2,4"), parse_shape("1x3x32x32"), parse_shape("8")
    ((2, 4), (1, 3, 32, 32), (8,))
    """
    parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"--input-shape {text!r}: expected sizes like 2,4")
    return tuple(int(p) for p in parts)


def input_dtype(module: nn.Module) -> torch.dtype:
    """The dtype random inputs take: the module's first floating parameter's, else float32."""
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def random_inputs(module: nn.Module, shapes: Sequence[Sequence[int]], *, fill: float | None = None) -> Inputs:
    """One ``torch.rand`` tensor per shape, drawn in order from torch's global generator, in
    the dtype of the module's parameters; with ``fill``, tensors of that constant instead.

    Drawing from the global generator is what makes ``torch.manual_seed(n); net = make();
    X = torch.rand(2, 4)`` and a seeded paramctl run the same computation.

    >>> random_inputs(nn.Linear(2, 1), [(1, 2)], fill=1.0).args
    (tensor([[1., 1.]]),)
    """
    if not shapes:
        raise UsageError("an input is needed: give --input-shape 2,4 or --input FILE.pt")
    dtype = input_dtype(module)
    if fill is not None:
        return Inputs(tuple(torch.full(tuple(shape), fill, dtype=dtype) for shape in shapes))
    return Inputs(tuple(torch.rand(*shape, dtype=dtype) for shape in shapes))


def load_inputs(path: str | os.PathLike[str]) -> Inputs:
    """Inputs saved with ``torch.save``: a tensor, a tuple/list of them (positional), or a dict
    of keyword arguments. Loaded with ``weights_only=True``: plain data only.
    """
    import pickle

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UsageError(f"--input {os.fspath(path)!r}: no such file") from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptCheckpoint(
            f"--input {os.fspath(path)!r}: not a torch.save file of plain tensors ({reason})"
        ) from exc
    if isinstance(loaded, torch.Tensor):
        return Inputs((loaded,))
    if isinstance(loaded, list | tuple):
        return Inputs(tuple(loaded))
    if isinstance(loaded, dict) and all(isinstance(k, str) for k in loaded):
        return Inputs((), dict(loaded))
    raise UsageError(f"--input {os.fspath(path)!r}: expected a tensor, a list of tensors or a dict")


@contextlib.contextmanager
def dry_run(module: nn.Module) -> Iterator[None]:
    """Run a forward pass that leaves the module as it was: eval mode, no autograd, and
    every module's train/eval flag restored after (so no running statistics move).
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for submodule, training in modes:
            submodule.training = training


def materialize(module: nn.Module, inputs: Inputs) -> list[str]:
    """Give lazy parameters their shapes with one dry forward pass; return the names that
    got one (the deferred initialization of ``LazyLinear`` and friends).
    """
    before = {name for name, tensor in _named_tensors(module) if is_lazy(tensor)}
    if not before:
        return []
    with dry_run(module):
        forward(module, inputs)
    still = {name for name, tensor in _named_tensors(module) if is_lazy(tensor)}
    if still:
        raise UsageError(f"the forward pass did not reach {', '.join(sorted(still)[:4])}; they stay lazy")
    return [name for name, _ in _named_tensors(module) if name in before]


def _named_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)


def forward(module: nn.Module, inputs: Inputs) -> Any:
    """``module(*inputs)``; a failure names the inputs, which are the usual cause."""
    try:
        return inputs.call(module)
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the forward pass failed with {inputs.describe()}: {first}") from exc


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's global generator for the block and restore its state after.

    ``None`` leaves the generator alone.
    """
    if seed is None:
        yield
        return
    if not 0 <= seed < 2**64:
        raise UsageError(f"--seed {seed}: a seed is a whole number from 0 to 2**64-1")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def fresh_seed() -> int:
    """A seed to use and report when none was given, so the run can be repeated (drawn as
    ``paramctl init`` draws its own)."""
    from paramctl.change.engine import make_generator

    return make_generator(None)[1]


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
class InputSpec:
    """The probe input: ``torch.rand`` of ``shapes`` (``--input-shape``), or those shapes
    filled with ``fill`` (``--input-value``), or tensors loaded from ``path`` (``--input``).
    """

    shapes: tuple[tuple[int, ...], ...] = ()
    path: str | None = None
    fill: float | None = None

    def __post_init__(self) -> None:
        if self.shapes and self.path:
            raise UsageError("--input-shape and --input exclude each other")
        if self.fill is not None and not self.shapes:
            raise UsageError("--input-value fills the --input-shape input: give --input-shape too")

    def __bool__(self) -> bool:
        return bool(self.shapes or self.path)

    def make(self, module: nn.Module) -> Inputs:
        if self.path:
            return load_inputs(self.path)
        return random_inputs(module, self.shapes, fill=self.fill)


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
