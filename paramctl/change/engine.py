"""Reinitialize, edit or copy tensors of a checkpoint and write it back: the engine of
``paramctl init``.

Data flows one way, and each step is a public function:

1. :class:`Change` says what happens to each selected tensor: new values from an
   :class:`~paramctl.schemes.catalog.InitScheme` or from another checkpoint (:func:`copy_source`,
   ``--from``/``--rename``), then optionally an :class:`Edit` (``value * scale + add``).
2. :func:`plan_change` checks it against the selected entries (dtypes, dimensions, shapes),
   resolves ``default`` per tensor, folds names that are one tensor (ties) and finds the
   names a shared storage changes too. It reads no values: ``--dry-run`` shows this plan.
3. :func:`apply_plan` produces the new values one tensor at a time, in file order, with
   one ``torch.Generator`` shared across the tensors, into a
   :class:`~paramctl.formats._editor.StorageEditor`.
4. :func:`write_changes` runs step 3 for one or more plans into an open output file,
   converting to another format if asked; :func:`save_changes` adds the destination
   (a path replaced atomically, or a stream such as standard output).

With ``generator=torch.Generator().manual_seed(N)`` the values equal, byte for byte,
calling the same ``torch.nn.init`` functions with that generator on the selected tensors
in file order; low-precision floats are filled in float32 and cast back.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeAlias

from paramctl import __version__
from paramctl.checkpoint import Checkpoint, TensorEntry, join_path, model_view
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import IncompatibleTensors, UsageError
from paramctl.formats import format_named, output_format
from paramctl.schemes.catalog import DefaultScheme, InitScheme, TorchScheme
from paramctl.schemes.defaults import LayerGuess, infer_defaults

if TYPE_CHECKING:
    import torch

    from paramctl.formats._editor import StorageEditor

ValueKind = Literal["float", "complex", "int", "bool"]
# What draws a plan's random numbers: a generator, a seed to make one from, or nothing.
Randomness: TypeAlias = "torch.Generator | int | None"
_SHOWN_NAMES = 6


def value_kind(dtype: str) -> ValueKind:
    """How values of ``dtype`` may be filled.

    >>> value_kind("bfloat16"), value_kind("int64"), value_kind("bool")
    ('float', 'int', 'bool')
    """
    info = lookup_dtype(dtype)
    if info.is_floating:
        return "float"
    if info.is_complex:
        return "complex"
    return "bool" if info.name == "bool" else "int"


def _int_range(dtype: str) -> tuple[int, int]:
    bits = lookup_dtype(dtype).itemsize * 8
    if dtype.startswith("uint"):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


@dataclass(frozen=True)
class Edit:
    """``value * scale + add`` (the ``param.data *= s; param.data += a`` of training code).

    >>> Edit(scale=2.0, add=1.0).describe()
    'x * 2.0 + 1.0'
    """

    scale: float | None = None
    add: float | None = None

    def __post_init__(self) -> None:
        if self.scale is None and self.add is None:
            raise UsageError("an edit needs --scale or --add")

    def describe(self) -> str:
        text = "x"
        if self.scale is not None:
            text += f" * {self.scale!r}"
        if self.add is not None:
            text += f" - {-self.add!r}" if self.add < 0 else f" + {self.add!r}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "add": self.add}


@dataclass(frozen=True)
class CopySource:
    """Tensors of another checkpoint paired with the targets they fill (``--from``)."""

    checkpoint: Checkpoint
    pairs: Mapping[str, TensorEntry]
    missing: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return self.checkpoint.label


def parse_rename(rules: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--rename 'FROM=TO'`` rules: a regex and its replacement (``\\1`` groups allowed).

    >>> parse_rename(["^encoder\\\\.=backbone."])
    (('^encoder\\\\.', 'backbone.'),)
    """
    parsed = []
    for rule in rules:
        pattern, equals, replacement = rule.partition("=")
        if not equals or not pattern:
            raise UsageError(f"--rename {rule!r}: write it as FROM=TO, e.g. '^encoder\\.=backbone.'")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--rename {rule!r}: {exc}") from exc
        parsed.append((pattern, replacement))
    return tuple(parsed)


