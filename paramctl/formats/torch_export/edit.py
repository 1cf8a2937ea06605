"""Editing a torch.export archive: a torch zip edit rooted where ``archive_format`` is.

Records sit at ``<root>/data/<kind>/<name>``, which is where a torch zip edit looks for a
storage's record; the graph, configs and sample inputs are copied byte for byte.

>>> ExportEditor.__mro__[1].__name__
'ZipEditor'
"""

from __future__ import annotations

from paramctl.errors import CorruptCheckpoint
from paramctl.formats.torch_export.layout import export_root
from paramctl.formats.torch_zip.edit import ZipEditor


class ExportEditor(ZipEditor):
    """torch-export: a zip edit under the archive's own root."""

    def _archive_root(self, names: list[str]) -> str:
        root = export_root(names)
        if root is None:
            raise CorruptCheckpoint("a zip file, but not a torch.export archive (no archive_format)")
        return root
