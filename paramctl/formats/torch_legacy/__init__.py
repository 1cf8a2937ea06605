"""PyTorch legacy checkpoints: the pre-1.6 layout, still written with
``torch.save(obj, f, _use_new_zipfile_serialization=False)``.

>>> import pickle
>>> from paramctl.formats.torch_legacy.layout import MAGIC_NUMBER
>>> FORMAT.sniff(pickle.dumps(MAGIC_NUMBER, protocol=2))
True
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from paramctl.formats._format import Format, Holds
from paramctl.formats.torch_legacy.layout import NAME, sniff
from paramctl.formats.torch_zip.layout import TORCH_SUFFIXES

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class TorchLegacy(Format):
    name = NAME
    title = "PyTorch legacy (before 1.6, _use_new_zipfile_serialization=False)"
    suffixes = TORCH_SUFFIXES
    holds = Holds(extras=True, nesting=True, ties=True, views=True, provenance=False)
    # Nothing needs new files in the pre-1.6 format; an existing one is still edited.
    no_writer = "does not write the legacy torch format; write torch-zip (.pt) instead"

    def sniff(self, head: bytes) -> bool:
        return sniff(head)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.torch_legacy.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        # Storages are replaced in place and the format has nowhere to record provenance:
        # the plain editor is all it needs.
        from paramctl.formats._editor import StorageEditor

        return StorageEditor

    def pickles(self, path: Path) -> Iterator[IO[bytes]]:
        # Each pickle on its own, ending where its STOP is, as torch's loader reads them.
        from paramctl.formats._source import mapped
        from paramctl.formats.torch_legacy.read import pickle_spans

        with mapped(path) as data:
            spans = pickle_spans(path, data)
            for start, end in spans:
                yield io.BytesIO(data[start:end])


FORMAT = TorchLegacy()
