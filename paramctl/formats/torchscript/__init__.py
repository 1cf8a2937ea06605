"""TorchScript archives (``torch.jit.save``): parameters, buffers and constants by name.

>>> FORMAT.name, FORMAT.sniff_zip(["m/data.pkl", "m/constants.pkl", "m/code/__torch__.py"])
('torchscript', True)
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from paramctl.formats._format import Format, Holds, Progress, Verification
from paramctl.formats.torch_zip.layout import MAGIC
from paramctl.formats.torchscript.layout import NAME, is_torchscript

if TYPE_CHECKING:
    from paramctl.checkpoint import Checkpoint
    from paramctl.formats._editor import StorageEditor


class TorchScript(Format):
    name = NAME
    title = "TorchScript archive (torch.jit.save)"
    suffixes = (".pt", ".pth", ".jit", ".torchscript")
    holds = Holds(extras=True, nesting=True, ties=True, views=True, provenance=True)
    no_writer = (
        "does not write new TorchScript archives (their code comes from torch.jit); "
        "edit one with init, or convert to another format with --to"
    )

    def sniff(self, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def sniff_zip(self, members: Sequence[str]) -> bool:
        return is_torchscript(members)

    def read(self, path: Path) -> Checkpoint:
        from paramctl.formats.torchscript.read import read

        return read(path)

    def editor_class(self) -> type[StorageEditor]:
        from paramctl.formats.torchscript.edit import ScriptEditor

        return ScriptEditor

    def pickles(self, path: Path) -> Iterator[IO[bytes]]:
        # torch.load hands a TorchScript archive to torch.jit.load, which unpickles both;
        # a zip that could be read two ways is refused here as it is by read().
        from paramctl.formats._limits import LIMITS
        from paramctl.formats.torch_zip.archive import open_torch_zip

        with open_torch_zip(path, torch_rules=False) as archive:
            archive.refuse_problems()
            for name in ("data.pkl", "constants.pkl"):
                yield io.BytesIO(archive.member(name, LIMITS.pickle_bytes))

    def verify(self, path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
        from paramctl.formats.torch_zip.verify import verify_zip

        return verify_zip(path, checkpoint, on_progress, torch_rules=False)


FORMAT = TorchScript()
