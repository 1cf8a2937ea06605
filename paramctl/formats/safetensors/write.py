"""Writing a new safetensors file from any checkpoint: a flat name -> tensor table.

Names that are one tensor (tied weights) are stored once and the others recorded in
``__metadata__`` as ``{dropped: kept}``, as ``safetensors.torch.save_model`` does. What
safetensors cannot hold is refused with the reason, never dropped: non-tensor values, nested
dicts, views that partly overlap, dtypes it has no code for.

>>> from paramctl.checkpoint import Checkpoint
>>> from pathlib import Path
>>> check_flat(Checkpoint(Path("m.pt"), "x", [], {}, payload={"epoch": 3}))
Traceback (most recent call last):
paramctl.errors.UsageError: m.pt: safetensors holds tensors only, ... (under epoch); write a .pt file ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint, TensorEntry
from paramctl.dtypes import dtype as lookup_dtype
from paramctl.errors import UsageError
from paramctl.formats._io import copy_range, write_at
from paramctl.formats._provenance import PROVENANCE_KEY, provenance_history
from paramctl.formats.safetensors.edit import encode_header
from paramctl.formats.safetensors.read import METADATA_KEY
from paramctl.storage import distinct_views, partial_overlaps

if TYPE_CHECKING:
    import torch


def check_flat(checkpoint: Checkpoint) -> None:
    """Refuse what a flat safetensors table cannot represent."""
    if checkpoint.payload is None:
        return
    extras = checkpoint.extras()
    if extras:
        where = list(dict.fromkeys(str(extra.path[0]) if extra.path else "(root)" for extra in extras))
        shown = ", ".join(where[:6]) + (f" and {len(where) - 6} more" if len(where) > 6 else "")
        raise UsageError(
            f"{checkpoint.label}: safetensors holds tensors only, and this checkpoint also has "
            f"{len(extras)} other values (under {shown}); write a .pt file to keep them"
        )
    payload = checkpoint.payload
    if not isinstance(payload, dict) or not all(isinstance(v, TensorEntry) for v in payload.values()):
        raise UsageError(
            f"{checkpoint.label}: safetensors holds one flat name → tensor table, and this checkpoint is "
            "nested; write a .pt file to keep its structure"
        )


def write_safetensors(
    checkpoint: Checkpoint,
    out: BinaryIO,
    *,
    provenance: Mapping[str, Any] | None = None,
    source_metadata: Mapping[str, str] | None = None,
) -> None:
    """Write a flat checkpoint as safetensors; tied names become ``__metadata__`` aliases.

    ``source_metadata`` is not carried over: the safetensors metadata of the new file is
    the aliases and the provenance record.
    """
    check_flat(checkpoint)
    kept, aliases = _dedupe(checkpoint)
    metadata: dict[str, str] = dict(aliases)
    if provenance:
        metadata[PROVENANCE_KEY] = json.dumps([*provenance_history({}), dict(provenance)], sort_keys=True)
    header: dict[str, Any] = {METADATA_KEY: metadata} if metadata else {}
    position = 0
    for entry in kept:
        code = lookup_dtype(entry.dtype).safetensors_code
        if code is None:
            raise UsageError(f"{entry.name}: safetensors has no code for {entry.dtype}")
        header[entry.name] = {
            "dtype": code,
            "shape": list(entry.shape),
            "data_offsets": [position, position + entry.nbytes],
        }
        position += entry.nbytes
    out.write(encode_header(header))
    out.flush()
    base = out.tell()
    from paramctl.values import ValueReader

    with ValueReader(checkpoint) as reader:
        written = 0
        for entry in kept:
            storage = checkpoint.storage_of(entry)
            start, end = entry.byte_span
            if entry.is_contiguous and end - start == entry.nbytes and storage.offset is not None:
                source = reader.fileno(storage.file)
                copy_range(source, out.fileno(), storage.offset + start, base + written, entry.nbytes)
            elif entry.nbytes:
                _write_contiguous(out, reader.tensor(entry), base + written)
            written += entry.nbytes
    out.seek(base + written)
    out.truncate()


def _write_contiguous(out: BinaryIO, values: torch.Tensor, offset: int) -> None:
    import torch

    block = bytearray(values.numel() * values.element_size())
    torch.frombuffer(block, dtype=torch.uint8).view(values.dtype).view(values.shape).copy_(values)
    write_at(out.fileno(), memoryview(block), offset)


def _dedupe(checkpoint: Checkpoint) -> tuple[list[TensorEntry], dict[str, str]]:
    """One entry per distinct tensor and ``{other name: kept name}`` for the ties; views of
    one storage that overlap without being the same tensor cannot be stored."""
    for first, second in partial_overlaps(checkpoint.entries):
        raise UsageError(
            f"{first.name} and {second.name} share bytes without being the same tensor; "
            "safetensors cannot store that (write a .pt file)"
        )
    return distinct_views(checkpoint.entries)