def rename(name: str, rules: Sequence[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        try:
            name = re.sub(pattern, replacement, name)
        except re.error as exc:
            raise UsageError(f"--rename {pattern}={replacement}: {exc}") from exc
    return name


def copy_source(
    targets: Sequence[TensorEntry],
    source: Checkpoint,
    *,
    rename_rules: Sequence[tuple[str, str]] = (),
    key: str | None = None,
) -> CopySource:
    """Pair each target with the source tensor whose (renamed) name is the target's name.

    Source names are those of its model dict (found as ``paramctl list`` finds it, or
    ``key``), each rewritten by ``rename_rules`` in order. Shapes must match: every
    mismatch is listed in one :class:`IncompatibleTensors` error. Targets without a source
    tensor are returned in ``missing``.
    """
    view = model_view(source, key=key)
    by_name: dict[str, TensorEntry] = {}
    for entry in view.entries:
        by_name.setdefault(rename(entry.name, rename_rules), entry)
    pairs: dict[str, TensorEntry] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for target in targets:
        found = by_name.get(target.name)
        if found is None:
            missing.append(target.name)
        elif found.shape != target.shape:
            mismatched.append(f"{target.name} {list(target.shape)} vs {found.name} {list(found.shape)}")
        else:
            pairs[target.name] = found
    if mismatched:
        raise IncompatibleTensors(
            f"shapes differ between the checkpoint and {source.label}: {_some(mismatched)}"
        )
    return CopySource(source, pairs, tuple(missing), tuple(rename_rules))


@dataclass(frozen=True)
class Change:
    """What happens to every selected tensor: new values (a scheme, or a copy), then an edit."""

    scheme: InitScheme | None = None
    copy: CopySource | None = None
    edit: Edit | None = None

    def __post_init__(self) -> None:
        if self.scheme is not None and self.copy is not None:
            raise UsageError("--scheme/--set and --from exclude each other")
        if self.scheme is None and self.copy is None and self.edit is None:
            raise UsageError("nothing to do: give --scheme, --set, --from, --scale or --add")

    def describe(self) -> str:
        parts = []
        if self.scheme is not None:
            parts.append(self.scheme.describe())
        if self.copy is not None:
            parts.append(f"copy from {self.copy.label}")
        if self.edit is not None:
            parts.append(self.edit.describe())
        return ", then ".join(parts)


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor to change: what fills it, and which other names see the change."""

    entry: TensorEntry
    action: str
    scheme: InitScheme | None = None
    source: TensorEntry | None = None
    edit: Edit | None = None
    guess: LayerGuess | None = None
    # Selected names that are this very tensor (a tie): changed once, with it.
    same_as: tuple[str, ...] = ()
    # Names outside the selection whose bytes this changes (shared storage).
    also_changes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def shared_with(self) -> tuple[str, ...]:
        return self.same_as + self.also_changes

    def to_dict(self) -> dict[str, Any]:
        row = self.entry.to_dict()
        row["action"] = self.action
        if self.guess is not None:
            row["inferred"] = self.guess.to_dict()
        row["shared_with"] = list(self.same_as)
        row["also_changes"] = list(self.also_changes)
        return row


@dataclass(frozen=True)
class Skipped:
    """A selected tensor left unchanged (``--skip-incompatible``, or missing from ``--from``)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason}


@dataclass
class Plan:
    """Everything :func:`apply_plan` will do, checked, before any value is read."""

    checkpoint: Checkpoint
    change: Change
    tensors: list[PlannedTensor]
    skipped: list[Skipped] = field(default_factory=list)
    selection: str = "everything"
    prefix: str = ""

    @property
    def uses_generator(self) -> bool:
        """Whether the result depends on the seed."""
        return any(t.scheme is not None and t.scheme.uses_generator for t in self.tensors)

    def storage_keys(self) -> list[str]:
        """The storages this plan writes, in the order it first writes them."""
        return list(dict.fromkeys(t.entry.storage_key for t in self.tensors))

    def fresh_storages(self) -> set[str]:
        """Storages whose first write covers all their bytes: no need to copy them first."""
        first: dict[str, TensorEntry] = {}
        for planned in self.tensors:
            first.setdefault(planned.entry.storage_key, planned.entry)
        return {key for key, entry in first.items() if _covers_storage(self.checkpoint, entry)}

    def provenance(self, seed: int | None) -> dict[str, Any]:
        """What the output's metadata records about this change."""
        step: dict[str, Any] = {"selection": self.selection, "tensors": len(self.tensors)}
        if self.prefix:
            step["prefix"] = self.prefix
        if len(self.tensors) <= 64:
            step["names"] = [t.name for t in self.tensors]
        scheme = self.change.scheme
        if scheme is not None:
            step["scheme"] = scheme.describe()
            step["params"] = scheme.parameters()
            if isinstance(scheme, DefaultScheme):
                step["resolved"] = {t.name: t.action for t in self.tensors[:64]}
        if self.uses_generator:
            step["seed"] = seed
        if self.change.copy is not None:
            step["from"] = self.change.copy.label
            if self.change.copy.rename:
                step["rename"] = [f"{p}={r}" for p, r in self.change.copy.rename]
        if self.change.edit is not None:
            step["edit"] = self.change.edit.to_dict()
        return step

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.checkpoint.label,
            "format": self.checkpoint.format,
            "prefix": self.prefix,
            "change": self.change.describe(),
            "selection": self.selection,
            "tensors": [t.to_dict() for t in self.tensors],
            "skipped": [s.to_dict() for s in self.skipped],
        }


