"""Writing changes to a checkpoint that spans several files, as one atomic set.

The format says which files make the checkpoint and which one is its index
(:meth:`~paramctl.formats._format.Format.file_set`). Only the files holding changed storages
are rewritten, each by the format's editor for that file; in place the others are kept as
they are, into a new directory they are copied (never hard-linked: a later in-place write
would change both). The index is rewritten only when its content changes, and commits the
set: it is renamed last (:func:`paramctl.atomic.atomic_files`).

>>> SetWrite(["model-00001-of-00002.safetensors"], 1024).to_dict()
{'files_written': ['model-00001-of-00002.safetensors'], 'bytes_written': 1024}
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Chunk, TensorEntry
from paramctl.errors import UsageError
from paramctl.formats import format_of
from paramctl.formats._editor import StorageEditor
from paramctl.formats._format import FileSet, Progress
from paramctl.formats._io import copy_range

if TYPE_CHECKING:
    import torch

    from paramctl.change.fill import ChangedTensor
    from paramctl.change.write import Steps


@dataclass
class SetWrite:
    """Which of the set's files were written (relative names) and how many bytes."""

    files_written: list[str] = field(default_factory=list)
    bytes_written: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"files_written": self.files_written, "bytes_written": self.bytes_written}


class RoutingEditor(StorageEditor):
    """One editor per file of the set; each span goes to the editor of its storage's file."""

    def __init__(self, checkpoint: Checkpoint, editors: Mapping[Path, StorageEditor]) -> None:
        self.checkpoint = checkpoint
        self._editors = dict(editors)
        self._split = {entry.storage_key: entry for entry in checkpoint.entries if entry.chunks}

    @contextlib.contextmanager
    def span(self, key: str, start: int, end: int, *, read: bool = True) -> Iterator[torch.Tensor]:
        if key in self._split:
            with self._assembled(self._split[key], start, end, read=read) as raw:
                yield raw
            return
        with super().span(key, start, end, read=read) as raw:
            yield raw

    @contextlib.contextmanager
    def span_bytes(self, key: str, start: int, end: int, *, read: bool = True) -> Iterator[memoryview]:
        if key in self._split:
            raise ValueError(f"storage {key} is split in chunks: its bytes are not in one place")
        editor = self._editors[self.checkpoint.storages[key].file]
        with editor.span_bytes(key, start, end, read=read) as raw:
            yield raw

    @contextlib.contextmanager
    def _assembled(self, entry: TensorEntry, start: int, end: int, *, read: bool) -> Iterator[torch.Tensor]:
        """A split tensor's bytes, whole: gathered from its chunks (with ``read``), and
        scattered back to every chunk's storage when the block ends."""
        import torch

        from paramctl.torch_values import torch_dtype

        if (start, end) != (0, entry.nbytes):
            raise ValueError(f"{entry.name}: a tensor split in chunks is written whole")
        whole = torch.empty(entry.nbytes, dtype=torch.uint8)
        values = whole.view(torch_dtype(entry.dtype)).view(entry.shape)
        if read:
            for chunk, part in self._chunk_spans(entry, values, read=True):
                with part as raw:
                    _chunk_view(values, chunk).copy_(raw.view(values.dtype).view(chunk.sizes))
        yield whole
        for chunk, part in self._chunk_spans(entry, values, read=False):
            with part as raw:
                raw.view(values.dtype).view(chunk.sizes).copy_(_chunk_view(values, chunk))

    def _chunk_spans(
        self, entry: TensorEntry, values: torch.Tensor, *, read: bool
    ) -> Iterator[tuple[Chunk, contextlib.AbstractContextManager[torch.Tensor]]]:
        for chunk in entry.chunks:
            storage = self.checkpoint.storages[chunk.storage_key]
            editor = self._editors.get(storage.file)
            if editor is not None:
                yield chunk, editor.span(chunk.storage_key, 0, chunk.numel * values.element_size(), read=read)

    @property
    def changed(self) -> set[str]:
        return set().union(*(editor.changed for editor in self._editors.values()))

    def finish(self) -> None:
        for editor in self._editors.values():
            editor.finish()

    def close(self) -> None:
        for editor in self._editors.values():
            editor.close()


def _chunk_view(values: torch.Tensor, chunk: Chunk) -> torch.Tensor:
    index = tuple(
        slice(offset, offset + size) for offset, size in zip(chunk.offsets, chunk.sizes, strict=True)
    )
    return values[index]


