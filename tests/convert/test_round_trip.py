"""Every writable format converts to every other, read back by the target's own library:
the same names, dtypes and values, and ties kept where both formats record them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from paramctl.convert import ConvertOptions, convert
from paramctl.formats import REGISTRY, Format, read_checkpoint
from tests.formats.test_contract import OWN_LIBRARIES, sample_for

WRITABLE = [fmt for fmt in REGISTRY if fmt.writer() is not None or fmt.set_writer() is not None]
PARAMS = [pytest.param(fmt, id=fmt.name) for fmt in WRITABLE]


def path_for(folder: Path, stem: str, fmt: Format) -> Path:
    """A file with the format's suffix, or a directory for a format of several files."""
    return folder / f"{stem}{fmt.suffixes[0] if fmt.suffixes else ''}"


def assert_tied_for_its_own_library(target: Format, path: Path) -> None:
    """The tie as the format's own library sees it: one storage for torch.load, the
    save_model alias for safetensors."""
    if target.name == "torch-zip":
        loaded = torch.load(path, weights_only=True)
        assert (
            loaded["head.weight"].untyped_storage().data_ptr()
            == loaded["embed.weight"].untyped_storage().data_ptr()
        )
    elif target.name == "safetensors":
        with safe_open(path, "pt") as file:
            assert file.metadata() == {"head.weight": "embed.weight"}
    else:
        raise AssertionError(f"no check of ties for {target.name}")


def test_the_writable_formats_are_every_format_with_a_writer():
    assert len(WRITABLE) == 6


@pytest.mark.parametrize("target", PARAMS)
@pytest.mark.parametrize("source", PARAMS)
def test_every_pair_of_writable_formats_round_trips(source, target, tmp_path):
    state = sample_for(source)
    if target.holds.dtypes is not None:
        state = {n: t for n, t in state.items() if str(t.dtype).removeprefix("torch.") in target.holds.dtypes}
    src = path_for(tmp_path, "source", source)
    OWN_LIBRARIES[source.name].write(state, src)
    dst = path_for(tmp_path, "converted", target)

    result = convert(src, dst, to=target.name, options=ConvertOptions(drop_extras=not target.holds.extras))

    converted = read_checkpoint(dst)
    assert converted.format == target.name
    assert sorted(converted.names()) == sorted(read_checkpoint(src).names())
    reread = OWN_LIBRARIES[target.name].read(dst)
    assert reread, "the target's own library reads tensors"
    for name, tensor in reread.items():
        assert tensor.dtype == state[name].dtype, name
        assert torch.equal(tensor, state[name]), name
    tied = {"embed.weight", "head.weight"} <= set(converted.names())
    if tied and source.holds.ties and target.holds.ties:
        assert converted.entry("embed.weight").storage_key == converted.entry("head.weight").storage_key
        assert not result.ties_copied
        assert_tied_for_its_own_library(target, dst)
    elif tied and source.holds.ties:
        assert result.ties_copied  # the report says the tie became a copy