def _covers_storage(checkpoint: Checkpoint, entry: TensorEntry) -> bool:
    start, end = entry.byte_span
    return start == 0 and end == checkpoint.storage_of(entry).nbytes and _dense(entry)


def _dense(entry: TensorEntry) -> bool:
    """Whether the tensor's elements fill its byte span with no gaps or overlaps."""
    start, end = entry.byte_span
    if entry.nbytes != end - start:
        return False
    if entry.is_contiguous:
        return True
    # A permutation of a contiguous layout (a transpose) also fills its span exactly.
    dims = sorted((step, size) for size, step in zip(entry.shape, entry.stride, strict=True) if size != 1)
    expected = 1
    for step, size in dims:
        if step != expected:
            return False
        expected *= size
    return True


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN_NAMES])
    more = len(items) - _SHOWN_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def plan_change(
    checkpoint: Checkpoint,
    targets: Sequence[TensorEntry],
    change: Change,
    *,
    context: Sequence[TensorEntry] | None = None,
    skip_incompatible: bool = False,
    selection: str = "everything",
    prefix: str = "",
) -> Plan:
    """Check ``change`` against ``targets`` and say what will happen to each.

    ``context`` is every tensor of the model view (names as the targets have them): the
    ``default`` scheme reads siblings there, and "also changes" names come from it.
    A tensor the change cannot fill (an integer tensor and a random scheme, a 1-D tensor
    and xavier, a layer ``default`` cannot infer) is an :class:`IncompatibleTensors` error
    naming them all, or, with ``skip_incompatible``, a :class:`Skipped` entry.
    """
    context = list(context if context is not None else targets)
    guesses = infer_defaults(context) if isinstance(change.scheme, DefaultScheme) else {}
    planned: list[PlannedTensor] = []
    skipped: list[Skipped] = []
    problems: dict[str, list[str]] = {}
    by_view: dict[tuple[Any, ...], int] = {}
    for entry in targets:
        identity = (entry.storage_key, entry.storage_offset, entry.shape, entry.stride, entry.dtype)
        if identity in by_view:
            index = by_view[identity]
            first = planned[index]
            planned[index] = PlannedTensor(**{**vars(first), "same_as": (*first.same_as, entry.name)})
            continue
        scheme, guess, source = change.scheme, None, None
        if isinstance(scheme, DefaultScheme):
            guess = guesses.get(entry.name)
            scheme = guess.scheme if guess is not None else None
            if scheme is None:
                why = guess.why if guess is not None else "not in the model"
                if skip_incompatible:
                    skipped.append(Skipped(entry.name, f"cannot infer its layer ({why})"))
                else:
                    problems.setdefault("cannot infer the layer of", []).append(entry.name)
                continue
        if change.copy is not None:
            source = change.copy.pairs.get(entry.name)
            if source is None:
                skipped.append(Skipped(entry.name, f"not in {change.copy.label}"))
                continue
        reason = _incompatibility(entry, scheme, source, change.edit)
        if reason is not None:
            _problem(problems, skipped, skip_incompatible, entry, reason)
            continue
        by_view[identity] = len(planned)
        planned.append(
            PlannedTensor(
                entry,
                _action(scheme, source, change, guess),
                scheme=scheme,
                source=source,
                edit=change.edit,
                guess=guess,
            )
        )
    if problems:
        detail = "; ".join(f"{reason}: {_some(names)}" for reason, names in problems.items())
        hint = "--dry-run --skip-incompatible shows why; " if "cannot infer the layer of" in problems else ""
        raise IncompatibleTensors(f"{detail} ({hint}--skip-incompatible leaves them unchanged)")
    planned = _with_shared(checkpoint, planned, context)
    return Plan(checkpoint, change, planned, skipped, selection, prefix)


