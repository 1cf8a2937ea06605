"""Property: for any tensors torch can save, the metadata reader agrees with torch.load,
and the lazily read values (numpy numbers, chunks and torch tensors) equal what torch loads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paramctl import read_checkpoint
from paramctl.torch_values import from_torch
from paramctl.values import ValueReader

DTYPES = [
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float64,
    torch.int64,
    torch.int8,
    torch.uint8,
    torch.bool,
]


@st.composite
def tensors(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    base = (torch.arange(max(1, int(torch.tensor(shape).prod().item()) if shape else 1)) % 7).to(dtype)
    tensor = base[: int(torch.tensor(shape).prod().item()) if shape else 1].reshape(shape)
    view = draw(st.sampled_from(["plain", "transpose", "slice"]))
    if view == "transpose" and tensor.dim() >= 2:
        tensor = tensor.transpose(0, 1)
    elif view == "slice" and tensor.dim() >= 1 and tensor.shape[0] > 1:
        tensor = tensor[1:]
    return tensor


@st.composite
def state_dicts(draw):
    names = draw(
        st.lists(
            st.from_regex(r"[a-z]{1,6}(\.[0-9]){0,2}", fullmatch=True), min_size=1, max_size=6, unique=True
        )
    )
    sd = {name: draw(tensors()) for name in names}
    if len(names) > 1 and draw(st.booleans()):
        sd[names[-1]] = sd[names[0]]  # a tie
    return sd


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sd=state_dicts(), legacy=st.booleans(), nested=st.booleans(), protocol=st.sampled_from([2, 4, 5]))
def test_reader_agrees_with_torch(sd, legacy, nested, protocol):
    obj = {"model": sd, "epoch": 1} if nested else sd
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.pt"
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy, pickle_protocol=protocol)
        # The files are our own, so torch may unpickle them fully: its weights-only loader
        # refuses some protocol-4 pickles that the metadata reader reads.
        loaded = torch.load(path, weights_only=False)
        loaded = loaded["model"] if nested else loaded
        checkpoint = read_checkpoint(path)
        prefix = ("model",) if nested else ()
        entries = {e.path[len(prefix) :][0]: e for e in checkpoint.entries}
        assert list(entries) == list(loaded)
        with ValueReader(checkpoint) as values:
            for name, tensor in loaded.items():
                entry = entries[name]
                assert (entry.shape, entry.dtype, entry.stride) == (
                    tuple(tensor.shape),
                    str(tensor.dtype)[6:],
                    tuple(tensor.stride()),
                )
                assert torch.equal(values.tensor(entry), tensor)
                expected = from_torch(tensor).numbers
                assert np.array_equal(values.array(entry), expected)
                chunks = [chunk.copy() for chunk in values.chunks(entry, max_elements=4)]
                assert np.array_equal(
                    np.concatenate([np.empty(0, expected.dtype), *chunks]), expected.reshape(-1)
                )
        tied = [n for n in sd if sd[n] is sd[next(iter(sd))]]
        if len(tied) > 1:
            assert len({entries[n].storage_key for n in tied}) == 1
