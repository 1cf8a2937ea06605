"""A safetensors file's own check: every problem the reader refuses a file for (it stops at
the first), from :func:`~paramctl.formats.safetensors.read.header_problems`: each header
entry well-formed, and the entries tiling the data section exactly, in order, with no hole,
overlap, offset past the end, or size that disagrees with the shape (what the reference
loader demands).

>>> import os, tempfile, torch
>>> from safetensors.torch import save_file
>>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
>>> save_file({"w": torch.ones(2)}, path)
>>> verify_layout(Path(path), None, None).findings
[]
"""

from __future__ import annotations

from pathlib import Path

from paramctl.checkpoint import Checkpoint
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._format import Progress, Verification
from paramctl.formats.safetensors.read import HeaderProblem, header_problems, read_header


def verify_layout(path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
    """Each entry well-formed, and the entries tiling the data section exactly."""
    # Every problem the reader refuses a file for is one of these findings.
    result = Verification(covers_metadata=True)
    try:
        header, _, data_length = read_header(path)
    except CorruptCheckpoint as exc:
        result.add("error", "header", "", str(exc).replace(f"{path}: ", ""))
        return result
    result.checked.append("safetensors layout")
    for found in header_problems(header, data_length):
        if isinstance(found, HeaderProblem):
            result.add("error", found.check, found.name, found.message)
    return result