def _problem(
    problems: dict[str, list[str]], skipped: list[Skipped], skip: bool, entry: TensorEntry, reason: str
) -> None:
    if skip:
        skipped.append(Skipped(entry.name, reason))
    else:
        problems.setdefault(reason, []).append(entry.name)


def _action(
    scheme: InitScheme | None, source: TensorEntry | None, change: Change, guess: LayerGuess | None
) -> str:
    parts = []
    if scheme is not None:
        parts.append(scheme.describe())
    if source is not None and change.copy is not None:
        parts.append(f"copy of {source.name}")
    if change.edit is not None:
        parts.append(change.edit.describe())
    return ", then ".join(parts)


def _incompatibility(
    entry: TensorEntry, scheme: InitScheme | None, source: TensorEntry | None, edit: Edit | None
) -> str | None:
    """Why ``entry`` cannot take this change; ``None`` when it can."""
    kind = value_kind(entry.dtype)
    if scheme is not None:
        if kind in ("int", "bool"):
            value = scheme.fill_value if isinstance(scheme, TorchScheme) else None
            if value is None:
                return f"{kind} tensors take only constant schemes (zeros, ones, constant, --set) or --from"
            if kind == "bool" and value not in (0.0, 1.0):
                return f"a bool tensor holds 0 or 1, not {value!r}"
            if kind == "int":
                low, high = _int_range(entry.dtype)
                if not float(value).is_integer() or not low <= value <= high:
                    return f"{entry.dtype} cannot hold {value!r}"
        reason = scheme.incompatibility(entry)
        if reason is not None:
            return reason
    if source is not None:
        source_kind = value_kind(source.dtype)
        if source_kind != kind:
            return f"cannot copy {source.dtype} values into a {entry.dtype} tensor"
    if edit is not None:
        if kind == "bool":
            return "bool tensors cannot be scaled or shifted"
        if kind == "int" and any(v is not None and not float(v).is_integer() for v in (edit.scale, edit.add)):
            return f"{entry.dtype} tensors take whole-number --scale/--add"
    return None


