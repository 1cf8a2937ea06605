"""Gluon's ``collect_params`` and ``initialize`` for PyTorch modules.

``collect(net, '.*weight')`` gathers the named parameters a regular expression selects;
``.initialize(scheme, force_reinit=...)`` fills them, refusing (as Gluon does) to overwrite
parameters that already hold values unless ``force_reinit=True``. A PyTorch module's
parameters hold values from construction, except lazy ones (``nn.LazyLinear``): those get
the scheme when their first forward pass gives them a shape, which is Gluon's deferred
initialization.

>>> import torch
>>> from torch import nn
>>> torch.manual_seed(0) and None
>>> net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
>>> weights = collect(net, '.*weight')
>>> weights
Sequential (
  Parameter 0.weight (shape=(256, 20), dtype=float32)
  Parameter 2.weight (shape=(10, 256), dtype=float32)
)
>>> weights.initialize('normal', std=0.01)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
paramctl.errors.AlreadyInitialized: 0.weight, 2.weight already initialized; pass force_reinit=True ...
>>> weights.initialize('constant', val=1.0, force_reinit=True)['0.weight'].data()[0, :4]
tensor([1., 1., 1., 1.])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from paramctl.change import Refusals, fill_, generator_for, incompatibility
from paramctl.checkpoint import TensorEntry
from paramctl.errors import AlreadyInitialized, IncompatibleTensors, UsageError
from paramctl.live.inputs import seeded
from paramctl.live.tensors import dtype_name, is_lazy, owner_of, unique_parameters
from paramctl.schemes.catalog import DefaultScheme, InitScheme, make_scheme
from paramctl.select import Selection, nothing_selected

SchemeLike = str | Callable[..., Any] | InitScheme


def as_entry(name: str, tensor: torch.Tensor) -> TensorEntry:
    """A live tensor described as a checkpoint entry, so the checks of ``init`` apply to it."""
    return TensorEntry(
        name, (name,), tuple(tensor.shape), dtype_name(tensor.dtype), tuple(tensor.stride()), f"live:{name}"
    )


class LiveParameter:
    """One parameter of a live module, under all its names; Gluon's ``Parameter``.

    >>> LiveParameter(("0.weight",), nn.Parameter(torch.zeros(256, 20)), nn.Linear(20, 256))
    Parameter 0.weight (shape=(256, 20), dtype=float32)
    """

    def __init__(self, names: tuple[str, ...], param: nn.Parameter, owner: nn.Module) -> None:
        self.names = names
        self.param = param
        self.owner = owner

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def shape(self) -> tuple[int, ...] | None:
        """``None`` until a lazy parameter is materialized."""
        return None if is_lazy(self.param) else tuple(self.param.shape)

    @property
    def dtype(self) -> str:
        return dtype_name(self.param.dtype)

    @property
    def initialized(self) -> bool:
        return not is_lazy(self.param)

    def data(self) -> torch.Tensor:
        """The values (detached: changing them does not record gradients)."""
        return self.param.detach()

    def grad(self) -> torch.Tensor | None:
        return self.param.grad

    def set_data(self, value: torch.Tensor | float) -> LiveParameter:
        """Overwrite the values, like Gluon's ``set_data``: ``p.set_data(p.data() + 1)``."""
        if not self.initialized:
            raise UsageError(f"{self.name} is not initialized yet (lazy): run a forward pass first")
        with torch.no_grad():
            self.param.copy_(torch.as_tensor(value, dtype=self.param.dtype).expand_as(self.param))
        return self

    def __repr__(self) -> str:
        shape = "unknown" if self.shape is None else repr(self.shape)
        extra = "" if self.initialized else ", uninitialized"
        shared = f", shared with {', '.join(self.names[1:])}" if len(self.names) > 1 else ""
        return f"Parameter {self.name} (shape={shape}, dtype={self.dtype}{extra}{shared})"


