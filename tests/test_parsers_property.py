"""Property: any bytes given to the safetensors header parser, the unpickler, the zip reader,
or a damaged file of any other format (GGUF, MXNet, .npy, .npz, torch.export, a DCP
``.metadata``) either read as a consistent checkpoint or raise paramctl's own error; never
another exception, never a hang (each example has a deadline).

The suite runs a small slice; ``fuzz/run.py`` runs the same properties for hours
(``PARAMCTL_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paramctl import read_checkpoint
from paramctl.checkpoint import Checkpoint
from paramctl.errors import ParamctlError
from paramctl.formats._format import NeedsTorch
from paramctl.formats._pickle import restricted_load
from paramctl.formats._pickle_scan import scan_pickle
from paramctl.formats._torch_pickle import name_tensors, storage_collector

EXAMPLES = int(os.environ.get("PARAMCTL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def consistent(checkpoint: Checkpoint) -> None:
    """What a checkpoint paramctl read promises: every storage inside its file, every
    tensor inside its storage."""
    for storage in checkpoint.storages.values():
        if storage.offset is not None:
            assert storage.offset >= 0 and storage.offset + storage.nbytes <= storage.file.stat().st_size
    for entry in checkpoint.entries:
        if entry.numel and checkpoint.fallback_tensors is None:
            start, end = entry.byte_span
            assert 0 <= start <= end <= checkpoint.storage_of(entry).nbytes


def read_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzzed{suffix}"
        path.write_bytes(data)
        try:
            checkpoint = read_checkpoint(path)
        except ParamctlError:
            return
        consistent(checkpoint)


# -- safetensors: JSON that looks like a header, then its bytes mutated -----------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
entries = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "I64", "U8", "BOOL", "F33", 4, None]),
        "shape": st.lists(st.integers(-2, 6) | json_values, max_size=4),
        "data_offsets": st.lists(st.integers(-4, 80) | json_values, max_size=3),
    }
)
headers = st.dictionaries(st.text(max_size=6), entries | json_values, max_size=5)


@FUZZ
@given(header=headers, data=st.binary(max_size=96), mutation=st.binary(max_size=8), at=st.integers(0, 200))
def test_any_safetensors_header_reads_or_raises_paramctls_error(header, data, mutation, at):
    raw = json.dumps(header).encode()
    raw = raw[:at] + mutation + raw[at + len(mutation) :] if mutation else raw
    read_bytes(struct.pack("<Q", len(raw)) + raw + data, ".safetensors")


@FUZZ
@given(data=st.binary(min_size=8, max_size=300))
def test_any_bytes_after_a_safetensors_length_read_or_raise(data):
    read_bytes(struct.pack("<Q", len(data) - 4) + b"{" + data, ".safetensors")


# -- the unpickler: pickles of plain data, and bytes that only start like one -----------------

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=24,
)


def unpickle(data: bytes) -> None:
    _, storage_ref = storage_collector()
    try:
        payload = restricted_load(data, storage_ref)
        name_tensors(payload)
    except (ParamctlError, NeedsTorch):
        return


@FUZZ
@given(value=plain, protocol=st.integers(0, 5), mutation=st.binary(max_size=6), at=st.integers(0, 400))
def test_any_mutated_pickle_unpickles_or_raises_paramctls_error(value, protocol, mutation, at):
    data = pickle.dumps(value, protocol=protocol)
    if not mutation:
        assert scan_pickle(data) == len(data)  # an untouched pickle scans to its end
    unpickle(data[:at] + mutation + data[at + len(mutation) :])


@FUZZ
@given(data=st.binary(max_size=200), protocol=st.integers(0, 6))
def test_any_bytes_unpickle_or_raise_paramctls_error(data, protocol):
    unpickle(b"\x80" + bytes([protocol]) + data)
    unpickle(data)


# -- the zip reader: a real torch.save, damaged ----------------------------------------------


def _saved() -> bytes:
    buffer = io.BytesIO()
    base = torch.arange(6.0)
    torch.save({"w": base, "view": base[2:], "b": torch.ones(2, dtype=torch.int64), "epoch": 3}, buffer)
    return buffer.getvalue()


SAVED = _saved()


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, len(SAVED) - 1), st.integers(1, 255)), max_size=6),
    cut=st.integers(0, len(SAVED)),
    insert=st.binary(max_size=16),
)
def test_any_damaged_torch_zip_reads_or_raises_paramctls_error(flips, cut, insert):
    data = bytearray(SAVED)
    for position, value in flips:
        data[position] ^= value
    data = data[:cut] + insert + data[cut:]
    read_bytes(bytes(data), ".pt")


@FUZZ
@given(
    names=st.lists(
        st.sampled_from(["archive/data.pkl", "archive/version", "archive/data/0", "x", "archive/byteorder"]),
        max_size=6,
    ),
    contents=st.binary(max_size=40),
)
def test_any_zip_of_torch_record_names_reads_or_raises(names, contents):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, contents)
    read_bytes(buffer.getvalue(), ".pt")


# -- an archive inside a larger file (a DCP item): its directory parsed by hand ---------------


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, len(SAVED) - 1), st.integers(1, 255)), max_size=4),
    cut=st.integers(0, 64),
    around=st.tuples(st.binary(max_size=8), st.binary(max_size=8)),
)
def test_an_item_without_problems_has_the_directory_zipfile_reads(flips, cut, around):
    from paramctl.formats.torch_zip.window import open_item

    data = bytearray(SAVED)
    for position, value in flips:
        data[position] ^= value
    item = bytes(data[: len(data) - cut])
    before, after = around
    with tempfile.TemporaryFile() as file:
        file.write(before + item + after)
        file.flush()
        try:
            archive = open_item(file, len(before), len(item), "item")
            archive.refuse_problems()
        except ParamctlError:
            return
    with zipfile.ZipFile(io.BytesIO(item)) as reference:
        fields = ("filename", "orig_filename", "flag_bits", "compress_type", "CRC", "compress_size")
        fields += ("file_size", "header_offset")
        expected = [tuple(getattr(info, field) for field in fields) for info in reference.infolist()]
    assert [tuple(getattr(entry, field) for field in fields) for entry in archive.entries] == expected


# -- the other formats: a valid file of each, damaged ----------------------------------------


def _seeds() -> dict[str, bytes]:
    """A small valid file of each format read by hand or through a package's parser."""
    import numpy as np
    from corpus import gguf, jit, mxnet, numpy_files

    arch = gguf.key_value("general.architecture", gguf.STRING, gguf.text("llama"))
    names = gguf.key_value(
        "t", gguf.ARRAY, struct.pack("<IQ", gguf.STRING, 2) + gguf.text("a") + gguf.text("b")
    )
    npz = io.BytesIO()
    np.savez(npz, w=np.ones((2, 3), np.float32), b=np.arange(3))
    return {
        ".gguf": gguf.gguf([arch, names], [gguf.tensor_info("w", (4, 2))], bytes(32)),
        ".params": mxnet.params([mxnet.array((2, 3), bytes(24)), mxnet.array((3,), bytes(12))], ["w", "b"]),
        ".npy": numpy_files.saved(np.arange(6, dtype=np.float32).reshape(2, 3)),
        ".npz": npz.getvalue(),
        ".pt2": jit.exported(),
    }


