"""Writing a new torch.distributed.checkpoint directory from any checkpoint, as one rank's
``dcp.save`` writes it: ``__0_0.distcp`` holding each tensor as a ``torch.save`` archive one
after another (streamed, in the layout :mod:`paramctl.formats.torch_zip.write` writes), and
``.metadata``, torch's own ``Metadata`` record naming each tensor's dtype, shape, one chunk
and the bytes holding it; ``torch.distributed.checkpoint.load`` reads it.

Non-tensor values are kept as ``dcp.save`` keeps them, ``torch.save`` bytes of their own;
values paramctl read as stand-ins (a ``torch.dtype`` in a training checkpoint) are refused.

>>> RANK_FILE
'__0_0.distcp'
"""

from __future__ import annotations

import io
import pickle
from dataclasses import replace
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, Extra
from paramctl.errors import UsageError
from paramctl.formats.dcp.layout import METADATA
from paramctl.formats.torch_zip.write import write_torch_zip

if TYPE_CHECKING:
    from paramctl.atomic import FileSetWrite

RANK_FILE = "__0_0.distcp"
_PLAIN = (int, float, str, bool, bytes, type(None))


class _Shifted(io.RawIOBase):
    """``out`` seen from ``base`` on: each item is a zip archive of its own, whose offsets
    count from its first byte (torch's zip reader, unlike Python's, takes no prefix)."""

    def __init__(self, out: BinaryIO, base: int) -> None:
        super().__init__()
        self.out, self.base = out, base

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self.out.write(data)

    def tell(self) -> int:
        return self.out.tell() - self.base

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position += self.base
        return self.out.seek(position, whence) - self.base

    def flush(self) -> None:
        self.out.flush()


def _plain(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str | int) and _plain(item) for key, item in value.items())
    return type(value) in _PLAIN


def write_dcp(checkpoint: Checkpoint, files: FileSetWrite, *, max_shard_size: int | None = None) -> list[str]:
    """Write ``checkpoint`` (one storage per tensor) as a DCP directory into ``files``."""
    import torch
    from torch.distributed.checkpoint import metadata as dcp_metadata
    from torch.distributed.checkpoint.filesystem import _StorageInfo

    extras = checkpoint.extras()
    odd = next((extra for extra in extras if not _plain(extra.value)), None)
    if odd is not None:
        raise UsageError(
            f"{checkpoint.label}: {odd.name} is a {type(odd.value).__name__}, which paramctl's DCP writer "
            "cannot hold; leave the other values out with --drop-extras"
        )
    out = files.open(RANK_FILE)
    tensors: dict[str, Any] = {}
    storage_data: dict[Any, Any] = {}
    for entry in checkpoint.entries:
        start = out.tell()
        single = replace(checkpoint, entries=[entry], payload=replace(entry, path=()))
        write_torch_zip(single, _Shifted(out, start))  # type: ignore[arg-type]
        out.seek(0, io.SEEK_END)
        origin = torch.Size([0] * len(entry.shape))
        size = torch.Size(entry.shape)
        tensors[entry.name] = dcp_metadata.TensorStorageMetadata(
            properties=dcp_metadata.TensorProperties(dtype=getattr(torch, entry.dtype)),
            size=size,
            chunks=[dcp_metadata.ChunkStorageMetadata(offsets=origin, sizes=size)],
        )
        index = dcp_metadata.MetadataIndex(entry.name, origin)
        storage_data[index] = _StorageInfo(RANK_FILE, start, out.tell() - start)
    for extra in extras:
        _write_extra(extra, out, tensors, storage_data)
    planner_data = {name: (name,) for name in tensors}
    record = dcp_metadata.Metadata(
        state_dict_metadata=tensors, planner_data=planner_data, storage_data=storage_data
    )
    files.open(METADATA).write(pickle.dumps(record))
    return [RANK_FILE, METADATA]


def _write_extra(extra: Extra, out: Any, tensors: dict[str, Any], storage_data: dict[Any, Any]) -> None:
    import torch
    from torch.distributed.checkpoint import metadata as dcp_metadata
    from torch.distributed.checkpoint.filesystem import _StorageInfo

    start = out.tell()
    torch.save(extra.value, out)
    tensors[extra.name] = dcp_metadata.BytesStorageMetadata()
    storage_data[dcp_metadata.MetadataIndex(extra.name)] = _StorageInfo(RANK_FILE, start, out.tell() - start)


__all__ = ["write_dcp"]