class ParameterCollection(Mapping[str, LiveParameter]):
    """The parameters :func:`collect` selected, by name; Gluon's ``ParameterDict``.

    Indexing accepts any name of a shared parameter; iteration gives each parameter once.
    """

    def __init__(self, module: nn.Module, parameters: list[LiveParameter]) -> None:
        self.module = module
        self._parameters = parameters

    def __getitem__(self, name: str) -> LiveParameter:
        for parameter in self._parameters:
            if name in parameter.names:
                return parameter
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (parameter.name for parameter in self._parameters)

    def __len__(self) -> int:
        return len(self._parameters)

    def __repr__(self) -> str:
        lines = [f"  {parameter!r}" for parameter in self._parameters]
        return "\n".join([f"{type(self.module).__name__} (", *lines, ")"])

    def names(self) -> list[str]:
        """Every name of every selected parameter, in module order."""
        return [name for parameter in self._parameters for name in parameter.names]

    def shared(self) -> list[tuple[str, ...]]:
        """The names that are one parameter, a group per shared parameter.

        >>> linear = nn.Linear(1, 1, bias=False)
        >>> collect(nn.Sequential(linear, linear)).shared()
        [('0.weight', '1.weight')]
        """
        return [parameter.names for parameter in self._parameters if len(parameter.names) > 1]

    def initialize(
        self,
        scheme: SchemeLike = "default",
        *,
        force_reinit: bool = False,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        **params: Any,
    ) -> ParameterCollection:
        """Fill the selected parameters with ``scheme``; returns the collection.

        ``scheme`` is what ``paramctl init --scheme`` takes (see :mod:`paramctl.schemes.catalog`): a
        ``torch.nn.init`` name (``normal``, ``xavier_uniform``...) with its parameters as
        keywords or in the text (``"normal(std=0.01)"``), a function ``f(tensor, generator)``,
        or ``default``: the owning layer's own ``reset_parameters()``, which gives exactly
        what PyTorch gives that layer (other tensors of the layer keep their values).

        Parameters that hold values are refused unless ``force_reinit=True``; nothing
        changes then. Lazy parameters are initialized when a forward pass materializes
        them (unless a ``load_state_dict`` fills them first). ``seed=N`` is
        ``generator=torch.Generator().manual_seed(N)``; for ``default``, which draws from
        torch's global generator, it seeds that generator for the call and restores it.
        Without either, torch's global generator is used, as ``torch.nn.init`` does.
        Parameters are filled in module order, one generator for all.
        """
        if seed is not None and generator is not None:
            raise UsageError("give seed or generator, not both")
        chosen = make_scheme(scheme, **params)
        if isinstance(chosen, DefaultScheme) and generator is not None:
            raise UsageError(
                "default calls each layer's reset_parameters(), which draws from torch's global "
                "generator: pass seed= instead of generator="
            )
        ready = [p for p in self._parameters if p.initialized]
        if not force_reinit and ready:
            raise AlreadyInitialized([p.name for p in ready])
        if not isinstance(chosen, DefaultScheme):
            _check(chosen, ready)
        gen = generator if generator is not None else generator_for(seed)
        for parameter in self._parameters:
            if not parameter.initialized:
                _defer(parameter, chosen, gen)
        if isinstance(chosen, DefaultScheme):
            with seeded(seed):
                reset_with_owners([(p.name, p.param, p.owner) for p in ready])
        else:
            for parameter in ready:
                fill_(parameter.param, chosen, gen)
        return self


def _check(scheme: InitScheme, parameters: list[LiveParameter]) -> None:
    """Refuse, before anything changes, parameters the scheme does not fit (``xavier_uniform``
    on a 1-D bias, a random scheme on an integer tensor), naming them all."""
    refusals = Refusals(skip=False)
    for parameter in parameters:
        reason = incompatibility(as_entry(parameter.name, parameter.param), scheme, None, None)
        if reason is not None:
            refusals.refuse(parameter.name, reason)
    refusals.check("nothing was changed")