SEEDS = _seeds()


@FUZZ
@given(
    suffix=st.sampled_from(sorted(SEEDS)),
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=6),
    cut=st.integers(0, 1 << 16),
    insert=st.binary(max_size=16),
)
def test_any_damaged_file_of_the_other_formats_reads_or_raises(suffix, flips, cut, insert):
    data = bytearray(SEEDS[suffix])
    for position, value in flips:
        data[position % len(data)] ^= value
    cut %= len(data) + 1
    read_bytes(bytes(data[:cut] + insert + data[cut:]), suffix)


def _dcp_metadata() -> bytes:
    from corpus.dcp import METADATA, real_checkpoint

    folder = Path(tempfile.mkdtemp())
    real_checkpoint(folder / "seed")
    return (folder / "seed" / METADATA).read_bytes()


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=4),
    cut=st.integers(0, 1 << 16),
)
def test_any_damaged_dcp_metadata_loads_or_raises(flips, cut):
    from paramctl.formats.dcp._metadata import load_metadata

    data = bytearray(DCP_METADATA)
    for position, value in flips:
        data[position % len(data)] ^= value
    try:
        load_metadata(bytes(data[: cut % (len(data) + 1)]))
    except ParamctlError:
        return


DCP_METADATA = _dcp_metadata()
FOUND = Path(__file__).resolve().parent.parent / "fuzz" / "found"


def test_inputs_the_fuzzer_found_read_or_raise_paramctls_error():
    # Inputs fuzz/atheris_readers.py once crashed on, kept as it writes them: the first
    # byte picks the reader (0 safetensors, 1 pickle, 2 zip, 3 GGUF, 4 .npy, 5 .npz, 6 MXNet).
    suffixes = [".safetensors", ".pkl", ".pt", ".gguf", ".npy", ".npz", ".params"]
    found = sorted(FOUND.iterdir())
    assert found
    for path in found:
        data = path.read_bytes()
        target, body = data[0] % len(suffixes), data[1:]
        if target == 1:
            unpickle(body)
        else:
            read_bytes(body, suffixes[target])
