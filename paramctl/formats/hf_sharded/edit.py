"""Editing one shard of a sharded checkpoint: the shard's own format edits it.

The shard is read alone (a safetensors file, a torch pickle), its own editor copies it with
storages replaced, and storage keys are translated between the checkpoint's ``shard/key``
and the shard's ``key``.

>>> shard_key("model-00001-of-00002.safetensors/w")
('model-00001-of-00002.safetensors', 'w')
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paramctl.checkpoint import Checkpoint
from paramctl.formats._editor import StorageEditor

if TYPE_CHECKING:
    import torch


def shard_key(key: str) -> tuple[str, str]:
    """A checkpoint storage key split into its shard's file name and the key in the shard."""
    shard, _, inner = key.partition("/")
    return shard, inner


class ShardEditor(StorageEditor):
    """A copy of one shard (``file``) with storages replaced, by the shard format's editor."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        out: BinaryIO,
        *,
        fresh: Collection[str] = (),
        provenance: Mapping[str, Any] | None = None,
        file: Path | None = None,
    ) -> None:
        from paramctl.formats import locate

        if file is None:
            raise ValueError(f"{checkpoint.label} spans several files: say which shard to edit")
        self.checkpoint = checkpoint
        self.source = file
        self._shard = file.name
        part_format = locate(file)[1]
        part = part_format.read(file)
        inner = [shard_key(key)[1] for key in fresh if shard_key(key)[0] == self._shard]
        self._inner = part_format.editor(part, out, fresh=inner, provenance=provenance)

    def _inner_key(self, key: str) -> str:
        shard, inner = shard_key(key)
        if shard != self._shard:
            raise ValueError(f"storage {key} is in {shard}, not {self._shard}")
        return inner

    @contextlib.contextmanager
    def span(self, key: str, start: int, end: int, *, read: bool = True) -> Iterator[torch.Tensor]:
        with self._inner.span(self._inner_key(key), start, end, read=read) as raw:
            yield raw

    def whole_crcs(self) -> dict[str, int | None]:
        return {f"{self._shard}/{key}": crc for key, crc in self._inner.whole_crcs().items()}

    @property
    def changed(self) -> set[str]:
        return {f"{self._shard}/{key}" for key in self._inner.changed}

    def finish(self) -> None:
        self._inner.finish()

    def close(self) -> None:
        self._inner.close()
