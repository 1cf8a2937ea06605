"""list --model: models from code, checkpoints loaded into them, lazy layers materialized."""

from __future__ import annotations

import json
from pathlib import Path

import live_models
import pytest
import torch
from live_models import spec

from paramctl.errors import CorruptCheckpoint, UsageError
from paramctl.live.inputs import Inputs, materialize
from paramctl.live.model import open_model
from paramctl.live.tensors import live_tensors
from paramctl.usercode import load_object, parse_assignments

HERE = Path(__file__).resolve().parent


def test_a_model_from_a_file_lists_its_own_names_exactly(cli):
    result = cli("list", "--model", spec("mlp"))
    assert result.exit_code == 0, result.stderr
    linear = "Linear(in_features={}, out_features={}, bias=True)"
    assert result.stdout == (
        "name\tkind\tshape\tdtype\tnumel\tbytes\trequires_grad\tmodule\tshared_with\n"
        f"0.weight\tparameter\t[3, 4]\tfloat32\t12\t48\ttrue\t{linear.format(4, 3)}\t\n"
        f"0.bias\tparameter\t[3]\tfloat32\t3\t12\ttrue\t{linear.format(4, 3)}\t\n"
        f"2.weight\tparameter\t[1, 3]\tfloat32\t3\t12\ttrue\t{linear.format(3, 1)}\t\n"
        f"2.bias\tparameter\t[1]\tfloat32\t1\t4\ttrue\t{linear.format(3, 1)}\t\n"
    )


def test_model_args_are_python_literals(cli):
    names = json.loads(cli("list", "--model", spec("mlp"), "--model-arg", "hidden=5", "-f", "json").stdout)
    assert [t["shape"] for t in names["tensors"]] == [[5, 4], [5], [1, 5], [1]]
    assert parse_assignments(["a=1.5", "b=[1, 2]", "c=text", "d=None"]) == {
        "a": 1.5,
        "b": [1, 2],
        "c": "text",
        "d": None,
    }


def test_a_module_path_spec_works_too(cli):
    result = cli(
        "list", "--model", "torch.nn:Linear", "--model-arg", "in_features=2", "--model-arg", "out_features=3"
    )
    assert result.exit_code == 0, result.stderr
    assert [line.split("\t")[:3] for line in result.stdout.splitlines()[1:]] == [
        ["weight", "parameter", "[3, 2]"],
        ["bias", "parameter", "[3]"],
    ]


def test_buffers_are_told_apart_from_parameters(cli):
    rows = json.loads(cli("list", "--model", spec("Mixed"), "-f", "json").stdout)["tensors"]
    kinds = {row["name"]: (row["kind"], row["requires_grad"], row["persistent"]) for row in rows}
    assert kinds["used.weight"] == ("parameter", True, True)
    assert kinds["frozen.weight"] == ("parameter", False, True)
    assert kinds["bn.running_mean"] == ("buffer", False, True)
    assert kinds["bn.num_batches_tracked"][0] == "buffer"
    assert kinds["scratch"] == ("buffer", False, False)
    # state_dict order, with the non-persistent buffer where the module holds it
    names = [row["name"] for row in rows]
    assert [n for n in names if n != "scratch"] == list(live_models.Mixed().state_dict())


def test_shared_parameters_name_each_other(cli):
    rows = json.loads(cli("list", "--model", spec("tied"), "-f", "json").stdout)["tensors"]
    assert [(r["name"], r["shared_with"]) for r in rows] == [
        ("0.weight", ["1.weight"]),
        ("1.weight", ["0.weight"]),
    ]


def test_a_checkpoint_is_loaded_into_the_model(samples):
    live = open_model(samples / "mlp.pt", model=f"{samples / 'make_samples.py'}:mlp")
    expected = torch.load(samples / "mlp.pt", weights_only=True)
    for name, value in live.module.state_dict().items():
        assert torch.equal(value, expected[name])
    assert live.loaded_from == str(samples / "mlp.pt")


