"""A torch zip's own check: its structure read one way (every problem
:mod:`~paramctl.formats.torch_zip.archive` finds, not only the first), then every record
read to its end and its CRC-32 compared (``torch.load`` does not, so a flipped bit in
tensor data loads silently).

>>> import os, tempfile, torch
>>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
>>> torch.save({"w": torch.ones(2)}, path)
>>> verification = verify_zip(Path(path), None, None)
>>> verification.checked, verification.errors
(['zip structure', 'zip CRC-32'], 0)
"""

from __future__ import annotations

import zlib
from pathlib import Path

from paramctl.checkpoint import Checkpoint
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._format import Progress, Verification
from paramctl.formats.torch_zip.archive import TorchArchive, open_torch_zip
from paramctl.formats.torch_zip.structure import member_chunks


def verify_zip(
    path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None, *, torch_rules: bool = True
) -> Verification:
    """Every structural problem, then every record read through its CRC-32 (``torch_rules``:
    also what torch.load asks of a checkpoint's records)."""
    result = Verification()
    try:
        with open_torch_zip(path, torch_rules=torch_rules) as archive:
            result.checked.append("zip structure")
            for problem in archive.layout.problems:
                result.add(problem.severity, "zip", problem.name, problem.message)
            # The reader refuses a file for the first blocking problem: already a finding.
            result.covers_metadata = any(problem.blocks for problem in archive.layout.problems)
            result.checked.append("zip CRC-32")
            _check_crcs(archive, result, _record_owners(checkpoint), on_progress)
    except CorruptCheckpoint as exc:
        result.add("error", "zip", "", str(exc).replace(f"{path}: ", ""))
        result.covers_metadata = True  # the reader stops at the same error
    return result


def _check_crcs(
    archive: TorchArchive, result: Verification, owners: dict[str, str], on_progress: Progress | None
) -> None:
    troubled = {problem.name for problem in archive.layout.problems}
    for info in archive.entries:
        result.records += 1
        record = archive.layout.placed.get(id(info))
        if record is None or info.filename in troubled:
            continue  # its problem is already a finding
        crc = 0
        try:
            for chunk in member_chunks(archive.reading(record), record, info.filename):
                crc = zlib.crc32(chunk, crc)
                if on_progress:
                    on_progress(len(chunk))
        except CorruptCheckpoint as exc:
            result.add("error", "zip", info.filename, f"cannot be read ({exc})")
            continue
        if crc != info.CRC:
            owner = owners.get(info.filename.removeprefix(archive.root))
            detail = "CRC-32 mismatch: its bytes changed after writing"
            result.add("error", "crc", info.filename, detail + (f" (tensor {owner})" if owner else ""))


def _record_owners(checkpoint: Checkpoint | None) -> dict[str, str]:
    """Record name below the archive root -> the tensor names on that storage."""
    owners: dict[str, list[str]] = {}
    for entry in checkpoint.entries if checkpoint is not None else ():
        owners.setdefault(f"data/{entry.storage_key}", []).append(entry.name)
    return {record: ", ".join(names) for record, names in owners.items()}