def reset_method(owner: nn.Module) -> Callable[[], Any] | None:
    """The module's own way to initialize itself: ``reset_parameters()`` (or the private
    ``_reset_parameters()`` some torch modules, like ``MultiheadAttention``, have instead)."""
    reset = getattr(owner, "reset_parameters", None) or getattr(owner, "_reset_parameters", None)
    return reset if callable(reset) else None


def reset_with_owners(items: Sequence[tuple[str, torch.Tensor, nn.Module]]) -> None:
    """Run each owner's ``reset_parameters()`` once, in the order given, keeping every other
    tensor under that owner (unselected parameters, running statistics, a child's bias that
    the owner's reset also touches) as it was. ``items`` are (name, tensor, owning module).

    Every owner is checked before any is reset, so a refusal changes nothing.
    """
    owners: dict[int, nn.Module] = {}
    for _, _, owner in items:
        owners.setdefault(id(owner), owner)
    without = [name for name, _, owner in items if reset_method(owner) is None]
    if without:
        kinds = sorted({type(owner).__name__ for _, _, owner in items if reset_method(owner) is None})
        raise IncompatibleTensors(
            f"{', '.join(kinds)} has no reset_parameters() for default: {', '.join(without[:6])}; "
            "choose a scheme for them"
        )
    wanted = {id(tensor) for _, tensor, _ in items}
    for owner in owners.values():
        reset = reset_method(owner)
        assert reset is not None
        kept = [
            (tensor, tensor.detach().clone())
            for tensor in (*owner.parameters(), *owner.buffers())
            if id(tensor) not in wanted and not is_lazy(tensor)
        ]
        with torch.no_grad():
            reset()
            for tensor, value in kept:
                tensor.copy_(value)


def _defer(parameter: LiveParameter, scheme: InitScheme, generator: torch.Generator | None) -> None:
    """Initialize a lazy parameter right after the forward pass that gives it a shape, unless
    ``load_state_dict`` gives it values first.
    """
    owner = parameter.owner
    pending = [True]

    def after_materialize(module: nn.Module, args: Any) -> None:
        if pending[0] and not is_lazy(parameter.param):
            pending[0] = False
            # For "default" the lazy layer's own materialization ran reset_parameters().
            if not isinstance(scheme, DefaultScheme):
                fill_(parameter.param, scheme, generator)
        if not pending[0]:
            forward_hook.remove()

    def cancel(module: nn.Module, incompatible: Any) -> None:
        # torch iterates over these hooks while calling them, so this one stays, inert.
        if pending[0] and not is_lazy(parameter.param):
            pending[0] = False
            forward_hook.remove()

    # Registered after the lazy layer's own hook, so it runs once the shape is known.
    forward_hook = owner.register_forward_pre_hook(after_materialize)
    owner.register_load_state_dict_post_hook(cancel)  # type: ignore[no-untyped-call]


def collect(
    module: nn.Module,
    regex: str | None = None,
    *,
    glob: str | None = None,
    exclude: str | None = None,
) -> ParameterCollection:
    """The parameters of ``module`` whose names ``regex`` finds (``re.search``, like Gluon's
    ``collect_params('.*weight')``) or ``glob`` matches; all of them by default.

    A parameter with several names (a shared layer) is taken once when any name matches.
    A selection that matches nothing raises :class:`~paramctl.errors.NothingSelected`.
    """
    selection = Selection(
        match=(glob,) if glob else (),
        regex=(regex,) if regex else (),
        exclude=(exclude,) if exclude else (),
    )
    chosen: list[LiveParameter] = []
    everything: list[str] = []
    for names, param in unique_parameters(module):
        everything += names
        if any(selection.matches(name) for name in names):
            owner, _ = owner_of(module, names[0])
            chosen.append(LiveParameter(tuple(names), param, owner))
    if not chosen and everything:
        raise nothing_selected(selection, everything)
    return ParameterCollection(module, chosen)
