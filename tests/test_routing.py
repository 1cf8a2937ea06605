"""The rules the commands follow, as library functions: where ``init`` writes and where its
report goes, which options mean a live module, and what a full pickle leads to."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch

from paramctl.change.destination import STDOUT_LABEL, init_destination
from paramctl.errors import CheckpointIOError, UnsafePickle, UsageError
from paramctl.formats import read_checkpoint
from paramctl.live.routing import (
    LiveRequest,
    ProbeRequest,
    TrustedPickle,
    check_live_change,
    check_live_listing,
    lists_live,
    open_or_trusted,
)
from paramctl.select import read_name_file

# -- where init writes -------------------------------------------------------------------------


def test_a_file_destination_keeps_the_report_on_stdout():
    destination = init_destination("m.pt", "out.pt", stdout_isatty=True)
    assert destination.target(io.BytesIO()) == "out.pt"
    assert (destination.label, destination.report_on_stderr, destination.dry_run) == (None, False, False)


def test_a_piped_stdout_carries_the_checkpoint_and_the_report_moves_to_stderr():
    stdout = io.BytesIO()
    destination = init_destination("-", stdout_isatty=False)
    assert destination.target(stdout) is stdout
    assert (destination.label, destination.report_on_stderr) == (STDOUT_LABEL, True)


def test_in_place_writes_over_the_source_and_backs_it_up_beside():
    destination = init_destination("dir/m.pt", in_place=True, backup=True, stdout_isatty=True)
    assert (destination.path, destination.backup, destination.in_place) == ("dir/m.pt", "dir/m.pt.bak", True)


def test_a_dry_run_has_no_target_and_never_meets_the_terminal():
    destination = init_destination("m.pt", dry_run=True, stdout_isatty=True)
    assert destination.dry_run and not destination.report_on_stderr
    with pytest.raises(ValueError, match="writes nothing"):
        destination.target(io.BytesIO())


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("m.pt", {"output": "o.pt", "in_place": True}, "--in-place and --output exclude each other"),
        ("-", {"in_place": True}, "--in-place needs a file, not standard input"),
        (None, {"in_place": True}, "--in-place rewrites a checkpoint file"),
        ("m.pt", {"output": "o.pt", "backup": True}, "--backup goes with --in-place"),
        ("m.pt", {"stdout_isatty": True}, "refusing to write a binary checkpoint to a terminal"),
    ],
)
def test_destinations_that_cannot_be(source, options, message):
    with pytest.raises(UsageError, match=message):
        init_destination(source, **options)


# -- file or live module -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "probe"),
    [
        (LiveRequest(model="pkg:net"), ProbeRequest()),
        (LiveRequest(model_args=("width=2",)), ProbeRequest()),
        (LiveRequest(input_shapes=("2,4",)), ProbeRequest()),
        (LiveRequest(input_file="x.pt"), ProbeRequest()),
        (LiveRequest(input_value=0.5), ProbeRequest()),
        (LiveRequest(), ProbeRequest(grads=True)),
        (LiveRequest(), ProbeRequest(loss="mean")),
        (LiveRequest(), ProbeRequest(eval_mode=True)),
        (LiveRequest(), ProbeRequest(seed=0)),
    ],
)
def test_any_option_of_live_modules_makes_list_live(live, probe):
    assert lists_live(live, probe)


def test_a_plain_list_and_trust_alone_read_the_file():
    assert not lists_live(LiveRequest(), ProbeRequest())
    assert not lists_live(LiveRequest(trust=True, key="model"), ProbeRequest())


def test_init_builds_a_module_only_from_a_model_or_an_input():
    assert LiveRequest(model="pkg:net").builds_module
    assert LiveRequest(input_shapes=("1,3",)).builds_module
    assert LiveRequest(input_file="in.pt").builds_module
    assert not LiveRequest(model_args=("width=2",), trust=True).builds_module


@pytest.mark.parametrize(
    ("probe", "options", "message"),
    [
        (ProbeRequest(), {"stats": True}, "--all, --extras and --stats list a checkpoint file"),
        (ProbeRequest(), {"extras": True}, "--all, --extras and --stats list a checkpoint file"),
        (ProbeRequest(loss="mean"), {}, "--loss and --eval shape the gradient probe: add --grads"),
        (ProbeRequest(grads=True), {"tree": True}, "the gradient table keeps module order"),
        (ProbeRequest(grads=True), {"sort": "size"}, "the gradient table keeps module order"),
    ],
)
def test_options_a_live_listing_refuses(probe, options, message):
    settings = {"all_tensors": False, "extras": False, "stats": False, "tree": False, "sort": "file"}
    with pytest.raises(UsageError, match=message):
        check_live_listing(probe, **{**settings, **options})


def test_a_live_listing_takes_tree_and_sort_without_grads():
    check_live_listing(ProbeRequest(), all_tensors=False, extras=False, stats=False, tree=True, sort="size")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"copying": True}, "--from copies between files"),
        ({"all_tensors": True}, "--all lists a file's every tensor"),
        ({"in_place": True}, "--in-place rewrites a checkpoint file"),
    ],
)
def test_options_a_live_change_refuses(options, message):
    settings = {"copying": False, "all_tensors": False, "in_place": False}
    with pytest.raises(UsageError, match=message):
        check_live_change(LiveRequest(trust=True), **{**settings, **options})


def test_a_live_change_in_place_needs_the_model():
    check_live_change(LiveRequest(model="pkg:net"), copying=False, all_tensors=False, in_place=True)


# -- full pickles ------------------------------------------------------------------------------


@pytest.fixture
def full_pickle(tmp_path):
    path = tmp_path / "model_full.pt"
    torch.save(torch.nn.Linear(2, 1), path)
    return str(path)


def test_a_full_pickle_without_trust_is_refused_naming_its_globals(full_pickle):
    with pytest.raises(UnsafePickle, match=r"torch\.nn\.modules\.linear\.Linear.*--trust loads it"):
        open_or_trusted(lambda: read_checkpoint(full_pickle), full_pickle, trust=False)


def test_a_full_pickle_with_trust_takes_the_live_route(full_pickle):
    routed = open_or_trusted(lambda: read_checkpoint(full_pickle), full_pickle, trust=True)
    assert routed == TrustedPickle(full_pickle)


def test_a_plain_checkpoint_is_opened_whatever_trust_says(save_pt):
    path = str(save_pt({"w": torch.zeros(2)}))
    for trust in (False, True):
        opened = open_or_trusted(lambda: read_checkpoint(path), path, trust=trust)
        assert [entry.name for entry in opened.entries] == ["w"]


def test_routing_and_destination_leave_torch_out():
    code = "import sys, paramctl.live.routing, paramctl.change.destination\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "False", result.stderr


# -- --names-from ------------------------------------------------------------------------------


def test_names_from_stdin_cannot_share_it_with_the_checkpoint():
    with pytest.raises(UsageError, match="standard input cannot carry both"):
        read_name_file("-", stdin_taken=True)


def test_names_from_a_missing_file_is_an_io_error(tmp_path):
    with pytest.raises(CheckpointIOError, match=r"--names-from .*missing\.txt: No such file"):
        read_name_file(str(tmp_path / "missing.txt"))


def test_names_from_skips_blanks_and_comments(tmp_path):
    listed = tmp_path / "names.txt"
    listed.write_text("# chosen\n0.weight\n\n  # indented comment\n2.bias\n")
    assert read_name_file(str(listed)) == {"0.weight", "2.bias"}
