"""A safetensors file's own check: each header entry well-formed, and the entries tiling the
data section exactly, in order, with no hole, overlap, offset past the end, or size that
disagrees with the shape (what the reference loader demands).

>>> import os, tempfile, torch
>>> from safetensors.torch import save_file
>>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
>>> save_file({"w": torch.ones(2)}, path)
>>> verify_layout(Path(path), None, None).findings
[]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paramctl.checkpoint import Checkpoint
from paramctl.dtypes import BY_SAFETENSORS_CODE
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._format import Progress, Verification
from paramctl.formats.safetensors.read import METADATA_KEY, read_header


def verify_layout(path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
    """Each entry well-formed, and the entries tiling the data section exactly."""
    # Every problem the reader refuses a file for is one of these findings.
    result = Verification(covers_metadata=True)
    try:
        header, _, data_length = read_header(path)
    except CorruptCheckpoint as exc:
        result.add("error", "header", "", str(exc))
        return result
    result.checked.append("safetensors layout")
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == METADATA_KEY:
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                result.add("error", "header", name, "must map strings to strings")
            continue
        span = _safetensors_span(name, info, data_length, result)
        if span is not None:
            spans.append((*span, name))
    spans.sort()
    position, previous = 0, ""
    for start, end, name in spans:
        if start > position:
            after = f" after {previous}" if previous else " at the start"
            result.add("error", "coverage", name, f"a hole of {start - position} bytes{after}")
        elif start < position:
            result.add("error", "coverage", name, f"overlaps {previous} by {position - start} bytes")
        position, previous = max(position, end), name
    if position < data_length and spans:
        result.add("error", "coverage", "", f"{data_length - position} bytes after the last tensor")
    return result


def _safetensors_span(name: str, info: Any, data_length: int, result: Verification) -> tuple[int, int] | None:
    try:
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        begin, end = offsets
    except (KeyError, TypeError, ValueError):
        result.add("error", "header", name, "needs dtype, shape and two data_offsets")
        return None
    element = BY_SAFETENSORS_CODE.get(code) if isinstance(code, str) else None
    if element is None:
        result.add("error", "header", name, f"unknown dtype {code!r}")
        return None
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        result.add("error", "header", name, f"bad shape {shape!r}")
        return None
    if not (isinstance(begin, int) and isinstance(end, int)) or not 0 <= begin <= end:
        result.add("error", "offsets", name, f"bad data offsets {offsets!r}")
        return None
    if end > data_length:
        result.add(
            "error",
            "offsets",
            name,
            f"data offsets [{begin}, {end}] run past the {data_length} bytes of data",
        )
        return None
    numel = 1
    for size in shape:
        numel *= size
    if end - begin != numel * element.itemsize:
        result.add(
            "error",
            "offsets",
            name,
            f"data offsets span {end - begin} bytes, the shape needs {numel * element.itemsize}",
        )
    return begin, end
