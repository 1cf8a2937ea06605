"""A torch zip's own check: every record read to its end, so :mod:`zipfile` compares each
CRC-32 (``torch.load`` does not, so a flipped bit in tensor data loads silently).

>>> import os, tempfile, torch
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2)}, path)
>>> verification = verify_zip(Path(path), None, None)
>>> verification.checked, verification.errors
(['zip CRC-32'], 0)
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from pathlib import Path

from paramctl.checkpoint import Checkpoint
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._format import Progress, Verification
from paramctl.formats._source import open_binary
from paramctl.formats.torch_zip.read import find_root

_READ_CHUNK = 1 << 20


def verify_zip(path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
    """Read every record to its end; zipfile compares each CRC-32 when a record is done."""
    result = Verification()
    owners = _record_owners(checkpoint)
    try:
        archive = zipfile.ZipFile(open_binary(path))
    except zipfile.BadZipFile as exc:
        result.add("error", "zip", "", f"the archive is damaged or truncated ({exc})")
        return result
    result.checked.append("zip CRC-32")
    with archive:
        root = ""
        with contextlib.suppress(CorruptCheckpoint):
            root = find_root(archive.namelist())
        for info in archive.infolist():
            result.records += 1
            name = info.filename
            try:
                with archive.open(info) as record:
                    while chunk := record.read(_READ_CHUNK):
                        if on_progress:
                            on_progress(len(chunk))
            except zipfile.BadZipFile as exc:
                detail = "CRC-32 mismatch: its bytes changed after writing" if "CRC" in str(exc) else str(exc)
                owner = owners.get(name.removeprefix(root))
                result.add("error", "crc", name, detail + (f" (tensor {owner})" if owner else ""))
            # zipfile raises NotImplementedError for compression methods it cannot decode.
            except (OSError, EOFError, NotImplementedError, zlib.error) as exc:
                result.add("error", "zip", name, f"cannot be read ({exc})")
    return result


def _record_owners(checkpoint: Checkpoint | None) -> dict[str, str]:
    """Record name below the archive root -> the tensor names on that storage."""
    owners: dict[str, list[str]] = {}
    for entry in checkpoint.entries if checkpoint is not None else ():
        owners.setdefault(f"data/{entry.storage_key}", []).append(entry.name)
    return {record: ", ".join(names) for record, names in owners.items()}
