"""Fitting a checkpoint to a model: the names and shapes of a checkpoint against the
model's ``state_dict``, as ``load_state_dict`` would meet them, and the renaming that makes
them fit.

``load_state_dict`` fails with missing keys, unexpected keys and size mismatches; most of
the time the names are right but for a prefix (``module.`` from ``nn.DataParallel``,
``_orig_mod.`` from ``torch.compile``, ``model.`` from a Lightning module) or a prefix the
model has that the checkpoint lacks. :func:`fit_model` tries the prefixes the names
themselves suggest and keeps the renaming that makes the most names fit, to be given to
``paramctl convert`` as ``--strip-prefix``/``--rename``.

>>> checkpoint = {"module.fc.weight": (2, 4), "module.fc.bias": (2,)}
>>> fit = fit_model(checkpoint, {"fc.weight": (2, 4), "fc.bias": (2,)}, source="dp.pt")
>>> fit.renaming.options(), fit.fits
(['--strip-prefix', 'module.'], True)
>>> fit.command()
'paramctl convert dp.pt dp.fit.pt --strip-prefix module.'
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from paramctl.errors import UsageError
from paramctl.rename import NameMap
from paramctl.units import plural

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]
# The model's shape of a lazy parameter is not known until it is materialized.
ModelShapes = Mapping[str, Shape | None]

# Prefixes tried on each side: the most common ones among its names, this many levels deep.
_PREFIXES_TRIED = 6
_PREFIX_DEPTH = 3
# Parameter names of old normalization layers, renamed by later versions.
_LEGACY_NAMES = (r"\.gamma$=.weight", r"\.beta$=.bias")


@dataclass(frozen=True)
class ShapeMismatch:
    """A name in both whose shapes differ (``checkpoint_name`` before the renaming)."""

    name: str
    checkpoint_name: str
    checkpoint_shape: Shape
    model_shape: Shape

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checkpoint_name": self.checkpoint_name,
            "checkpoint_shape": list(self.checkpoint_shape),
            "model_shape": list(self.model_shape),
        }


@dataclass(frozen=True)
class ModelFit:
    """How a checkpoint meets a model once ``renaming`` renames the checkpoint's names."""

    source: str
    model: str
    renaming: NameMap
    matched: int  # names in both, of one shape
    missing: list[str]  # the model's names the checkpoint lacks
    unexpected: list[str]  # the checkpoint's (renamed) names the model lacks
    mismatched: list[ShapeMismatch]
    as_given: int  # names that matched before renaming
    key: str | None = None
    all_tensors: bool = False  # the checkpoint's every tensor, as convert --all takes them
    found: bool = False  # the renaming was found here, not given
    original: dict[str, str] = field(default_factory=dict)  # renamed name -> the checkpoint's

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def command(self, output: str | None = None) -> str | None:
        """The ``paramctl convert`` command that writes the renamed checkpoint (None when
        no renaming helps)."""
        if not self.renaming:
            return None
        words = ["paramctl", "convert", self.source, output or fitted_path(self.source)]
        words += ["--key", self.key] if self.key else []
        words += ["--all"] if self.all_tensors else []
        return shlex.join([*words, *self.renaming.options()])

    def summary(self) -> str:
        """One line: whether it fits, and what stands in the way.

        >>> fit_model({"w": (2,)}, {"w": (3,)}, source="m.pt").summary()
        'm.pt does not fit the model: 1 shape mismatch (0 of 1 names fit)'
        """
        if self.fits:
            if not self.renaming:
                return f"{self.source} fits the model: {plural(self.matched, 'name')}"
            names = f"{self.matched} names ({self.as_given} as saved)"
            return f"{self.source} fits the model once renamed: {names}"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected")
        if self.mismatched:
            parts.append(plural(len(self.mismatched), "shape mismatch", "shape mismatches"))
        total = self.matched + len(self.mismatched) + len(self.missing)
        return (
            f"{self.source} does not fit the model: {', '.join(parts)} ({self.matched} of {total} names fit)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.source,
            "model": self.model,
            "fits": self.fits,
            "matched": self.matched,
            "matched_as_saved": self.as_given,
            "renaming": self.renaming.options(),
            "renaming_found": self.found,
            "command": self.command(),
            "missing": self.missing,
            "unexpected": [{"name": n, "checkpoint_name": self.original.get(n, n)} for n in self.unexpected],
            "mismatched": [m.to_dict() for m in self.mismatched],
            "summary": self.summary(),
        }


