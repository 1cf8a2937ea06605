"""A GGUF file's own checks: each tensor's type known, its data aligned as the header's
``general.alignment`` demands, inside the file, and overlapping no other tensor's.

>>> import os, tempfile, numpy as np, gguf
>>> path = os.path.join(tempfile.mkdtemp(), "m.gguf")
>>> writer = gguf.GGUFWriter(path, "llama")
>>> writer.add_tensor("output.weight", np.ones((2, 32), np.float32))
>>> writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file()
>>> writer.close()
>>> verify_layout(Path(path), None, None).findings
[]
"""

from __future__ import annotations

from pathlib import Path

from paramctl.checkpoint import Checkpoint
from paramctl.dtypes import BY_GGML_CODE
from paramctl.errors import CorruptCheckpoint
from paramctl.formats._format import Progress, Verification
from paramctl.formats.gguf.read import Header, read_header


def verify_layout(path: Path, checkpoint: Checkpoint | None, on_progress: Progress | None) -> Verification:
    """Alignment, bounds and overlaps of every tensor's data."""
    result = Verification(covers_metadata=True)
    try:
        header = read_header(path)
    except CorruptCheckpoint as exc:
        result.add("error", "header", "", str(exc))
        return result
    result.checked.append("GGUF layout")
    spans = _spans(header, result)
    spans.sort()
    end, previous = 0, ""
    for start, stop, name in spans:
        if start < end:
            result.add("error", "overlap", name, f"overlaps {previous} by {min(end, stop) - start} bytes")
        if stop > end:
            end, previous = stop, name
    return result


def _spans(header: Header, result: Verification) -> list[tuple[int, int, str]]:
    spans = []
    if header.data_start % header.alignment:
        result.add(
            "error",
            "alignment",
            "",
            f"data starts at {header.data_start}, not a multiple of {header.alignment}",
        )
    for info in header.tensors:
        element = BY_GGML_CODE.get(info.ggml_code)
        if element is None:
            result.add("error", "type", info.name, f"unknown GGML type {info.ggml_code}")
            continue
        numel = 1
        for size in info.dims:
            numel *= size
        if info.dims and info.dims[0] % element.block_size:
            result.add(
                "error",
                "shape",
                info.name,
                f"rows of {info.dims[0]} are not whole {element.name} blocks of {element.block_size}",
            )
        if info.offset % header.alignment:
            result.add(
                "error",
                "alignment",
                info.name,
                f"data offset {info.offset} is not a multiple of {header.alignment}",
            )
        start = header.data_start + info.offset
        stop = start + element.nbytes_for(numel)
        if stop > header.file_size:
            result.add(
                "error",
                "bounds",
                info.name,
                f"bytes {start}..{stop} run past the end of the {header.file_size}-byte file",
            )
        spans.append((start, stop, info.name))
    return spans
