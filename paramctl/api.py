"""The Python API over checkpoint files: ``paramctl.open(path)``.

The object it returns is a checkpoint read the way ``paramctl list`` reads it (metadata
only, no torch import, no pickle executed), with the same names, the same records, and the
changes of ``paramctl init`` as in-place methods that are carried out when saved::

    ckpt = paramctl.open("model.pt")
    ckpt.names()                               # list -f names
    weights = ckpt.select(glob="*.weight")     # --match '*.weight'
    weights.init_("normal", std=0.01, seed=0)  # --scheme 'normal(std=0.01)' --seed 0
    ckpt.select(glob="*.bias").edit_(add=1.0)  # --match '*.bias' --add 1
    ckpt.save("out.pt")                        # one pass, one atomic write

Changes are planned and checked when asked for (so a bad scheme fails at ``init_``), and
applied at :meth:`CheckpointFile.save`, one tensor at a time, by the engine ``paramctl init``
uses; everything not changed is written byte for byte as it was.

>>> import os, tempfile, torch, paramctl
>>> path = os.path.join(tempfile.mkdtemp(), "tied.pt")
>>> linear = torch.nn.Linear(1, 1, bias=False)
>>> torch.save(torch.nn.Sequential(linear, linear).state_dict(), path)
>>> ckpt = paramctl.open(path)
>>> ckpt  # doctest: +ELLIPSIS
<paramctl checkpoint .../tied.pt (torch-zip), 2 tensors>
>>> ckpt.names(), ckpt.shared()
(['0.weight', '1.weight'], [('0.weight', '1.weight')])
>>> [(row.name, row.entry.shape) for row in ckpt.select(regex="^1").entries()]
[('1.weight', (1, 1))]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, ModelView, TensorEntry, model_view
from paramctl.errors import UsageError
from paramctl.formats import read_checkpoint
from paramctl.select import Selection, select

if TYPE_CHECKING:
    import torch

    from paramctl.change import Change, InitResult, Plan
    from paramctl.inspect.listing import ListedTensor, Listing
    from paramctl.inspect.sharing import SharingReport


@dataclass
class _Step:
    """One pending change: its checked plan and the generator (and seed) it will draw from."""

    plan: Plan
    generator: torch.Generator | None
    seed: int | None


@dataclass
class SaveResult:
    """What :meth:`CheckpointFile.save` wrote: where, in which format, and each change."""

    output: str
    format: str
    changes: list[InitResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "format": self.format,
            "changes": [change.to_dict() for change in self.changes],
        }


class CheckpointFile:
    """A checkpoint file opened by :func:`open`: its tensors, and changes waiting to be saved.

    ``key`` and ``all_tensors`` choose the tensors as ``list --key``/``--all`` do; by default
    the model dict of a training checkpoint is found and its prefix cut.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        key: str | None = None,
        all_tensors: bool = False,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self.source = os.fspath(source)
        self.key = key
        self.all_tensors = all_tensors
        self._on_note = on_note
        self._steps: list[_Step] = []
        self._load()

    def _load(self) -> None:
        self.checkpoint: Checkpoint = read_checkpoint(self.source, on_note=self._on_note)
        self.view: ModelView = model_view(self.checkpoint, key=self.key, all_tensors=self.all_tensors)

    @property
    def label(self) -> str:
        return self.checkpoint.label

    @property
    def format(self) -> str:
        return self.checkpoint.format

    def __repr__(self) -> str:
        pending = f", {len(self._steps)} changes pending" if self._steps else ""
        return (
            f"<paramctl checkpoint {self.label} ({self.format}), {len(self.view.entries)} tensors{pending}>"
        )

    def __len__(self) -> int:
        return len(self.view.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """The tensor names, in file order, as ``paramctl list --format names`` prints them."""
        return [entry.name for entry in self.view.entries]

    def listing(self, selection: Selection = Selection()) -> Listing:
        """What ``paramctl list`` shows: rows, totals, the model-dict prefix."""
        from paramctl.inspect.listing import build_listing

        return build_listing(self.checkpoint, selection, key=self.key, all_tensors=self.all_tensors)

    def entries(self) -> list[ListedTensor]:
        """The records ``paramctl list`` prints: each entry and the names sharing its storage."""
        return self.listing().rows

    def stats(
        self, selection: Selection = Selection(), *, on_progress: Callable[[int], None] | None = None
    ) -> list[ListedTensor]:
        """The rows of ``paramctl list --stats``: each record of :meth:`entries` with its value
        statistics in ``stats`` (mean, std, min, max, absmax, norm, zeros, nan, inf), read one
        tensor at a time by :func:`paramctl.stats.with_stats`.
        """
        from paramctl.stats import with_stats

        return with_stats(self.listing(selection), self.checkpoint, on_progress=on_progress).rows

    def shared(self) -> list[tuple[str, ...]]:
        """Groups of names whose tensors live in one storage (ties, a layer used twice).

        Sharing is judged over the whole file; names outside the view keep their full path.
        """
        return [tuple(name.name for name in group.names) for group in self.sharing().groups]

    def sharing(self, *, by_value: bool = False) -> SharingReport:
        """What ``paramctl shared`` reports: each group's names, relation and saved bytes."""
        from paramctl.inspect.sharing import find_shared

        return find_shared(self.checkpoint, key=self.key, all_tensors=self.all_tensors, by_value=by_value)

    def select(
        self,
        glob: str | Sequence[str] | None = None,
        regex: str | Sequence[str] | None = None,
        *,
        exclude: str | Sequence[str] | None = None,
        names: Collection[str] | None = None,
    ) -> TensorSelection:
        """The tensors ``--match``/``--regex``/``--exclude``/``--names-from`` would select.

        A selection that matches nothing raises :class:`~paramctl.errors.NothingSelected`
        naming close names.
        """
        selection = Selection(
            match=_tuple(glob),
            regex=_tuple(regex),
            exclude=_tuple(exclude),
            names=frozenset(names) if names is not None else None,
        )
        return TensorSelection(self, selection, select(self.view.entries, selection))

    def pending(self) -> list[Plan]:
        """The checked plans of the changes not saved yet, in the order they will run."""
        return [step.plan for step in self._steps]

    def discard(self) -> None:
        """Forget the pending changes."""
        self._steps.clear()

    def save(
        self,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        to: str | None = None,
        backup: str | os.PathLike[str] | None = None,
        stats: bool = True,
        output_label: str | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> SaveResult:
        """Write the checkpoint with the pending changes, in one pass, atomically.

        The format comes from ``to``, else the destination's extension, else the input's.
        Saving over the source file itself is allowed (the write is atomic); the object
        then describes the new file. With no pending change, the output is a copy.
        ``on_progress`` hears the bytes of each changed tensor once written.
        """
        from paramctl.change import InitResult, write_record
        from paramctl.change.write import save_changes_reporting
        from paramctl.formats import format_named, output_format

        path = destination if isinstance(destination, str | os.PathLike) else None
        target = output_format(path, to, self.checkpoint.format)
        plans = [step.plan for step in self._steps]
        seeds = [step.seed for step in self._steps]
        results, written = save_changes_reporting(
            self.checkpoint,
            [(step.plan, step.generator or step.seed) for step in self._steps],
            destination,
            to=target,
            stats=stats,
            provenance=write_record(plans, seeds),
            backup=backup,
            on_progress=on_progress,
        )
        label = output_label or (str(path) if path is not None else "<stream>")
        recorded = format_named(target).holds.provenance
        changes = [
            InitResult(self.label, label, target, plan, changed, seed, recorded, written)
            for plan, changed, seed in zip(plans, results, seeds, strict=True)
        ]
        self._steps.clear()
        if path is not None and _same_file(Path(path), self.checkpoint.path):
            self._load()
        return SaveResult(label, target, changes)

    def _add(self, step: _Step) -> None:
        self._steps.append(step)


class TensorSelection:
    """Some tensors of a :class:`CheckpointFile`, and the changes ``paramctl init`` makes.

    The methods ending in ``_`` change values in place, as in ``torch.nn.init``: they are
    checked now, carried out by :meth:`save`, and return the selection, so they chain.
    """

    def __init__(self, file: CheckpointFile, selection: Selection, entries: list[TensorEntry]) -> None:
        self.file = file
        self.selection = selection
        self._entries = entries

    def __repr__(self) -> str:
        tensors = f"{len(self._entries)} tensors of {self.file.label}"
        return f"<paramctl selection {self.selection.describe()}: {tensors}>"

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    @property
    def tensors(self) -> list[TensorEntry]:
        """The selected entries, in file order."""
        return list(self._entries)

    def entries(self) -> list[ListedTensor]:
        """The records ``paramctl list`` prints for these tensors."""
        return self.file.listing(self.selection).rows

    def init_(
        self,
        scheme: Any = "default",
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        skip_incompatible: bool = False,
        **params: Any,
    ) -> TensorSelection:
        """New values from ``scheme``: a ``torch.nn.init`` name with its parameters as
        keywords or in the text, ``default`` (PyTorch's own rule, inferred per tensor), or a
        function ``f(tensor, generator)``.

        ``seed=N`` draws from ``torch.Generator().manual_seed(N)`` over the selected tensors
        in file order, byte-equal to calling ``torch.nn.init`` yourself; ``generator=`` uses
        yours (it is drawn from at :meth:`save`). Without either, a fresh seed is drawn and
        reported in the result. Tensors the scheme cannot fill raise
        :class:`~paramctl.errors.IncompatibleTensors` now, or are skipped with
        ``skip_incompatible=True``.
        """
        from paramctl.change import Change
        from paramctl.schemes.catalog import make_scheme

        return self.apply_(
            Change(scheme=make_scheme(scheme, **params)),
            generator=generator,
            seed=seed,
            skip_incompatible=skip_incompatible,
        )

    def edit_(
        self, *, add: float | None = None, scale: float | None = None, skip_incompatible: bool = False
    ) -> TensorSelection:
        """``value * scale + add``: the lessons' ``param.data += 1`` is ``edit_(add=1)``."""
        from paramctl.change import Change, Edit

        return self.apply_(Change(edit=Edit(scale=scale, add=add)), skip_incompatible=skip_incompatible)

    def save(self, destination: str | os.PathLike[str] | BinaryIO, **options: Any) -> SaveResult:
        """:meth:`CheckpointFile.save` of the file this selection belongs to."""
        return self.file.save(destination, **options)

    def apply_(
        self,
        change: Change,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        skip_incompatible: bool = False,
    ) -> TensorSelection:
        """Any change ``paramctl init`` makes: a scheme or a copy, then an edit, in one step.

        :meth:`init_` and :meth:`edit_` are this with one part filled in. Planning reads no
        values; a random change draws its seed now and its numbers at :meth:`save`.
        """
        from paramctl.change import draw_seed, plan_change

        if seed is not None and generator is not None:
            raise UsageError("give seed or generator, not both")
        file = self.file
        plan = plan_change(
            file.checkpoint,
            self._entries,
            change,
            context=file.view.entries,
            skip_incompatible=skip_incompatible,
            selection=self.selection.describe(),
            prefix=file.view.prefix_name,
        )
        used_seed = draw_seed(seed) if plan.uses_generator and generator is None else None
        file._add(_Step(plan, generator if plan.uses_generator else None, used_seed))
        return self


def open(
    source: str | os.PathLike[str], *, key: str | None = None, all_tensors: bool = False
) -> CheckpointFile:
    """Open a checkpoint file (``-`` is standard input): see :class:`CheckpointFile`."""
    return CheckpointFile(source, key=key, all_tensors=all_tensors)


def _tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except OSError:
        return False
