"""Editing an MXNet NDArray file: arrays keep their place, so only their bytes change.

The format has no checksums and no place for a provenance record, so an edit is the copy
with the selected arrays' data replaced; every other byte is the input's.

>>> NDArrayEditor.records_provenance
False
"""

from __future__ import annotations

from paramctl.formats._editor import StorageEditor


class NDArrayEditor(StorageEditor):
    """mxnet: the copy with storages replaced, nothing else to update."""

    records_provenance = False
