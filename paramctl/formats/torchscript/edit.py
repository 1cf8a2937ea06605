"""Editing a TorchScript archive: a torch zip edit whose constants live in ``constants/``.

The code, the pickles and every record not changed are copied byte for byte, so
``torch.jit.load`` loads the result as it loaded the input.

>>> ScriptEditor.__mro__[1].__name__
'ZipEditor'
"""

from __future__ import annotations

import zipfile

from paramctl.formats.torch_zip.edit import ZipEditor
from paramctl.formats.torchscript.read import record_name


class ScriptEditor(ZipEditor):
    """torchscript: a zip edit that finds constants' records in their own folder."""

    def _record(self, key: str) -> zipfile.ZipInfo:
        return self._infos[record_name(self._root, key)]
