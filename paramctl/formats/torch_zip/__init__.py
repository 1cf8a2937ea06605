"""PyTorch zip checkpoints: everything ``torch.save`` has written since 1.6.

>>> FORMAT.name, FORMAT.sniff(b"PK\x03\x04")
('torch-zip', True)
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from paramctl.formats._format import Format, Holds, Progress, Verification, Writer
from paramctl.formats.torch_zip.layout import MAGIC, NAME, TORCH_SUFFIXES

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class TorchZip(Format):
    name = NAME
    title = "PyTorch zip (torch.save since 1.6)"
    suffixes = TORCH_SUFFIXES
    holds = Holds(extras=True, nesting=True, ties=True, views=True, provenance=True)
    torch_mmap = True

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.torch_zip.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.torch_zip.edit import ZipEditor

        return ZipEditor

    def writer(self) -> Writer:
        from paramctl.formats.torch_zip.write import write_torch_zip

        return write_torch_zip

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        from paramctl.formats.torch_zip.verify import verify_zip

        return verify_zip(path, checkpoint, on_progress)

    def pickles(self, path: Path) -> Iterator[IO[bytes]]:
        # A zip that could be read two ways is refused here as it is by read().
        from paramctl.formats._limits import LIMITS
        from paramctl.formats.torch_zip.archive import open_torch_zip

        with open_torch_zip(path) as archive:
            archive.refuse_problems()
            yield io.BytesIO(archive.member("data.pkl", LIMITS.pickle_bytes))


FORMAT = TorchZip()
