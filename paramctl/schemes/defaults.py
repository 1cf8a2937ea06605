"""``--scheme default``: what PyTorch itself gives each tensor, inferred from names and shapes.

A bare checkpoint does not say which module a tensor belonged to, so the layer kind is read
from the name's last part, its dimensions and its siblings (the tensors of the same module):

=========================================  ==============================================
tensor                                     PyTorch's own initialization (``reset_parameters``)
=========================================  ==============================================
2-D ``weight`` (Linear)                    ``kaiming_uniform(a=√5)``
3/4/5-D ``weight`` (Conv, ConvTranspose)   ``kaiming_uniform(a=√5)``
``bias`` beside a 2-D+ weight              ``uniform(±1/√fan_in)``, fan_in from that weight
2-D ``weight`` of an embedding             ``normal(0, 1)`` (module name has ``embed``,
                                           ``wte``, ``wpe``, ``emb`` or ``shared``)
1-D ``weight`` / ``bias`` (norm layers)    ``ones`` / ``zeros``
``running_mean`` / ``running_var``         ``zeros`` / ``ones``
``num_batches_tracked``                    ``zeros``
MultiheadAttention ``in_proj_weight``      ``xavier_uniform``; ``in_proj_bias`` and
                                           ``out_proj.bias`` ``zeros``; ``bias_k/v``
                                           ``xavier_normal``
RNN/LSTM/GRU ``weight_ih_l0`` etc.         ``uniform(±1/√hidden_size)``
PReLU ``weight``                           ``constant(0.25)``
=========================================  ==============================================

A storage shared by several names (tied embedding and output head) gets the embedding's
rule, as in a model that assigns ``head.weight = embed.weight`` after building both.
Anything else has no inferred rule: :func:`infer_defaults` says so, and the caller refuses
(or skips) it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paramctl.checkpoint import TensorEntry
from paramctl.schemes.catalog import SCHEMES, TorchScheme, bind
from paramctl.storage import by_storage

_EMBEDDING_PART = re.compile(r"(embed|^wte$|^wpe$|^emb$|^shared$)", re.IGNORECASE)
_RNN_LEAF = re.compile(r"^(weight|bias)_(ih|hh|hr)(_l\d+)?(_reverse)?$")
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass(frozen=True)
class LayerGuess:
    """The layer a tensor was inferred to belong to and PyTorch's scheme for it."""

    layer: str
    role: str
    scheme: TorchScheme | None
    why: str

    def describe(self) -> str:
        target = self.scheme.describe() if self.scheme else "no rule"
        return f"{self.layer} {self.role} → {target}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "role": self.role,
            "scheme": self.scheme.describe() if self.scheme else None,
            "why": self.why,
        }


def _scheme(name: str, **values: Any) -> TorchScheme:
    return bind(SCHEMES[name], (), values)


def _uniform_bound(bound: float) -> TorchScheme:
    return _scheme("uniform", a=-bound, b=bound)


def fan_in(shape: Sequence[int]) -> int:
    """torch's fan_in of a weight: ``shape[1]`` times the receptive field.

    >>> fan_in((16, 4, 3, 3))
    36
    """
    return shape[1] * math.prod(shape[2:]) if len(shape) >= 2 else 0


def _split(name: str) -> tuple[str, str]:
    module, _, leaf = name.rpartition(".")
    return module, leaf


def _is_embedding(module: str) -> bool:
    return any(_EMBEDDING_PART.search(part) for part in module.split(".") if part)


def infer_defaults(entries: Sequence[TensorEntry]) -> dict[str, LayerGuess]:
    """For every entry, the layer kind and PyTorch's initialization of it.

    Pass all tensors of the model (not only the selected ones): a bias needs its weight.

    >>> w = TensorEntry("fc.weight", ("fc", "weight"), (3, 4), "float32", (4, 1), "0")
    >>> b = TensorEntry("fc.bias", ("fc", "bias"), (3,), "float32", (1,), "1")
    >>> guesses = infer_defaults([w, b])
    >>> guesses["fc.weight"].describe()
    'Linear weight → kaiming_uniform(a=2.23606797749979, mode=fan_in, nonlinearity=leaky_relu)'
    >>> guesses["fc.bias"].describe()
    'Linear bias → uniform(a=-0.5, b=0.5)'
    """
    modules: dict[str, dict[str, TensorEntry]] = {}
    for entry in entries:
        module, leaf = _split(entry.name)
        modules.setdefault(module, {})[leaf] = entry
    guesses = {entry.name: _guess(entry, modules) for entry in entries}
    return _unify_shared(entries, guesses)


