"""Editing a GGUF file: a copy with some tensors' bytes replaced.

Every tensor keeps its offset and size, so the header (every key-value, every tensor info)
and every other tensor's data come through byte-identical. No provenance is recorded: a new
key-value would change the header's length and move the data.

>>> GGUFEditor.records_provenance
False
"""

from __future__ import annotations

from paramctl.formats._editor import StorageEditor


class GGUFEditor(StorageEditor):
    """GGUF: storages are tensor data regions, rewritten where they are; nothing else changes."""

    records_provenance = False
