"""What names a torch.distributed.checkpoint directory: its ``.metadata`` and the rank
files beside it; kept apart from the reader so that detecting one costs no imports.

>>> candidates(Path("no-such-directory"))
[]
"""

from __future__ import annotations

from pathlib import Path

from paramctl.errors import UsageError

NAME = "dcp"
METADATA = ".metadata"
SHARD_SUFFIX = ".distcp"


def candidates(path: Path) -> list[Path]:
    """``path`` when it is a DCP directory (or its ``.metadata``); a rank file given alone
    is a usage error naming its directory."""
    if path.is_dir():
        return [path] if (path / METADATA).is_file() else []
    if path.name == METADATA and path.is_file():
        return [path.parent]
    if path.name.endswith(SHARD_SUFFIX) and (path.parent / METADATA).is_file():
        raise UsageError(
            f"{path}: is one rank's shard of the torch.distributed.checkpoint directory "
            f"{path.parent}; give the directory instead"
        )
    return []
