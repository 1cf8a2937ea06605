"""Coverage-guided fuzzing of paramctl's readers with atheris, for long runs (nights).

Each input's first byte picks a reader: the safetensors header parser, the allowlist
unpickler (with paramctl's opcode scan in front), the zip reader, or the GGUF, .npy, .npz
or MXNet reader; the rest is the file.
The property is the suite's (tests/test_parsers_property.py): a consistent checkpoint or
paramctl's own error, nothing else. A crash is written to ``crash-*`` by libFuzzer.

    pip install atheris
    python fuzz/atheris_readers.py -max_total_time=28800 -rss_limit_mb=1024 fuzz/seeds

``fuzz/seeds`` (made by ``python fuzz/make_seeds.py``) starts it from real files.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from paramctl import read_checkpoint
    from paramctl.errors import ParamctlError
    from paramctl.formats._format import NeedsTorch
    from paramctl.formats._pickle import restricted_load
    from paramctl.formats._torch_pickle import name_tensors, storage_collector

_FOLDER = Path(tempfile.mkdtemp(prefix="paramctl-fuzz-"))
_SUFFIXES = {0: ".safetensors", 1: ".pkl", 2: ".pt", 3: ".gguf", 4: ".npy", 5: ".npz", 6: ".params"}


def consistent_or_refused(path: Path) -> None:
    try:
        checkpoint = read_checkpoint(path)
    except ParamctlError:
        return
    for storage in checkpoint.storages.values():
        if storage.offset is not None:
            assert storage.offset >= 0 and storage.offset + storage.nbytes <= storage.file.stat().st_size, (
                storage
            )
    for entry in checkpoint.entries:
        if entry.numel and checkpoint.fallback_tensors is None:
            start, end = entry.byte_span
            assert 0 <= start <= end <= checkpoint.storage_of(entry).nbytes, entry


def unpickled_or_refused(data: bytes) -> None:
    _, storage_ref = storage_collector()
    try:
        payload = restricted_load(data, storage_ref)
        name_tensors(payload)
    except (ParamctlError, NeedsTorch):
        return


def test_one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % len(_SUFFIXES), data[1:]
    if target == 1:
        unpickled_or_refused(body)
        return
    path = _FOLDER / f"input{_SUFFIXES[target]}"
    path.write_bytes(body)
    consistent_or_refused(path)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
