"""Editing a safetensors file: a new header (provenance in ``__metadata__``, every other key
kept), the data shifted with it.

>>> header = encode_header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
>>> int.from_bytes(header[:8], "little"), len(header) % 8
(56, 0)
>>> len(encode_header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, page_offset=4104))
4104
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, BinaryIO

from paramctl.checkpoint import Checkpoint
from paramctl.formats._editor import StorageEditor
from paramctl.formats._provenance import PROVENANCE_KEY, provenance_history
from paramctl.formats.safetensors.read import METADATA_KEY, read_header

_LENGTH = struct.Struct("<Q")
_PAGE = 4096


class SafetensorsEditor(StorageEditor):
    """safetensors: a new header (provenance in ``__metadata__``), the data shifted with it."""

    def __init__(self, checkpoint: Checkpoint, out: BinaryIO, **kwargs: Any) -> None:
        header, self._data_start, _ = read_header(checkpoint.path)
        self._header_bytes = header_with_provenance(
            header, kwargs.get("provenance"), page_offset=self._data_start
        )
        super().__init__(checkpoint, out, **kwargs)

    def _shift(self) -> int:
        return len(self._header_bytes) - self._data_start

    def _prefix(self) -> tuple[int, bytes | None]:
        return self._data_start, self._header_bytes


def header_with_provenance(
    header: dict[str, Any], provenance: Mapping[str, Any] | None, *, page_offset: int | None = None
) -> bytes:
    """A safetensors header (length prefix included) with ``provenance`` appended to the
    history under ``__metadata__["paramctl"]``; every other key is kept as it was.

    With ``page_offset`` (the old data start), the header is padded so that the data keeps
    its place within a page: the old data are then copied page onto page (file systems
    that share blocks can share them all), and a header that still fits keeps the data
    exactly where they were."""
    header = dict(header)
    metadata = dict(header.pop(METADATA_KEY, None) or {})
    if provenance:
        metadata[PROVENANCE_KEY] = json.dumps(
            [*provenance_history(metadata), dict(provenance)], sort_keys=True
        )
    ordered = {METADATA_KEY: metadata, **header} if metadata else header
    return encode_header(ordered, page_offset=page_offset)


def encode_header(header: Mapping[str, Any], *, page_offset: int | None = None) -> bytes:
    """JSON as safetensors writes it: compact, UTF-8, padded with spaces to 8 bytes (or so
    that the data start at ``page_offset`` modulo a page, a multiple of 8 too)."""
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    if page_offset is not None and page_offset % 8 == 0:
        text += b" " * ((page_offset - _LENGTH.size - len(text)) % _PAGE)
    return _LENGTH.pack(len(text)) + text