def fitted_path(source: str) -> str:
    """Where the suggested command writes: beside the source, ``.fit`` before its suffix.

    >>> fitted_path("runs/last.ckpt"), fitted_path("llama-dir/"), fitted_path("-")
    ('runs/last.fit.ckpt', 'llama-dir-fit', 'fit.pt')
    """
    if source == "-":
        return "fit.pt"
    path = PurePath(source)
    if not path.suffix:
        return f"{path}-fit"
    return str(path.with_name(f"{path.stem}.fit{path.suffix}"))


def fit_model(
    checkpoint: Mapping[str, Shape],
    model: ModelShapes,
    *,
    source: str,
    model_label: str = "",
    names: NameMap | None = None,
    key: str | None = None,
    all_tensors: bool = False,
) -> ModelFit:
    """Meet the checkpoint's names and shapes with the model's; with ``names`` None, find
    the renaming that makes the most names fit (none when nothing does better)."""
    found = names is None
    if names is None:
        names = best_renaming(checkpoint, model)
    renamed = names.apply(list(checkpoint))
    matched, mismatched = 0, []
    for name, old in renamed.items():
        expected = model.get(name, ())
        if name not in model or expected is None or expected == checkpoint[old]:
            matched += name in model
        else:
            mismatched.append(ShapeMismatch(name, old, checkpoint[old], expected))
    return ModelFit(
        source,
        model_label,
        names,
        matched,
        missing=[name for name in model if name not in renamed],
        unexpected=[name for name in renamed if name not in model],
        mismatched=mismatched,
        as_given=sum(name in model for name in checkpoint),
        key=key,
        all_tensors=all_tensors,
        found=found and bool(names),
        original={name: old for name, old in renamed.items() if name != old},
    )


def best_renaming(checkpoint: Mapping[str, Shape], model: ModelShapes) -> NameMap:
    """The renaming of the checkpoint's names under which the most of them are the model's
    (then the most of one shape, then the fewest options); an empty one when none helps.

    >>> best_renaming({"w": (1,), "b": (1,)}, {"backbone.w": (1,), "backbone.b": (1,)}).options()
    ['--rename', '^=backbone.']
    """
    best, best_score = NameMap(), _score(NameMap(), checkpoint, model)
    for candidate in _candidates(list(checkpoint), list(model)):
        score = _score(candidate, checkpoint, model)
        if score is not None and (best_score is None or score > best_score):
            best, best_score = candidate, score
    return best


def _score(names: NameMap, checkpoint: Mapping[str, Shape], model: ModelShapes) -> tuple[int, ...] | None:
    try:
        renamed = names.apply(list(checkpoint))
    except UsageError:  # two names renamed to one
        return None
    fit = [name for name in renamed if name in model]
    shapes = sum(model[name] in (None, checkpoint[renamed[name]]) for name in fit)
    return (len(fit), shapes, -len(names.options()))


def _candidates(checkpoint: Sequence[str], model: Sequence[str]) -> Iterable[NameMap]:
    """Renamings worth trying: cut a prefix the checkpoint's names share, add one the
    model's share, or both; each also with the old normalization names renamed."""
    cuts = ["", *_common_prefixes(checkpoint)]
    adds = ["", *_common_prefixes(model)]
    for cut in cuts:
        for add in adds:
            for legacy in ((), _LEGACY_NAMES):
                if cut != add or legacy:
                    yield _prefix_map("" if cut == add else cut, "" if cut == add else add, legacy)


def _prefix_map(cut: str, add: str, legacy: Sequence[str]) -> NameMap:
    """The options that turn prefix ``cut`` into ``add`` (either may be empty)."""
    if not add:
        return NameMap.parse(strip_prefixes=[cut] if cut else [], renames=legacy)
    replacement = add.replace("\\", "\\\\")
    return NameMap.parse(renames=[f"^{re.escape(cut)}={replacement}", *legacy])


def _common_prefixes(names: Sequence[str]) -> list[str]:
    """The dotted prefixes most names start with (``module.``, ``model.encoder.``).

    >>> _common_prefixes(["module.fc.weight", "module.fc.bias", "module.out.weight"])
    ['module.', 'module.fc.', 'module.out.']
    """
    counts: Counter[str] = Counter()
    for name in names:
        parts = name.split(".")
        for depth in range(1, min(_PREFIX_DEPTH, len(parts) - 1) + 1):
            counts[".".join(parts[:depth]) + "."] += 1
    return [prefix for prefix, _ in counts.most_common(_PREFIXES_TRIED)]


def state_shapes(module: nn.Module) -> dict[str, Shape | None]:
    """The names and shapes of ``module.state_dict()`` (None for a lazy parameter)."""
    from paramctl.live.tensors import is_lazy

    return {
        name: None if is_lazy(tensor) else tuple(tensor.shape) for name, tensor in module.state_dict().items()
    }
