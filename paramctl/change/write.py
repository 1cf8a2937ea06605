"""Writing changes: plans applied into an output file, in the input's format or another.

:func:`write_changes` runs one or more plans through the input format's editor (from the
registry: only changed storages are rewritten, every other byte is copied), converting to
another format when asked; :func:`save_changes` adds the destination (a path replaced
atomically, or a stream such as standard output); :func:`reinit` is one plan, one seed,
one destination: what ``paramctl init`` does after parsing.

>>> record = provenance_record([{"selection": "everything", "tensors": 2}])
>>> record["tool"], record["command"], record["changes"][0]["tensors"]
('paramctl', 'init', 2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from paramctl import __version__
from paramctl.change.fill import ChangedTensor, Randomness, apply_plan, draw_seed, generator_for
from paramctl.change.plan import Plan
from paramctl.change.write_set import SetWrite, save_file_set
from paramctl.checkpoint import Checkpoint
from paramctl.errors import UsageError
from paramctl.formats import format_named, output_format
from paramctl.formats._format import Progress

Steps = Sequence[tuple[Plan, Randomness]]


def provenance_record(changes: Sequence[Mapping[str, Any]], command: str = "init") -> dict[str, Any]:
    """The provenance of one write: the tool, its version, the command and each change."""
    return {"tool": "paramctl", "version": __version__, "command": command, "changes": list(changes)}


def write_record(plans: Sequence[Plan], seeds: Sequence[int | None], command: str = "init") -> dict[str, Any]:
    """:func:`provenance_record` of plans (``seeds[i]`` is the seed of ``plans[i]``'s
    generator, ``None`` if not random)."""
    return provenance_record(
        [plan.provenance(seed) for plan, seed in zip(plans, seeds, strict=True)], command
    )


def write_changes(
    checkpoint: Checkpoint,
    steps: Steps,
    out: BinaryIO,
    *,
    to: str | None = None,
    stats: bool = True,
    provenance: Mapping[str, Any] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
    on_progress: Progress | None = None,
) -> list[list[ChangedTensor]]:
    """Apply ``steps`` (plans, each with its generator) in order and write the result to ``out``.

    A step's generator may also be given as a seed (an ``int``): it is made once the copy
    of the unchanged bytes has started, so that work overlaps importing torch.
    ``out`` is a seekable read-write file. In the input's own format the output is a copy
    with only changed storages rewritten; in another format (``to``) the edited copy goes
    to a scratch file (in ``scratch_dir``) and is then converted.

    A checkpoint whose storages span several files is refused (:class:`UsageError`):
    ``out`` is one file. ``on_progress`` hears the bytes of each changed tensor written.
    """
    from paramctl.atomic import scratch_file

    _refuse_several_files(checkpoint, steps)
    target = to or checkpoint.format
    if target == checkpoint.format:
        return _edit_copy(checkpoint, steps, out, stats=stats, provenance=provenance, on_progress=on_progress)
    from paramctl.formats import read_checkpoint

    with scratch_file(scratch_dir) as (scratch, scratch_path):
        results = _edit_copy(
            checkpoint, steps, scratch, stats=stats, provenance=None, on_progress=on_progress
        )
        scratch.flush()
        edited = read_checkpoint(scratch_path)
        edited.label = checkpoint.label
        format_named(target).write(edited, out, provenance=provenance, source_metadata=checkpoint.metadata)
    return results


def _edit_copy(
    checkpoint: Checkpoint,
    steps: Steps,
    out: BinaryIO,
    *,
    stats: bool,
    provenance: Mapping[str, Any] | None,
    on_progress: Progress | None = None,
) -> list[list[ChangedTensor]]:
    """The checkpoint in its own format, each step's storages rewritten, into ``out``."""
    fresh: set[str] = set().union(*(plan.fresh_storages() for plan, _ in steps))
    editor = format_named(checkpoint.format).editor(checkpoint, out, fresh=fresh, provenance=provenance)
    try:
        results = [
            apply_plan(plan, editor, generator=generator_for(g), stats=stats, on_progress=on_progress)
            for plan, g in steps
        ]
        editor.finish()
    finally:
        editor.close()
    return results


def _refuse_several_files(checkpoint: Checkpoint, steps: Steps) -> None:
    files = checkpoint.files
    if len(files) == 1:
        return
    changed = {checkpoint.storage_of(t.entry).file for plan, _ in steps for t in plan.tensors}
    reached = f", and the change reaches {len(changed)} of them" if len(changed) > 1 else ""
    raise UsageError(
        f"{checkpoint.label}: the checkpoint spans {len(files)} files{reached}; "
        "paramctl writes only checkpoints of one file so far"
        + (" into a stream or another format" if format_named(checkpoint.format).file_set(checkpoint) else "")
    )


def save_changes(
    checkpoint: Checkpoint,
    steps: Steps,
    destination: str | os.PathLike[str] | BinaryIO,
    *,
    to: str | None = None,
    stats: bool = True,
    provenance: Mapping[str, Any] | None = None,
    backup: str | os.PathLike[str] | None = None,
    on_progress: Progress | None = None,
) -> list[list[ChangedTensor]]:
    """:func:`write_changes` to a path (replaced atomically, optionally keeping a backup)
    or to a binary stream such as ``sys.stdout.buffer`` (via a temporary file)."""
    return save_changes_reporting(
        checkpoint,
        steps,
        destination,
        to=to,
        stats=stats,
        provenance=provenance,
        backup=backup,
        on_progress=on_progress,
    )[0]


def save_changes_reporting(
    checkpoint: Checkpoint,
    steps: Steps,
    destination: str | os.PathLike[str] | BinaryIO,
    *,
    to: str | None,
    stats: bool,
    provenance: Mapping[str, Any] | None,
    backup: str | os.PathLike[str] | None,
    on_progress: Progress | None = None,
) -> tuple[list[list[ChangedTensor]], SetWrite | None]:
    """:func:`save_changes`, and for a checkpoint of several files which files it wrote and
    how many bytes (``None`` for one file)."""
    from paramctl.atomic import atomic_file, copy_to_stream, scratch_file

    several = format_named(checkpoint.format).file_set(checkpoint)
    if several is not None and isinstance(destination, str | os.PathLike) and to in (None, checkpoint.format):
        if backup is not None:
            raise UsageError(f"{checkpoint.label}: --backup keeps one file; copy the directory instead")
        return save_file_set(
            checkpoint, steps, Path(destination), stats=stats, provenance=provenance, on_progress=on_progress
        )
    if isinstance(destination, str | os.PathLike):
        target = Path(destination)
        with atomic_file(target, backup=backup) as out:
            return write_changes(
                checkpoint,
                steps,
                out,
                to=to,
                stats=stats,
                provenance=provenance,
                scratch_dir=target.parent,
                on_progress=on_progress,
            ), None
    with scratch_file() as (out, _):
        results = write_changes(
            checkpoint, steps, out, to=to, stats=stats, provenance=provenance, on_progress=on_progress
        )
        copy_to_stream(out, destination)
    return results, None


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
    # For a checkpoint of several files: which were rewritten, and the bytes written.
    written: SetWrite | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **(self.written.to_dict() if self.written is not None else {}),
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
    (changed,), written = save_changes_reporting(
        checkpoint,
        [(plan, used_seed)],
        destination,
        to=target,
        stats=stats,
        provenance=write_record([plan], [used_seed]),
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
        written=written,
    )