def changed_files(checkpoint: Checkpoint, steps: Steps) -> list[Path]:
    """The files holding a storage some step writes, in file-set order."""
    keys = {
        key for plan, _ in steps for planned in plan.tensors for key in checkpoint.storage_keys(planned.entry)
    }
    files = {checkpoint.storages[key].file for key in keys}
    return [path for path in checkpoint.files if path in files]


def output_directory(files: FileSet, checkpoint: Checkpoint, destination: Path) -> tuple[Path, bool]:
    """Where the set goes and whether that is in place (the input's directory or index)."""
    same = {files.root.resolve(), checkpoint.path.resolve()}
    if destination.exists() and destination.resolve() in same:
        return files.root, True
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"-o {destination}: a checkpoint of several files is written to a directory")
    clash = [name for name in files.members if (destination / name).exists()]
    if clash:
        raise UsageError(f"-o {destination}: already holds {clash[0]}; give a new or empty directory")
    destination.mkdir(parents=True, exist_ok=True)
    return destination, False


def save_file_set(
    checkpoint: Checkpoint,
    steps: Steps,
    destination: Path,
    *,
    stats: bool,
    provenance: Mapping[str, Any] | None,
    on_progress: Progress | None = None,
) -> tuple[list[list[ChangedTensor]], SetWrite]:
    """Apply ``steps`` and write the checkpoint's set of files into ``destination`` (a
    directory, or the input itself for in place)."""
    from paramctl.atomic import atomic_files

    fmt = format_of(checkpoint)
    files = fmt.file_set(checkpoint)
    assert files is not None
    target, in_place = output_directory(files, checkpoint, destination)
    changed = changed_files(checkpoint, steps)
    fresh: set[str] = set().union(*(plan.fresh_storages() for plan, _ in steps))
    report = SetWrite()
    with atomic_files(target, last=files.index, label=str(destination)) as written:
        outputs = {path: written.open(_member(files, path)) for path in changed}
        results = _edit(checkpoint, steps, outputs, fresh, provenance, stats, on_progress)
        index = fmt.new_index(checkpoint, changed)
        kept = [] if in_place else [name for name in files.data_files if files.root / name not in outputs]
        if index is not None:
            written.open(files.index or "").write(index)
        elif files.index is not None and not in_place:
            kept.append(files.index)
        for name in kept:
            _copy(files.root / name, written.open(name))
        report.files_written = [_member(files, path) for path in changed]
        report.files_written += [files.index] if index is not None and files.index else []
        report.bytes_written = sum(os.fstat(out.fileno()).st_size for out in outputs.values()) + len(
            index or b""
        )
    return results, report


def _edit(
    checkpoint: Checkpoint,
    steps: Steps,
    outputs: Mapping[Path, BinaryIO],
    fresh: Collection[str],
    provenance: Mapping[str, Any] | None,
    stats: bool,
    on_progress: Progress | None,
) -> list[list[ChangedTensor]]:
    from paramctl.change.fill import apply_plan, generator_for

    fmt = format_of(checkpoint)
    editors: dict[Path, StorageEditor] = {}
    # A split tensor written whole overwrites every chunk of it.
    fresh = {*fresh, *(c.storage_key for e in checkpoint.entries if e.storage_key in fresh for c in e.chunks)}
    try:
        for path, out in outputs.items():
            own = [key for key in fresh if checkpoint.storages[key].file == path]
            editors[path] = fmt.editor(checkpoint, out, fresh=own, provenance=provenance, file=path)
        router = RoutingEditor(checkpoint, editors)
        results = [
            apply_plan(plan, router, generator=generator_for(g), stats=stats, on_progress=on_progress)
            for plan, g in steps
        ]
        router.finish()
    finally:
        for editor in editors.values():
            editor.close()
    return results


def _member(files: FileSet, path: Path) -> str:
    name = os.path.relpath(path, files.root)
    if name not in files.members:
        raise ValueError(f"{path} is not one of the checkpoint's files")
    return name


def _copy(source: Path, out: BinaryIO) -> None:
    """A copy of an unchanged file into the new set (the kernel's copy; never a link)."""
    with open(source, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        copy_range(file.fileno(), out.fileno(), 0, 0, size)