def _with_shared(
    checkpoint: Checkpoint, planned: list[PlannedTensor], context: Sequence[TensorEntry]
) -> list[PlannedTensor]:
    """Fill ``also_changes``: unselected names whose bytes overlap a changed tensor's."""
    shown = {join_path(e.path): e.name for e in context}
    changing = {join_path(t.entry.path) for t in planned}
    folded = {name for t in planned for name in t.same_as}
    changing |= {join_path(e.path) for e in context if e.name in folded}
    by_storage: dict[str, list[TensorEntry]] = {}
    for entry in checkpoint.entries:
        by_storage.setdefault(entry.storage_key, []).append(entry)
    result = []
    for planned_tensor in planned:
        start, end = planned_tensor.entry.byte_span
        also = []
        for other in by_storage.get(planned_tensor.entry.storage_key, []):
            full = join_path(other.path)
            if full in changing:
                continue
            other_start, other_end = other.byte_span
            if other_start < end and start < other_end:
                also.append(shown.get(full, full))
        if also:
            planned_tensor = PlannedTensor(**{**vars(planned_tensor), "also_changes": tuple(also)})
        result.append(planned_tensor)
    return result


# -- producing the values ---------------------------------------------------------------


@dataclass(frozen=True)
class TensorStats:
    """Mean and (unbiased) standard deviation of a tensor's values."""

    mean: float | None
    std: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class ChangedTensor:
    """A tensor after :func:`apply_plan`: the plan for it and its values before and after."""

    planned: PlannedTensor
    before: TensorStats | None = None
    after: TensorStats | None = None

    @property
    def name(self) -> str:
        return self.planned.name

    def to_dict(self) -> dict[str, Any]:
        row = self.planned.to_dict()
        for label, stats in (("before", self.before), ("after", self.after)):
            row[f"mean_{label}"] = stats.mean if stats else None
            row[f"std_{label}"] = stats.std if stats else None
        return row


def tensor_stats(values: torch.Tensor) -> TensorStats:
    """Mean and standard deviation, in float32 or wider; ``None`` where undefined."""
    import torch

    if values.numel() == 0 or values.is_complex():
        return TensorStats(None, None)
    # These reductions are memory-bound: a second thread gains little, and where the other
    # core is busy, torch's thread pool waiting for it can cost a hundred times more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _mean_std(values)
    finally:
        torch.set_num_threads(threads)


def _mean_std(values: torch.Tensor) -> TensorStats:
    import math

    import torch

    wide = values if values.dtype in (torch.float32, torch.float64) else values.to(torch.float32)
    flat = wide.reshape(-1)
    count = flat.numel()
    mean = float(flat.sum() / count)
    if count == 1:
        return TensorStats(mean, None)
    # One pass of BLAS dot products, several times faster than torch.std_mean on CPU; the
    # two-pass form takes over where subtracting squares would lose the digits.
    variance = (float(torch.dot(flat, flat)) - count * mean * mean) / (count - 1)
    if not variance > 1e-3 * mean * mean:
        deviations = flat - mean
        variance = float(torch.dot(deviations, deviations)) / (count - 1)
    std = math.sqrt(variance) if math.isfinite(variance) else None
    return TensorStats(mean, std)


def make_generator(seed: int | None = None) -> tuple[torch.Generator, int]:
    """A CPU generator seeded with ``seed``, or with a fresh random seed that is returned."""
    import torch

    seed = draw_seed(seed)
    return torch.Generator().manual_seed(seed), seed


def draw_seed(seed: int | None = None) -> int:
    """``seed`` checked, or a fresh random one (reported so that a run can be repeated).

    >>> draw_seed(7)
    7
    """
    if seed is None:
        seed = secrets.randbelow(2**32)
    _check_seed(seed)
    return seed


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 2**64:
        raise UsageError(f"--seed {seed}: a seed is a whole number from 0 to 2**64-1")


def _generator(randomness: Randomness) -> torch.Generator | None:
    if isinstance(randomness, int):
        return make_generator(randomness)[0]
    return randomness


