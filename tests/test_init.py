"""paramctl init: selection, edits, copies, shared tensors, formats, pipelines, atomic writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model

from paramctl import ExitCode, read_checkpoint
from paramctl.atomic import TEMP_SUFFIX

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sample_models"))
from make_samples import TinyTransformer


def load(path: Path) -> dict:
    """Load the way users will: safely, and (for zip files) memory-mapped."""
    if path.suffix == ".safetensors":
        return load_file(path)
    mmap = zipfile.is_zipfile(path)
    return torch.load(path, weights_only=True, mmap=mmap)


def records(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename.split("/", 1)[1]: archive.read(info) for info in archive.infolist()}


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(TEMP_SUFFIX))


# -- the report ----------------------------------------------------------------------------


def test_report_is_exact_tsv_in_a_pipe(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    result = cli("init", samples / "mlp.pt", "-m", "*.bias", "-s", "zeros", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "name\tshape\tdtype\taction\tmean_before\tstd_before\tmean_after\tstd_after\tshared_with\talso_changes\n"
        "0.bias\t[3]\tfloat32\tzeros\t-0.3383089601993561\t0.135923117351833\t0.0\t0.0\t\t\n"
        "2.bias\t[1]\tfloat32\tzeros\t-0.3914094567298889\t\t0.0\t\t\t\n"
    )
    assert result.stderr == f"changed 2 tensors (16 B) with zeros → {out} (torch-zip)\n"
    assert all(torch.equal(v, torch.zeros_like(v)) for k, v in load(out).items() if k.endswith("bias"))


def test_report_table_and_json(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    table = cli(
        "init", samples / "mlp.pt", "-m", "0.*", "--scale", "2", "--add", "1", "-o", out, "-f", "table"
    )
    assert (
        "│ 0.weight │ [3, 4] │ float32 │ x * 2.0 + 1.0 │    -0.02904 │     0.2395 │     0.9419 │     0.479 │"
        in (table.stdout)
    )
    assert f"changed 2 tensors (60 B) with x * 2.0 + 1.0 → {out} (torch-zip)" in table.stdout
    document = json.loads(cli("init", samples / "mlp.pt", "-s", "ones", "-o", out, "-f", "json").stdout)
    assert document["change"] == "ones" and document["seed"] is None
    assert [row["name"] for row in document["tensors"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert document["tensors"][0]["mean_after"] == 1.0 and document["tensors"][0]["std_after"] == 0.0


def test_quiet_prints_nothing_and_dry_run_writes_nothing(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    quiet = cli("init", samples / "mlp.pt", "-s", "normal", "-o", out, "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    planned = tmp_path / "planned.pt"
    dry = cli("init", samples / "mlp.pt", "-s", "normal", "-o", planned, "-n", "-f", "names")
    assert dry.stdout == "0.weight\n0.bias\n2.weight\n2.bias\n"
    assert not planned.exists()


# -- selection -----------------------------------------------------------------------------


def test_names_from_a_listing_pipeline(cli, samples, tmp_path):
    path = samples / "tied_transformer.pt"
    listed = cli("list", path, "--format", "names", "--match", "*.bias").stdout
    kept = "".join(line + "\n" for line in listed.splitlines() if "mlp.2" not in line)
    out = tmp_path / "out.pt"
    result = cli("init", path, "--names-from", "-", "--scheme", "zeros", "-o", out, "-q", input=kept)
    assert result.exit_code == 0, result.stderr
    before, after = load(path), load(out)
    for name in before:
        zeroed = name.endswith("bias") and not name.startswith("mlp.2")
        assert torch.equal(after[name], torch.zeros_like(before[name]) if zeroed else before[name]), name


def test_names_from_a_file_and_unknown_names(cli, samples, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("# chosen\n0.weight\n\n2.bias\n")
    out = tmp_path / "out.pt"
    result = cli("init", samples / "mlp.pt", "--names-from", names, "-s", "ones", "-o", out, "-f", "names")
    assert result.stdout == "0.weight\n2.bias\n"
    names.write_text("0.weight\n3.weight\n")
    result = cli("init", samples / "mlp.pt", "--names-from", names, "-s", "ones", "-o", out)
    assert result.exit_code == 1
    assert "--names-from lists 1 name not in" in result.stderr and "3.weight" in result.stderr


def test_a_selection_matching_nothing_exits_1_with_close_names(cli, samples, tmp_path):
    result = cli("init", samples / "mlp.pt", "-m", "*.wieght", "-s", "zeros", "-o", tmp_path / "o.pt")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "paramctl: error: no tensor matches --match *.wieght; close names: 2.weight, 0.weight\n"
    )
    assert not (tmp_path / "o.pt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "zeros", "--in-place", "-o", "x.pt"], "--in-place and --output exclude each other"),
        (["-s", "zeros", "--backup", "-o", "x.pt"], "--backup goes with --in-place"),
        (["-s", "zeros", "--rename", "a=b", "-o", "x.pt"], "--rename maps the names of --from"),
        (["-s", "zeros", "--set", "1", "-o", "x.pt"], "--scheme, --set and --from exclude each other"),
        (["-o", "x.pt"], "nothing to do: give --scheme, --set, --from, --scale or --add"),
        (["-s", "zeros", "--to", "zip", "-o", "x.pt"], "Invalid value for '--to'"),
    ],
)
def test_usage_errors(cli, samples, args, message):
    result = cli("init", samples / "mlp.pt", *args)
    assert result.exit_code == 2
    assert message in result.stderr


# -- dtypes --------------------------------------------------------------------------------


def test_integer_and_bool_tensors_take_only_constants_or_copies(cli, save_pt, tmp_path):
    path = save_pt({"w": torch.ones(2, 2), "steps": torch.tensor(7), "mask": torch.tensor([True, False])})
    out = tmp_path / "out.pt"
    refused = cli("init", path, "-s", "normal", "-o", out)
    assert refused.exit_code == 3
    assert refused.stderr == (
        "paramctl: error: int tensors take only constant schemes (zeros, ones, constant, --set) or --from: "
        "steps; bool tensors take only constant schemes (zeros, ones, constant, --set) or --from: mask "
        "(--skip-incompatible leaves them unchanged)\n"
    )
    assert cli("init", path, "-s", "zeros", "-o", out, "-q").exit_code == 0
    assert load(out)["steps"].item() == 0 and load(out)["mask"].tolist() == [False, False]
    assert cli("init", path, "-m", "steps", "--set", "2.5", "-o", out).stderr.startswith(
        "paramctl: error: int64 cannot hold 2.5"
    )
    assert cli("init", path, "-m", "mask", "--set", "3", "-o", out).exit_code == 3
    skipped = cli("init", path, "-s", "normal", "--skip-incompatible", "-o", out, "-f", "json", "--seed", 0)
    assert [s["name"] for s in json.loads(skipped.stdout)["skipped"]] == ["steps", "mask"]
    assert "skipped 2: steps, mask" not in skipped.stderr  # json carries it; no footer lines


def test_edits_on_integers_need_whole_numbers(cli, save_pt, tmp_path):
    path = save_pt({"bn.num_batches_tracked": torch.tensor(41), "mask": torch.tensor([True])})
    out = tmp_path / "out.pt"
    assert cli("init", path, "-m", "bn.*", "--add", "1", "-o", out, "-q").exit_code == 0
    assert load(out)["bn.num_batches_tracked"].item() == 42
    assert "whole-number" in cli("init", path, "-m", "bn.*", "--scale", "0.5", "-o", out).stderr
    assert "bool tensors cannot be scaled" in cli("init", path, "-m", "mask", "--add", "1", "-o", out).stderr


def test_schemes_that_need_two_dimensions_name_the_tensors(cli, samples, tmp_path):
    result = cli("init", samples / "cnn.safetensors", "-s", "xavier_normal", "-o", tmp_path / "o.safetensors")
    assert result.exit_code == 3
    assert result.stderr == (
        "paramctl: error: xavier_normal needs a 2-D or more tensor, this one is 1-D: "
        "conv1.bias, conv2.bias, fc1.bias, fc2.bias (--skip-incompatible leaves them unchanged)\n"
    )
    ok = cli(
        "init",
        samples / "cnn.safetensors",
        "-s",
        "xavier_normal",
        "--skip-incompatible",
        "-o",
        tmp_path / "o.safetensors",
    )
    assert ok.exit_code == 0
    # Said once: the report's section of skipped tensors, each with its reason.
    skipped = ok.stdout.split("\n\n")[1].splitlines()
    assert skipped[0] == "name\treason"
    assert [line.split("\t")[0] for line in skipped[1:]] == [
        "conv1.bias",
        "conv2.bias",
        "fc1.bias",
        "fc2.bias",
    ]
    assert "skipped" not in ok.stderr


# -- edits, custom functions, copies ---------------------------------------------------------


def test_edits_add_scale_and_set_apply_to_the_selection(cli, samples, tmp_path):
    path, out = samples / "mlp.pt", tmp_path / "out.pt"
    before = load(path)
    assert cli("init", path, "-m", "*.weight", "--add", "1", "-o", out, "-q").exit_code == 0
    after = load(out)
    assert torch.equal(after["0.weight"], before["0.weight"] + 1)
    assert torch.equal(after["0.bias"], before["0.bias"])
    assert cli("init", path, "-r", "^2", "--scale", "-3", "--add", "0.5", "-o", out, "-q").exit_code == 0
    assert torch.equal(load(out)["2.weight"], before["2.weight"] * -3 + 0.5)
    assert cli("init", path, "-x", "*.bias", "--set", "0.125", "-o", out, "-q").exit_code == 0
    assert torch.equal(load(out)["0.weight"], torch.full((3, 4), 0.125))
    assert (
        cli(
            "init", path, "-m", "0.bias", "-s", "normal", "--scale", "0", "--add", "2", "-o", out, "-q"
        ).exit_code
        == 0
    )
    assert torch.equal(load(out)["0.bias"], torch.full((3,), 2.0))


HALF_ZERO = '''
import torch


def half_zero(tensor, generator):
    """Draw U(-10, 10), then zero every value whose magnitude is below 5."""
    tensor.uniform_(-10, 10, generator=generator)
    tensor *= tensor.abs() >= 5
'''


def test_the_classic_custom_init_from_a_file_and_a_module(cli, samples, tmp_path, monkeypatch):
    script = tmp_path / "my_init.py"
    script.write_text(HALF_ZERO)
    out = tmp_path / "out.pt"
    result = cli(
        "init",
        samples / "mlp.pt",
        "-m",
        "*.weight",
        "-s",
        f"{script}:half_zero",
        "--seed",
        4,
        "-o",
        out,
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    generator = torch.Generator().manual_seed(4)
    namespace: dict = {}
    exec(HALF_ZERO, namespace)
    for name, shape in (("0.weight", (3, 4)), ("2.weight", (1, 3))):
        expected = torch.empty(shape)
        namespace["half_zero"](expected, generator)
        values = load(out)[name]
        assert torch.equal(values, expected)
        assert ((values == 0) | ((values.abs() >= 5) & (values.abs() <= 10))).all()
    monkeypatch.syspath_prepend(str(tmp_path))
    module = cli(
        "init",
        samples / "mlp.pt",
        "-m",
        "*.weight",
        "-s",
        "my_init:half_zero",
        "--seed",
        4,
        "-o",
        tmp_path / "m.pt",
        "-q",
    )
    assert module.exit_code == 0
    assert records(out)["data/0"] == records(tmp_path / "m.pt")["data/0"]


def test_from_copies_same_named_tensors_with_rename(cli, save_pt, tmp_path):
    source = save_pt(
        {"encoder.0.weight": torch.full((3, 4), 2.0), "encoder.0.bias": torch.full((3,), 3.0)}, "pre.pt"
    )
    target = save_pt(
        {
            "backbone.0.weight": torch.zeros(3, 4),
            "backbone.0.bias": torch.zeros(3),
            "head.weight": torch.zeros(2, 3),
        },
        "model.pt",
    )
    out = tmp_path / "out.pt"
    result = cli("init", target, "--from", source, "--rename", r"^encoder\.=backbone.", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "copy of encoder.0.weight" in result.stdout
    # The name missing from --from is reported once: in the report's skipped section.
    assert result.stdout.count("head.weight") == 1 and "head.weight" not in result.stderr
    assert f"head.weight\tnot in {source}" in result.stdout
    values = load(out)
    assert torch.equal(values["backbone.0.weight"], torch.full((3, 4), 2.0))
    assert torch.equal(values["backbone.0.bias"], torch.full((3,), 3.0))
    assert torch.equal(values["head.weight"], torch.zeros(2, 3))
    unrenamed = cli("init", target, "--from", source, "-o", out)
    assert unrenamed.exit_code == 1 and "--rename FROM=TO maps names" in unrenamed.stderr


def test_from_lists_every_shape_mismatch(cli, save_pt, tmp_path):
    source = save_pt({"a": torch.zeros(2, 2), "b": torch.zeros(3), "c": torch.zeros(1)}, "src.pt")
    target = save_pt({"a": torch.zeros(2, 3), "b": torch.zeros(4), "c": torch.zeros(1)}, "dst.pt")
    result = cli("init", target, "--from", source, "-o", tmp_path / "o.pt")
    assert result.exit_code == 3
    assert result.stderr == (
        f"paramctl: error: shapes differ between the checkpoint and {source}: "
        "a [2, 3] vs a [2, 2], b [4] vs b [3]\n"
    )


def test_from_casts_between_float_dtypes_and_reads_the_model_dict(cli, save_pt, samples, tmp_path):
    target = save_pt({k: v.half() for k, v in load(samples / "mlp.pt").items()}, "half.pt")
    out = tmp_path / "out.pt"
    assert cli("init", target, "--from", samples / "training.pt", "-o", out, "-q").exit_code == 0
    expected = load(samples / "training.pt")["state_dict"]
    assert all(torch.equal(load(out)[k], v.half()) for k, v in expected.items())


# -- shared tensors --------------------------------------------------------------------------


def test_one_name_of_a_tie_changes_both_and_they_stay_shared(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    result = cli("init", samples / "tied_sequential.pt", "-m", "0.weight", "--set", "5", "-o", out)
    assert (
        result.stdout.splitlines()[1]
        == "0.weight\t[1, 1]\tfloat32\tconstant(val=5.0)\t3.0\t\t5.0\t\t\t1.weight"
    )
    assert "0.weight shares its storage with 1.weight: they change too" in result.stderr
    values = load(out)
    assert values["0.weight"].item() == 5.0 and values["1.weight"].item() == 5.0
    assert values["0.weight"].untyped_storage().data_ptr() == values["1.weight"].untyped_storage().data_ptr()


def test_a_tie_is_initialized_once_with_the_seed(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    result = cli(
        "init", samples / "tied_transformer.pt", "-r", "embed|lm_head", "-s", "normal", "--seed", 9, "-o", out
    )
    rows = [line.split("\t") for line in result.stdout.splitlines()[1:]]
    assert [(row[0], row[8]) for row in rows] == [("embed.weight", "lm_head.weight")]
    expected = torch.empty(32, 8).normal_(generator=torch.Generator().manual_seed(9))
    values = load(out)
    assert torch.equal(values["embed.weight"], expected) and torch.equal(values["lm_head.weight"], expected)


def test_safetensors_aliases_are_kept_and_followed(cli, samples, tmp_path):
    path, out = samples / "tied_transformer.safetensors", tmp_path / "out.safetensors"
    result = cli("init", path, "-m", "lm_head.weight", "-s", "zeros", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "lm_head.weight shares its storage with embed.weight: they change too" in result.stderr
    assert torch.equal(load_file(out)["embed.weight"], torch.zeros(32, 8))
    with safe_open(out, "pt") as handle:
        metadata = handle.metadata()
    original = safe_open(path, "pt").metadata()
    assert {k: v for k, v in metadata.items() if k != "paramctl"} == original
    model = TinyTransformer()
    load_model(model, out)
    assert model.lm_head.weight is model.embed.weight and not model.embed.weight.any()


# -- lose nothing ----------------------------------------------------------------------------


def test_nested_checkpoints_keep_optimizer_state_and_extras_byte_identical(cli, samples, tmp_path):
    path, out = samples / "training.pt", tmp_path / "out.pt"
    assert cli("init", path, "-m", "*.weight", "-s", "zeros", "-o", out, "-q").exit_code == 0
    before, after = records(path), records(out)
    changed = {"data/0", "data/2"}  # the two weights of state_dict
    assert {name for name in before if before[name] != after.get(name)} == changed
    assert set(after) - set(before) == {"paramctl/1.json"}
    loaded, original = load(out), load(path)
    assert (
        loaded["epoch"] == 3 and loaded["optimizer"]["param_groups"] == original["optimizer"]["param_groups"]
    )
    for index, state in original["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(loaded["optimizer"]["state"][index][key], value)
    moments = cli(
        "init", path, "--key", "optimizer.state", "-m", "*.exp_avg*", "-s", "zeros", "-o", out, "-q"
    )
    assert moments.exit_code == 0
    assert not load(out)["optimizer"]["state"][0]["exp_avg"].any()
    assert torch.equal(load(out)["state_dict"]["0.weight"], original["state_dict"]["0.weight"])


def test_provenance_is_recorded_where_the_format_has_room(cli, samples, tmp_path):
    out = tmp_path / "out.pt"
    cli("init", samples / "mlp.pt", "-m", "*.weight", "-s", "normal(std=0.01)", "--seed", 5, "-o", out, "-q")
    document = json.loads(records(out)["paramctl/1.json"])
    assert document["tool"] == "paramctl" and document["command"] == "init"
    (change,) = document["changes"]
    assert change == {
        "names": ["0.weight", "2.weight"],
        "params": {"mean": 0.0, "std": 0.01},
        "scheme": "normal(mean=0.0, std=0.01)",
        "seed": 5,
        "selection": "--match *.weight",
        "tensors": 2,
    }
    again = tmp_path / "again.pt"
    cli("init", out, "-s", "zeros", "-m", "0.bias", "-o", again, "-q")
    assert {"paramctl/1.json", "paramctl/2.json"} <= set(records(again))
    st = tmp_path / "out.safetensors"
    cli("init", samples / "cnn.safetensors", "-m", "fc1.*", "--scale", "2", "-o", st, "-q")
    cli("init", st, "-m", "fc2.*", "--add", "1", "-o", st, "-q")
    history = json.loads(safe_open(st, "pt").metadata()["paramctl"])
    assert [step["changes"][0]["edit"] for step in history] == [
        {"scale": 2.0, "add": None},
        {"scale": None, "add": 1.0},
    ]
    legacy = cli("init", samples / "mlp_legacy.pt", "-s", "zeros", "-o", tmp_path / "legacy.pt")
    assert "the torch-legacy format has no place for metadata: provenance not recorded" in legacy.stderr
    assert not any(load(tmp_path / "legacy.pt")["0.weight"].flatten())


def test_the_same_seed_gives_the_same_bytes_and_a_missing_seed_is_reported(cli, samples, tmp_path):
    args = ("init", samples / "mlp.pt", "-s", "kaiming_normal", "--skip-incompatible", "-o")
    first, second, third = tmp_path / "1.pt", tmp_path / "2.pt", tmp_path / "3.pt"
    unseeded = cli(*args, first)
    note = next(line for line in unseeded.stderr.splitlines() if line.startswith("seed "))
    seed = note.split()[1]
    assert note == f"seed {seed} (pass --seed {seed} to repeat)"
    for again in (second, third):
        cli(*args, again, "--seed", seed, "-q")
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()


# -- output: formats, in place, pipes -------------------------------------------------------


def test_pt_to_safetensors_stores_a_tie_once_like_save_model(cli, samples, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("init", samples / "tied_transformer.pt", "-m", "norm*.weight", "-s", "ones", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "→ " + str(out) + " (safetensors)" in result.stderr
    stored = load_file(out)
    assert "lm_head.weight" not in stored
    assert safe_open(out, "pt").metadata()["lm_head.weight"] == "embed.weight"
    model = TinyTransformer()
    load_model(model, out)
    original = load(samples / "tied_transformer.pt")
    for name, value in model.state_dict().items():
        expected = (
            torch.ones_like(value) if name.startswith("norm") and name.endswith("weight") else original[name]
        )
        assert torch.equal(value, expected), name


def test_what_safetensors_cannot_hold_is_refused_not_dropped(cli, samples, tmp_path):
    out = tmp_path / "out.safetensors"
    result = cli("init", samples / "training.pt", "-s", "zeros", "-o", out)
    assert result.exit_code == 2
    assert result.stderr == (
        f"paramctl: error: {samples / 'training.pt'}: safetensors holds tensors only, and this checkpoint "
        "also has 17 other values (under optimizer, epoch); write a .pt file to keep them\n"
    )
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("source", ["cnn.safetensors", "mlp_legacy.pt"])
def test_safetensors_and_legacy_convert_to_torch_zip(cli, samples, tmp_path, source):
    out = tmp_path / "out.pt"
    result = cli(
        "init", samples / source, "-m", "*.bias", "-s", "zeros", "--to", "torch-zip", "-o", out, "-q"
    )
    assert result.exit_code == 0, result.stderr
    assert zipfile.is_zipfile(out)
    original, converted = load(samples / source), load(out)
    assert list(converted) == list(original) if source.endswith(".pt") else set(converted) == set(original)
    for name, value in original.items():
        assert torch.equal(converted[name], torch.zeros_like(value) if name.endswith("bias") else value)
    assert read_checkpoint(out).format == "torch-zip"
    if source.endswith(".pt"):
        assert (
            torch.load(out, weights_only=True)._metadata
            == torch.load(samples / source, weights_only=True)._metadata
        )


def test_the_legacy_format_is_kept_but_not_written_from_others(cli, samples, tmp_path):
    kept = tmp_path / "kept.pt"
    assert cli("init", samples / "mlp_legacy.pt", "-s", "ones", "-o", kept, "-q").exit_code == 0
    assert read_checkpoint(kept).format == "torch-legacy"
    refused = cli("init", samples / "mlp.pt", "-s", "ones", "--to", "torch-legacy", "-o", tmp_path / "x.pt")
    assert refused.exit_code == 2 and "does not write the legacy torch format" in refused.stderr


def test_in_place_with_a_backup_keeps_permissions(cli, samples, tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes((samples / "mlp.pt").read_bytes())
    path.chmod(0o640)
    result = cli("init", path, "-i", "--backup", "-s", "zeros", "-m", "*.bias", "-q")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "m.pt.bak").read_bytes() == (samples / "mlp.pt").read_bytes()
    assert not load(path)["0.bias"].any()
    assert (path.stat().st_mode & 0o777) == 0o640
    assert leftovers(tmp_path) == []


def test_stdin_to_stdout_pipeline_in_process(cli, samples):
    data = (samples / "mlp.pt").read_bytes()
    result = cli("init", "-m", "*.weight", "-s", "zeros", input=data)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("name\tshape\tdtype\taction")  # the report moves to stderr
    listed = cli("list", "-", "-f", "names", input=result.output_bytes)
    assert listed.stdout.split() == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_binary_to_a_terminal_is_refused_with_a_hint(cli, samples, monkeypatch):
    monkeypatch.setattr("paramctl.render.engine._isatty", lambda stream: True)
    result = cli("init", samples / "mlp.pt", "-s", "zeros")
    assert result.exit_code == 2
    assert "refusing to write a binary checkpoint to a terminal: give -o PATH or --in-place" in result.stderr


@pytest.mark.slow
def test_shell_pipelines(samples, tmp_path):
    paramctl = f"{sys.executable} -m paramctl"
    command = (
        f"cat {samples / 'mlp.pt'} | {paramctl} init --match '*.weight' --scheme normal -q | {paramctl} list"
    )
    listed = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
    assert listed.stdout.splitlines()[1] == "0.weight\t[3, 4]\tfloat32\t12\t48\t"
    out = tmp_path / "b.pt"
    redirect = (
        f"{paramctl} init --match '*.weight' --scheme normal --seed 1 -q < {samples / 'mlp.pt'} > {out}"
    )
    subprocess.run(redirect, shell=True, check=True)
    assert load(out)["0.bias"].equal(load(samples / "mlp.pt")["0.bias"])


def test_the_report_measures_with_the_statistics_type_of_list_stats(samples, tmp_path):
    import paramctl
    from paramctl.stats import TensorStats

    ckpt = paramctl.open(samples / "mlp.pt")
    result = ckpt.select(glob="0.bias").init_("zeros").save(tmp_path / "out.pt")
    (row,) = result.changes[0].changed
    assert isinstance(row.before, TensorStats) and isinstance(row.after, TensorStats)
    original = load(samples / "mlp.pt")["0.bias"]
    assert row.before.numel == original.numel()
    assert row.before.mean == pytest.approx(float(original.mean()), abs=1e-6)
    assert row.before.std == pytest.approx(float(original.std()), abs=1e-6)
    assert (row.after.mean, row.after.std) == (0.0, 0.0)
    assert row.to_dict()["mean_after"] == 0.0 and row.to_dict()["std_before"] == row.before.std


def test_a_checkpoint_spanning_files_is_refused_rather_than_written_wrong(samples, tmp_path):
    from dataclasses import replace

    from paramctl.change import Change, Edit, plan_change, save_changes
    from paramctl.errors import UsageError

    checkpoint = read_checkpoint(samples / "mlp.pt")
    first, second = list(checkpoint.storages)[:2]
    checkpoint.storages[second] = replace(checkpoint.storages[second], file=tmp_path / "shard-2.pt")
    assert len(checkpoint.files) == 2
    out = tmp_path / "out.pt"
    edit = Change(edit=Edit(add=1.0))
    both = plan_change(checkpoint, checkpoint.entries, edit)
    with pytest.raises(UsageError, match="spans 2 files, and the change reaches 2 of them"):
        save_changes(checkpoint, [(both, None)], out)
    one = plan_change(checkpoint, [e for e in checkpoint.entries if e.storage_key == first], edit)
    with pytest.raises(UsageError, match="spans 2 files; paramctl writes only checkpoints of one file"):
        save_changes(checkpoint, [(one, None)], out, to="safetensors")
    assert not out.exists() and leftovers(tmp_path) == []


# -- atomic writes ---------------------------------------------------------------------------


def test_a_failure_mid_write_leaves_the_original_and_no_temp_file(cli, samples, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    original = (samples / "mlp.pt").read_bytes()
    path.write_bytes(original)
    import paramctl.change.fill

    calls = []
    real_fill = paramctl.change.fill.fill_

    def failing_fill(values, scheme, generator):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        real_fill(values, scheme, generator)

    monkeypatch.setattr(paramctl.change.fill, "fill_", failing_fill)
    result = cli("init", path, "--in-place", "-s", "normal")
    assert result.exit_code == ExitCode.BUG and "simulated crash" in result.stderr
    assert path.read_bytes() == original
    assert leftovers(tmp_path) == []


def test_a_full_disk_is_an_io_error_and_leaves_nothing(cli, samples, tmp_path, monkeypatch):
    import paramctl.formats._editor

    def no_space(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paramctl.formats._editor, "write_at", no_space)
    out = tmp_path / "out.pt"
    out.write_bytes(b"previous")
    result = cli("init", samples / "mlp.pt", "-s", "zeros", "-o", out)
    assert result.exit_code == 5
    assert result.stderr == f"paramctl: error: {out}: No space left on device\n"
    assert out.read_bytes() == b"previous" and leftovers(tmp_path) == []


def test_ctrl_c_mid_write_exits_130_and_leaves_nothing(cli, samples, tmp_path, monkeypatch):
    import paramctl.change.fill

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(paramctl.change.fill, "fill_", interrupted)
    result = cli("init", samples / "mlp.pt", "-s", "zeros", "-o", tmp_path / "out.pt")
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigterm_mid_write_leaves_nothing(samples, tmp_path):
    import signal
    import time

    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\ndef slow(tensor, generator):\n    print('filling', flush=True)\n    time.sleep(30)\n"
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paramctl",
            "init",
            str(samples / "mlp.pt"),
            "-s",
            f"{slow}:slow",
            "-o",
            str(out_dir / "o.pt"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"filling\n"
    assert leftovers(out_dir) != []  # the temporary file is there while writing
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    process.wait(timeout=20)
    assert time.monotonic() - started < 20
    assert process.returncode == 128 + signal.SIGTERM
    assert list(out_dir.iterdir()) == []


def test_importing_the_cli_does_not_import_torch():
    code = (
        "import sys, paramctl, paramctl.cli, paramctl.change, paramctl.atomic; print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert result.stdout.strip() == "False"