def test_a_training_checkpoint_loads_its_model_dict(samples, cli):
    live = open_model(samples / "training.pt", model=spec("mlp"))
    expected = torch.load(samples / "training.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, expected[k]) for k, v in live.module.state_dict().items())
    result = cli("list", samples / "training.pt", "--model", spec("mlp"), "-f", "names")
    assert result.stdout.split() == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_a_checkpoint_that_does_not_fit_names_the_differences(cli, samples):
    result = cli("list", samples / "mlp.pt", "--model", spec("mlp"), "--model-arg", "hidden=5")
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1
    assert "shape differs: 0.weight [3, 4] vs [5, 4]" in result.stderr
    other = cli("list", samples / "cnn.safetensors", "--model", spec("mlp"))
    assert other.exit_code == 3
    assert "missing 0.weight" in other.stderr and "unexpected conv1.bias, conv1.weight" in other.stderr


def test_standard_input_is_read_only_when_asked(cli, samples):
    data = (samples / "mlp.pt").read_bytes()
    piped = cli("list", "-", "--model", spec("mlp"), "-f", "json", input=data)
    assert piped.exit_code == 0, piped.stderr
    assert json.loads(piped.stdout)["loaded_from"] == "<stdin>"
    # no path at all: the model as built, even with a (non-terminal) standard input
    built = cli("list", "--model", spec("mlp"), "-f", "json", input=data)
    assert json.loads(built.stdout)["loaded_from"] is None


@pytest.mark.parametrize(
    ("model", "code", "message"),
    [
        ("no_colon", 2, "expected 'package.module:name'"),
        ("missing_file.py:net", 2, "no such file"),
        ("paramctl_no_such_module:net", 3, "no module named 'paramctl_no_such_module'"),
        (spec("nope"), 2, "live_models.py has no attribute 'nope'"),
        (spec("broken"), 3, "RuntimeError: the factory is broken"),
        (spec("not_a_module"), 3, "returned dict, not a torch.nn.Module"),
    ],
)
def test_model_errors_are_one_line(cli, model, code, message):
    result = cli("list", "--model", model)
    assert result.exit_code == code
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_factory_that_rejects_its_arguments_says_so(cli):
    result = cli("list", "--model", spec("mlp"), "--model-arg", "width=3")
    assert result.exit_code == 3
    assert "unexpected keyword argument 'width'" in result.stderr


def test_loading_the_same_file_twice_reuses_the_module():
    assert load_object(spec("Mixed")) is load_object(spec("Mixed"))
    with pytest.raises(UsageError):
        load_object(spec("nope"))


def test_lazy_parameters_are_listed_before_and_after_materialization(cli):
    before = json.loads(cli("list", "--model", spec("lazy"), "-f", "json").stdout)
    rows = {row["name"]: row for row in before["tensors"]}
    assert rows["0.weight"]["shape"] is None and rows["0.weight"]["initialized"] is False
    assert rows["0.weight"]["module"] == "LazyLinear(in_features=0, out_features=256, bias=True)"
    assert rows["2.weight"]["shape"] == [10, 256]
    assert before["uninitialized"] == ["0.weight", "0.bias"]

    after = json.loads(cli("list", "--model", spec("lazy"), "--input-shape", "2,20", "-f", "json").stdout)
    rows = {row["name"]: row for row in after["tensors"]}
    assert rows["0.weight"]["shape"] == [256, 20] and rows["0.bias"]["shape"] == [256]
    assert rows["0.weight"]["module"] == "Linear(in_features=20, out_features=256, bias=True)"
    assert after["materialized"] == ["0.weight", "0.bias"] and after["uninitialized"] == []


def test_lazy_shapes_show_as_unknown_in_tables(cli):
    table = cli("list", "--model", spec("lazy"), "-f", "table").stdout
    assert "LazyLinear(in_features=0, out_features=256, bias=True)" in table
    assert "2 uninitialized (lazy) tensors; --input-shape gives them their shapes" in table
    tsv = cli("list", "--model", spec("lazy")).stdout.splitlines()
    assert tsv[1].split("\t")[:6] == ["0.weight", "parameter", "?", "float32", "", ""]


def test_a_lazy_model_takes_its_shapes_from_a_checkpoint(save_pt):
    net = live_models.lazy()
    net(torch.rand(2, 7))
    path = save_pt(net.state_dict())
    live = open_model(path, model=spec("lazy"))
    assert live.module[0].weight.shape == (256, 7)
    assert torch.equal(live.module[0].weight, net[0].weight)


def test_the_dry_forward_pass_leaves_running_statistics_and_modes_alone():
    net = torch.nn.Sequential(torch.nn.LazyLinear(4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5))
    assert materialize(net, Inputs((torch.rand(8, 3),))) == ["0.weight", "0.bias"]
    assert torch.equal(net[1].running_mean, torch.zeros(4))
    assert int(net[1].num_batches_tracked) == 0
    assert all(module.training for module in net.modules())
    assert materialize(net, Inputs((torch.rand(8, 3),))) == []


def test_selection_and_sorting_apply_to_live_names(cli):
    names = cli("list", "--model", spec("Mixed"), "-m", "*.weight", "-x", "frozen*", "-f", "names").stdout
    assert names.split() == ["used.weight", "unused.weight", "bn.weight"]
    largest = cli("list", "--model", spec("lazy"), "--sort", "size", "-f", "names").stdout.split()
    assert largest[0] == "2.weight" and largest[-2:] == ["0.weight", "0.bias"]
    nothing = cli("list", "--model", spec("mlp"), "-m", "*.wieght")
    assert nothing.exit_code == 1 and "close names" in nothing.stderr


def test_tree_works_on_live_models(cli):
    lines = cli("list", "--model", spec("mlp"), "--tree").stdout.splitlines()
    assert lines[:2] == [
        "module\tkind\ttensors\tshape\tdtype\tnumel\tbytes\tstored_bytes\tshared_with",
        ".\tmodule\t4\t\tfloat32\t19\t76\t76\t",
    ]


def test_options_that_make_no_sense_with_a_live_model_are_refused(cli, samples):
    assert cli("list", "--model", spec("mlp"), "--all").exit_code == 2
    assert cli("list", "--model", spec("mlp"), "--loss", "mean").exit_code == 2
    assert cli("list", "--model", spec("mlp"), "--input-value", "1").exit_code == 2
    # options of live models are not silently ignored on a file
    assert "give --model" in cli("list", samples / "mlp.pt", "--seed", "1").stderr
    assert "--model-arg needs --model" in cli("list", samples / "mlp.pt", "--model-arg", "a=1").stderr
    with pytest.raises(UsageError):
        open_model(None)


def test_live_tensors_of_a_module_built_by_hand():
    rows = live_tensors(live_models.tied())
    assert [(r.name, r.shape, r.shared_with) for r in rows] == [
        ("0.weight", (1, 1), ("1.weight",)),
        ("1.weight", (1, 1), ("0.weight",)),
    ]


def test_a_state_dict_alone_is_not_a_model(cli, samples):
    result = cli("grads", samples / "mlp.pt", "--input-shape", "2,4")
    assert result.exit_code == 2
    assert "give --model" in result.stderr


def test_a_broken_checkpoint_is_invalid_input(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptCheckpoint):
        open_model(path, model=spec("mlp"))