def apply_plan(
    plan: Plan,
    editor: StorageEditor,
    *,
    generator: torch.Generator | None = None,
    stats: bool = True,
) -> list[ChangedTensor]:
    """Write the plan's new values through ``editor``, one tensor at a time, in file order.

    One ``generator`` serves every random tensor in turn; a storage shared by several
    selected names is filled once. With ``stats``, mean/std before and after are measured.
    """
    import torch

    from paramctl.values import ValueReader, torch_dtype

    copy = plan.change.copy
    reader = ValueReader(copy.checkpoint) if copy is not None else None
    changed = []
    # torch.nn.init.sparse_ (and many custom functions) also draw from torch's global
    # generator, which generator= does not reach: seed it alike, and restore it after.
    closing = contextlib.closing(reader) if reader is not None else contextlib.nullcontext()
    with torch.random.fork_rng(devices=[]), closing:
        if generator is not None:
            torch.manual_seed(generator.initial_seed())
        for planned in plan.tensors:
            entry = planned.entry
            start, end = entry.byte_span
            fills = planned.scheme is not None or planned.source is not None
            read = stats or not fills or not _dense(entry)
            with editor.span(entry.storage_key, start, end, read=read) as raw:
                values = raw.view(torch_dtype(entry.dtype)).as_strided(
                    entry.shape, entry.stride, entry.storage_offset - start // entry.itemsize
                )
                before = tensor_stats(values) if stats else None
                if planned.scheme is not None:
                    _fill(values, planned.scheme, generator)
                elif planned.source is not None and reader is not None:
                    values.copy_(reader.tensor(planned.source))
                if planned.edit is not None:
                    _edit(values, planned.edit)
                after = tensor_stats(values) if stats else None
            changed.append(ChangedTensor(planned, before, after))
    return changed


def _fill(values: torch.Tensor, scheme: InitScheme, generator: torch.Generator | None) -> None:
    import torch

    if (
        values.dtype in (torch.float32, torch.float64)
        or values.is_complex()
        or not values.is_floating_point()
    ):
        scheme.apply(values, generator)
        return
    # float16, bfloat16 and float8 are filled in float32 and cast back.
    work = torch.empty(values.shape, dtype=torch.float32)
    scheme.apply(work, generator)
    values.copy_(work)


def _edit(values: torch.Tensor, edit: Edit) -> None:
    import torch

    if not values.is_floating_point() and not values.is_complex():
        if edit.scale is not None:
            values.mul_(int(edit.scale))
        if edit.add is not None:
            values.add_(int(edit.add))
        return
    work = values if values.dtype in (torch.float32, torch.float64) or values.is_complex() else values.float()
    if edit.scale is not None:
        work.mul_(edit.scale)
    if edit.add is not None:
        work.add_(edit.add)
    if work is not values:
        values.copy_(work)


# -- writing ----------------------------------------------------------------------------


def write_record(plans: Sequence[Plan], seeds: Sequence[int | None], command: str = "init") -> dict[str, Any]:
    """The provenance of one write: the tool, its version, the command and each change
    (``seeds[i]`` is the seed of ``plans[i]``'s generator, ``None`` if not random)."""
    return {
        "tool": "paramctl",
        "version": __version__,
        "command": command,
        "changes": [plan.provenance(seed) for plan, seed in zip(plans, seeds, strict=True)],
    }