def _guess(entry: TensorEntry, modules: dict[str, dict[str, TensorEntry]]) -> LayerGuess:
    module, leaf = _split(entry.name)
    siblings = modules.get(module, {})
    ndim = len(entry.shape)
    parent = module.rpartition(".")[0] if module.endswith("out_proj") or module == "out_proj" else None

    if leaf == "num_batches_tracked":
        return LayerGuess("BatchNorm", "counter", _scheme("zeros"), "named num_batches_tracked")
    if leaf in ("running_mean", "running_var"):
        rule = "zeros" if leaf == "running_mean" else "ones"
        return LayerGuess("BatchNorm", leaf, _scheme(rule), f"named {leaf}")
    if leaf in _ATTENTION_WEIGHTS:
        return LayerGuess("MultiheadAttention", leaf, _scheme("xavier_uniform"), f"named {leaf}")
    if leaf == "in_proj_bias":
        return LayerGuess("MultiheadAttention", leaf, _scheme("zeros"), "named in_proj_bias")
    if leaf in ("bias_k", "bias_v"):
        return LayerGuess("MultiheadAttention", leaf, _scheme("xavier_normal"), f"named {leaf}")
    if (
        parent is not None
        and leaf == "bias"
        and any(w in modules.get(parent, {}) for w in _ATTENTION_WEIGHTS)
    ):
        return LayerGuess("MultiheadAttention", "out_proj.bias", _scheme("zeros"), "out_proj of an attention")
    if _RNN_LEAF.match(leaf):
        return _rnn(leaf, siblings)
    if any("bilinear" in part.lower() for part in module.split(".")) and leaf in ("weight", "bias"):
        weight = siblings.get("weight")
        if weight is not None and len(weight.shape) == 3 and weight.shape[1] > 0:
            bound = 1 / math.sqrt(weight.shape[1])
            return LayerGuess("Bilinear", leaf, _uniform_bound(bound), f"in1_features {weight.shape[1]}")
    if leaf in ("weight", "gamma"):
        return _weight(entry, module, leaf, ndim)
    if leaf in ("bias", "beta"):
        return _bias(entry, siblings, leaf, ndim)
    return LayerGuess("unknown", leaf or entry.name, None, f"no rule for a {ndim}-D tensor named {leaf!r}")


def _weight(entry: TensorEntry, module: str, leaf: str, ndim: int) -> LayerGuess:
    if ndim == 2 and leaf == "weight":
        if _is_embedding(module):
            return LayerGuess(
                "Embedding", "weight", _scheme("normal"), "2-D weight, module named like an embedding"
            )
        return LayerGuess("Linear", "weight", _scheme("kaiming_uniform", a=math.sqrt(5)), "2-D weight")
    if 3 <= ndim <= 5 and leaf == "weight":
        kind = f"Conv{ndim - 2}d"
        return LayerGuess(kind, "weight", _scheme("kaiming_uniform", a=math.sqrt(5)), f"{ndim}-D weight")
    if ndim == 1:
        if any("prelu" in part.lower() for part in module.split(".")):
            return LayerGuess("PReLU", "weight", _scheme("constant", val=0.25), "1-D weight of a PReLU")
        return LayerGuess("norm", leaf, _scheme("ones"), f"1-D {leaf}")
    return LayerGuess("unknown", leaf, None, f"no rule for a {ndim}-D {leaf}")


def _bias(entry: TensorEntry, siblings: dict[str, TensorEntry], leaf: str, ndim: int) -> LayerGuess:
    weight = siblings.get("weight" if leaf == "bias" else "gamma")
    if ndim != 1:
        return LayerGuess("unknown", leaf, None, f"no rule for a {ndim}-D {leaf}")
    if weight is None:
        return LayerGuess("unknown", leaf, None, "a bias without a weight beside it")
    if len(weight.shape) == 1:
        return LayerGuess("norm", leaf, _scheme("zeros"), f"beside a 1-D {weight.name}")
    if len(weight.shape) >= 2:
        fan = fan_in(weight.shape)
        bound = 1 / math.sqrt(fan) if fan > 0 else 0.0
        kind = "Linear" if len(weight.shape) == 2 else f"Conv{len(weight.shape) - 2}d"
        return LayerGuess(kind, "bias", _uniform_bound(bound), f"fan_in {fan} from {weight.name}")
    return LayerGuess("unknown", leaf, None, f"beside a 0-D {weight.name}")


def _rnn(leaf: str, siblings: dict[str, TensorEntry]) -> LayerGuess:
    suffix = _RNN_LEAF.match(leaf)
    assert suffix is not None
    layer = suffix.group(3) or ""
    projection = siblings.get(f"weight_hr{layer}") or next(
        (e for name, e in siblings.items() if name.startswith("weight_hr")), None
    )
    hidden_from = projection or siblings.get(f"weight_hh{layer}")
    if hidden_from is None or len(hidden_from.shape) != 2:
        return LayerGuess("RNN", leaf, None, "no weight_hh beside it to give hidden_size")
    hidden = hidden_from.shape[1]
    bound = 1 / math.sqrt(hidden) if hidden > 0 else 0.0
    return LayerGuess(
        "RNN/LSTM/GRU", leaf, _uniform_bound(bound), f"hidden_size {hidden} from {hidden_from.name}"
    )


def _unify_shared(entries: Sequence[TensorEntry], guesses: dict[str, LayerGuess]) -> dict[str, LayerGuess]:
    """Tied names (one storage) get one rule: the embedding's if one of them is one."""
    for group in by_storage(entries).values():
        if len(group) < 2:
            continue
        embedding = next((e for e in group if guesses[e.name].layer == "Embedding"), None)
        if embedding is None:
            continue
        for entry in group:
            if entry is not embedding and entry.shape == embedding.shape:
                chosen = guesses[embedding.name]
                guesses[entry.name] = LayerGuess(
                    chosen.layer, chosen.role, chosen.scheme, f"tied to the embedding {embedding.name}"
                )
    return guesses
