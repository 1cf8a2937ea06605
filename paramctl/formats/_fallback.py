"""Reading a checkpoint through torch itself, for the features the metadata reader does not
model (sparse and quantized tensors, tensor subclasses).

``torch.load(weights_only=True)`` is torch's own restricted unpickler, so this is still safe;
storage identity comes from the loaded storages' addresses and file offsets are unknown.

>>> import os, tempfile, torch
>>> path = Path(tempfile.mkdtemp()) / "sparse.pt"
>>> torch.save({"s": torch.eye(2).to_sparse()}, path)
>>> [(e.name, e.shape) for e in load_with_torch(path, "torch-zip", mmap=True).entries]
[('s', (2, 2))]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint, PathPart, Storage, TensorEntry, join_path
from paramctl.errors import CorruptCheckpoint, UnsafePickle
from paramctl.formats._pickle_tree import check_tree


def load_with_torch(path: Path, format_name: str, *, mmap: bool) -> Checkpoint:
    """Read a checkpoint through ``torch.load(weights_only=True, mmap=True)``.

    Used only when the metadata reader meets a torch feature it does not model. Storage
    identity comes from the loaded storages' addresses; file offsets are unknown.
    """
    import pickle

    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise UnsafePickle(
            _unsupported_global(str(exc)), "torch's weights-only loader refused it too"
        ) from exc
    # Anything else torch raises means it cannot load the file either (a sparse tensor
    # whose indices fail torch's invariants, a rebuild called with the wrong arguments).
    except Exception as exc:
        first = next(iter(str(exc).splitlines()), "")[:200]
        raise CorruptCheckpoint(
            f"{path}: torch's weights-only loader cannot load it ({type(exc).__name__}: {first})"
        ) from exc
    # The same limits as the metadata reader's, before the tree is walked path by path.
    check_tree(obj, what=f"{path}: the pickle", is_tensor=lambda node: isinstance(node, torch.Tensor))
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
            storages.setdefault(key, Storage(key, path, "uint8", nbytes, None, str(node.device)))
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
