"""Editing a legacy torch file: storages are replaced in place, and the format has nowhere to
record provenance.

>>> LegacyEditor.records_provenance
False
"""

from __future__ import annotations

from paramctl.formats._editor import StorageEditor


class LegacyEditor(StorageEditor):
    """The pre-1.6 torch format: storages replaced in place; no room for provenance."""

    records_provenance = False
