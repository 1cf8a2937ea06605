"""The one module that touches tensor values, and so the one that imports torch.

Everything here imports torch inside the function, so that importing paramctl stays cheap.
Values are read from a copy-on-write memory map of the file: only the pages of the tensor
asked for are read, and nothing is written back to the file.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paramctl.checkpoint import Checkpoint, PathPart, Storage, TensorEntry, join_path
from paramctl.errors import CorruptCheckpoint, UnsafePickle

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
        if storage.offset is None:
            raise CorruptCheckpoint(
                f"{self.checkpoint.path}: storage {storage.key} is compressed; cannot map it"
            )
        raw = torch.frombuffer(self._mapped(), dtype=torch.uint8, count=storage.nbytes, offset=storage.offset)
        return raw.view(torch_dtype(storage.dtype))

    def tensor(self, entry: TensorEntry) -> torch.Tensor:
        """The tensor ``entry`` describes, a view of the mapped file (copy-on-write)."""
        if self.checkpoint.fallback_tensors is not None:
            loaded: torch.Tensor = self.checkpoint.fallback_tensors[join_path(entry.path)]
            return loaded
        flat = self.storage(self.checkpoint.storage_of(entry))
        if entry.dtype != self.checkpoint.storage_of(entry).dtype:
            flat = flat.view(torch_dtype(entry.dtype))
        return flat.as_strided(entry.shape, entry.stride, entry.storage_offset)


def load_with_torch(path: Path, format_name: str) -> Checkpoint:
    """Read a checkpoint through ``torch.load(weights_only=True, mmap=True)``.

    Used only when the metadata reader meets a torch feature it does not model. Storage
    identity comes from the loaded storages' addresses; file offsets are unknown.
    """
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=format_name == "torch-zip")
    except pickle.UnpicklingError as exc:
        raise UnsafePickle(
            _unsupported_global(str(exc)), "torch's weights-only loader refused it too"
        ) from exc
    entries: list[TensorEntry] = []
    storages: dict[str, Storage] = {}
    tensors: dict[str, Any] = {}

    def convert(node: Any, path_parts: tuple[PathPart, ...]) -> Any:
        if isinstance(node, torch.Tensor):
            strided = node.layout == torch.strided
            name = join_path(path_parts)
            if strided:
                untyped = node.untyped_storage()
                key, nbytes = f"{untyped.data_ptr()}", untyped.nbytes()
            else:  # sparse and other layouts have no single storage to share
                key, nbytes = f"{node.layout}:{name}", 0
            storages.setdefault(key, Storage(key, "uint8", nbytes, None, str(node.device)))
            entry = TensorEntry(
                name,
                path_parts,
                tuple(node.shape),
                str(node.dtype).removeprefix("torch."),
                tuple(node.stride()) if strided else (),
                key,
                int(node.storage_offset()) if strided else 0,
                node.requires_grad,
                isinstance(node, torch.nn.Parameter),
            )
            entries.append(entry)
            tensors[name] = node
            return entry
        if isinstance(node, dict):
            return {
                k: convert(v, (*path_parts, k if isinstance(k, int) else str(k))) for k, v in node.items()
            }
        if isinstance(node, list | tuple):
            return type(node)(convert(v, (*path_parts, i)) for i, v in enumerate(node))
        return node

    payload = convert(obj, ())
    return Checkpoint(path, format_name, entries, storages, payload, fallback_tensors=tensors)


def _unsupported_global(message: str) -> str:
    marker = "GLOBAL "
    if marker in message:
        return message.split(marker, 1)[1].split()[0].rstrip(".,")
    return "an unsupported global"
