"""The one module that touches tensor values, and so the one that imports torch.

Everything here imports torch inside the function, so that importing paramctl stays cheap.
Values are read from a copy-on-write memory map of the file: only the pages of the tensor
asked for are read, and nothing is written back to the file.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Storage, TensorEntry, join_path
from paramctl.errors import CorruptCheckpoint, UsageError
from paramctl.formats._io import read_at
from paramctl.formats._limits import check_readable, check_storage_in_file

if TYPE_CHECKING:
    import torch


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, name)  # type: ignore[no-any-return]


class ValueReader:
    """Reads tensors of one checkpoint, one at a time, from a memory map of its file.

    >>> from paramctl import read_checkpoint
    >>> import torch, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> torch.save({"w": torch.arange(6.0).reshape(2, 3)}, path)
    >>> ckpt = read_checkpoint(path)
    >>> with ValueReader(ckpt) as values:
    ...     values.tensor(ckpt.entry("w"))[1]
    tensor([3., 4., 5.])
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self._file: Any = None
        self._map: mmap.mmap | None = None

    def __enter__(self) -> ValueReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._map = None  # tensors still viewing the map keep it alive until they go
        if self._file is not None:
            self._file.close()
            self._file = None

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            self._file = open(self.checkpoint.path, "rb")  # noqa: SIM115 - lives as long as the map
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_COPY)
        return self._map

    def prefetch(self, storage: Storage, limit: int = 64 << 20) -> None:
        """Ask the kernel to start reading a storage's pages (up to ``limit`` bytes) now,
        so the disk works while the CPU is busy with the previous tensor."""
        self._advise(storage, getattr(mmap, "MADV_WILLNEED", None), limit)

    def release(self, storage: Storage) -> None:
        """Let go of a storage's pages once its values are used, so resident memory stays
        near one tensor however big the file. The map is copy-on-write and only read, so
        the pages come back from the file if the storage is read again."""
        self._advise(storage, getattr(mmap, "MADV_DONTNEED", None), storage.nbytes)

    def _advise(self, storage: Storage, advice: int | None, limit: int) -> None:
        if advice is None or storage.offset is None or storage.nbytes == 0 or self._map is None:
            return
        start = storage.offset - storage.offset % mmap.PAGESIZE
        end = min(storage.offset + min(storage.nbytes, limit), len(self._map))
        if end > start:
            self._map.madvise(advice, start, end - start)

    def storage(self, storage: Storage) -> torch.Tensor:
        """A flat tensor over one storage's bytes, in the storage's dtype."""
        import torch

        if self.checkpoint.byteorder != "little":
            raise CorruptCheckpoint(f"{self.checkpoint.path}: big-endian tensor data is not supported")
        if storage.nbytes == 0:
            return torch.empty(0, dtype=torch_dtype(storage.dtype))
        check_storage_in_file(self.checkpoint, storage)
        if storage.offset is None:
            raise CorruptCheckpoint(
                f"{self.checkpoint.path}: storage {storage.key} is compressed; cannot map it"
            )
        raw = torch.frombuffer(self._mapped(), dtype=torch.uint8, count=storage.nbytes, offset=storage.offset)
        return raw.view(torch_dtype(storage.dtype))

    def tensor(self, entry: TensorEntry) -> torch.Tensor:
        """The tensor ``entry`` describes, a view of the mapped file (copy-on-write)."""
        check_readable(self.checkpoint, entry)
        if self.checkpoint.fallback_tensors is not None:
            loaded: torch.Tensor = self.checkpoint.fallback_tensors[join_path(entry.path)]
            return loaded
        flat = self.storage(self.checkpoint.storage_of(entry))
        if entry.dtype != self.checkpoint.storage_of(entry).dtype:
            flat = flat.view(torch_dtype(entry.dtype))
        return flat.as_strided(entry.shape, entry.stride, entry.storage_offset)


class SpanReader:
    """Reads single tensors of a checkpoint into memory of their own, one at a time.

    Unlike a memory map of the whole file, nothing stays resident after a tensor is
    dropped, so reading every tensor of a large file keeps memory near the largest one.
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self._files: dict[Path, BinaryIO] = {}

    def __enter__(self) -> SpanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()

    def fileno(self, path: Path) -> int:
        """A descriptor of one of the checkpoint's files, opened once."""
        if path not in self._files:
            self._files[path] = open(path, "rb")  # noqa: SIM115 - closed by close()
        return self._files[path].fileno()

    def tensor(self, entry: TensorEntry) -> torch.Tensor:
        """A tensor with ``entry``'s dtype, shape and strides, owning a copy of its bytes."""
        import torch

        check_readable(self.checkpoint, entry)
        if self.checkpoint.fallback_tensors is not None:
            loaded: torch.Tensor = self.checkpoint.fallback_tensors[join_path(entry.path)]
            return loaded
        storage = self.checkpoint.storage_of(entry)
        if storage.offset is None and storage.nbytes:
            raise UsageError(f"{self.checkpoint.label}: storage {storage.key} is compressed; cannot read it")
        start, end = entry.byte_span
        if end == start:
            raw = torch.empty(0, dtype=torch.uint8)
        else:
            assert storage.offset is not None
            block = bytearray(end - start)
            read_at(self.fileno(storage.file), memoryview(block), storage.offset + start)
            raw = torch.frombuffer(block, dtype=torch.uint8)
        values = raw.view(torch_dtype(entry.dtype))
        return values.as_strided(entry.shape, entry.stride, entry.storage_offset - start // entry.itemsize)
