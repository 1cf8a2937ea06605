"""Writing a new sharded Hugging Face checkpoint from any flat checkpoint: safetensors shards
``model-00001-of-0000N.safetensors`` and ``model.safetensors.index.json`` beside them, the
layout ``save_pretrained`` writes and ``from_pretrained`` loads.

Tensors fill shards in order; a shard is closed before it would pass ``max_shard_size``,
and a tensor larger than that gets a shard of its own (as ``huggingface_hub`` splits). The
index names every tensor's shard and the bytes of all of them (``metadata.total_size``).

>>> [len(shard) for shard in split_sizes([4, 4, 4, 10, 1], 8)]
[2, 1, 1, 1]
>>> shard_name(2, 3)
'model-00002-of-00003.safetensors'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from paramctl.checkpoint import Checkpoint, TensorEntry
from paramctl.formats.safetensors.write import check_flat, write_safetensors

if TYPE_CHECKING:
    from paramctl.atomic import FileSetWrite

INDEX = "model.safetensors.index.json"
# save_pretrained's default, "5GB": decimal gigabytes.
DEFAULT_MAX_SHARD_SIZE = 5 * 10**9


def shard_name(number: int, count: int) -> str:
    """The file name of shard ``number`` (from 1) of ``count``, as ``save_pretrained`` names it."""
    return f"model-{number:05d}-of-{count:05d}.safetensors"


def split_sizes(sizes: Sequence[int], max_size: int) -> list[list[int]]:
    """Indices of ``sizes`` grouped into shards of at most ``max_size`` bytes, in order."""
    shards: list[list[int]] = []
    filled = 0
    for index, size in enumerate(sizes):
        if not shards or (filled + size > max_size and shards[-1]):
            shards.append([])
            filled = 0
        shards[-1].append(index)
        filled += size
    return shards


def write_hf_sharded(
    checkpoint: Checkpoint, files: FileSetWrite, *, max_shard_size: int | None = None
) -> list[str]:
    """Write ``checkpoint`` (flat, one storage per tensor) as shards and their index into
    ``files``; returns the file names, the index last."""
    check_flat(checkpoint)
    entries = checkpoint.entries
    groups = split_sizes([entry.nbytes for entry in entries], max_shard_size or DEFAULT_MAX_SHARD_SIZE)
    names = [shard_name(number, len(groups)) for number in range(1, len(groups) + 1)]
    weight_map: dict[str, str] = {}
    for name, group in zip(names, groups, strict=True):
        shard_entries: list[TensorEntry] = [entries[index] for index in group]
        shard = replace(checkpoint, entries=shard_entries, payload=None, metadata={})
        write_safetensors(shard, files.open(name))
        weight_map.update((entry.name, name) for entry in shard_entries)
    index = {"metadata": {"total_size": sum(entry.nbytes for entry in entries)}, "weight_map": weight_map}
    files.open(INDEX).write((json.dumps(index, indent=2) + "\n").encode())
    return [*names, INDEX]