def write_changes(
    checkpoint: Checkpoint,
    steps: Sequence[tuple[Plan, Randomness]],
    out: BinaryIO,
    *,
    to: str | None = None,
    stats: bool = True,
    provenance: Mapping[str, Any] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> list[list[ChangedTensor]]:
    """Apply ``steps`` (plans, each with its generator) in order and write the result to ``out``.

    A step's generator may also be given as a seed (an ``int``): it is made once the copy
    of the unchanged bytes has started, so that work overlaps importing torch.
    ``out`` is a seekable read-write file. In the input's own format the output is a copy
    with only changed storages rewritten; in another format (``to``) the edited copy goes
    to a scratch file (in ``scratch_dir``) and is then converted.
    """
    from paramctl.atomic import scratch_file

    target = to or checkpoint.format
    fresh = set().union(*(plan.fresh_storages() for plan, _ in steps)) if steps else set()
    if target == checkpoint.format:
        editor = format_named(checkpoint.format).editor(checkpoint, out, fresh=fresh, provenance=provenance)
        try:
            results = [apply_plan(plan, editor, generator=_generator(g), stats=stats) for plan, g in steps]
            editor.finish()
        finally:
            editor.close()
        return results
    from paramctl.formats import read_checkpoint

    with scratch_file(scratch_dir) as (scratch, scratch_path):
        results = write_changes(checkpoint, steps, scratch, stats=stats)
        scratch.flush()
        edited = read_checkpoint(scratch_path)
        edited.label = checkpoint.label
        format_named(target).write(edited, out, provenance=provenance, source_metadata=checkpoint.metadata)
    return results


def save_changes(
    checkpoint: Checkpoint,
    steps: Sequence[tuple[Plan, Randomness]],
    destination: str | os.PathLike[str] | BinaryIO,
    *,
    to: str | None = None,
    stats: bool = True,
    provenance: Mapping[str, Any] | None = None,
    backup: str | os.PathLike[str] | None = None,
) -> list[list[ChangedTensor]]:
    """:func:`write_changes` to a path (replaced atomically, optionally keeping a backup)
    or to a binary stream such as ``sys.stdout.buffer`` (via a temporary file)."""
    from paramctl.atomic import atomic_file, copy_to_stream, scratch_file

    if isinstance(destination, str | os.PathLike):
        target = Path(destination)
        with atomic_file(target, backup=backup) as out:
            return write_changes(
                checkpoint, steps, out, to=to, stats=stats, provenance=provenance, scratch_dir=target.parent
            )
    with scratch_file() as (out, _):
        results = write_changes(checkpoint, steps, out, to=to, stats=stats, provenance=provenance)
        copy_to_stream(out, destination)
    return results


@dataclass
class InitResult:
    """What ``paramctl init`` did: the tensors changed, their statistics, where it went."""

    source: str
    output: str
    format: str
    plan: Plan
    changed: list[ChangedTensor]
    seed: int | None = None
    provenance_recorded: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "output": self.output,
            "format": self.format,
            "change": self.plan.change.describe(),
            "selection": self.plan.selection,
            "seed": self.seed,
            "tensors": [row.to_dict() for row in self.changed],
            "skipped": [s.to_dict() for s in self.plan.skipped],
            "provenance_recorded": self.provenance_recorded,
        }


def reinit(
    checkpoint: Checkpoint,
    plan: Plan,
    destination: str | os.PathLike[str] | BinaryIO,
    *,
    seed: int | None = None,
    to: str | None = None,
    stats: bool = True,
    backup: str | os.PathLike[str] | None = None,
    output_label: str | None = None,
) -> InitResult:
    """Carry out one plan and write the checkpoint: what ``paramctl init`` does after parsing.

    A random plan gets a generator seeded with ``seed`` (a fresh one is drawn and reported
    when ``seed`` is ``None``).
    """
    used_seed = draw_seed(seed) if plan.uses_generator else None
    path = destination if isinstance(destination, str | os.PathLike) else None
    target = output_format(path, to, checkpoint.format)
    provenance = write_record([plan], [used_seed])
    (changed,) = save_changes(
        checkpoint,
        [(plan, used_seed)],
        destination,
        to=target,
        stats=stats,
        provenance=provenance,
        backup=backup,
    )
    return InitResult(
        source=checkpoint.label,
        output=output_label or (str(path) if path is not None else "<stdout>"),
        format=target,
        plan=plan,
        changed=changed,
        seed=used_seed,
        provenance_recorded=format_named(target).holds.provenance,
    )
