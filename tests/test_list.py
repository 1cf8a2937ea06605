"""paramctl list: every sample lists what torch and safetensors themselves report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SAMPLE_FILES
from safetensors import safe_open

from paramctl import read_checkpoint


def torch_truth(path: Path) -> dict[str, tuple[list[int], str]]:
    """Name -> (shape, dtype) as the reference libraries report them (nested names joined)."""
    if path.suffix == ".safetensors":
        with safe_open(path, "pt") as f:
            return {k: (list(f.get_slice(k).get_shape()), str(f.get_tensor(k).dtype)[6:]) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    found = {}

    def walk(node, prefix):
        if isinstance(node, torch.Tensor):
            found[prefix] = (list(node.shape), str(node.dtype)[6:])
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, f"{prefix}.{i}" if prefix else str(i))

    walk(torch.load(path, weights_only=True), "")
    return found


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_sample_lists_what_the_reference_library_reports(samples, name):
    path = samples / name
    ours = {e.name: (list(e.shape), e.dtype) for e in read_checkpoint(path).entries}
    truth = torch_truth(path)
    if name == "tied_transformer.safetensors":
        # save_model dropped the tied name and recorded it in __metadata__; paramctl restores it.
        assert ours.pop("lm_head.weight") == ours["embed.weight"]
    assert ours == truth


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_cli_json_matches_the_library(cli, samples, name):
    result = cli("list", samples / name, "--all", "--format", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    listed = {t["name"]: (t["shape"], t["dtype"]) for t in document["tensors"]}
    ours = {e.name: (list(e.shape), e.dtype) for e in read_checkpoint(samples / name).entries}
    assert listed == ours
    assert document["totals"]["tensors"] == len(ours)


def test_tsv_is_the_default_in_a_pipe_and_exact(cli, samples):
    result = cli("list", samples / "mlp.pt")
    assert result.exit_code == 0
    assert result.stdout == (
        "name\tshape\tdtype\tnumel\tbytes\tshared_with\n"
        "0.weight\t[3, 4]\tfloat32\t12\t48\t\n"
        "0.bias\t[3]\tfloat32\t3\t12\t\n"
        "2.weight\t[1, 3]\tfloat32\t3\t12\t\n"
        "2.bias\t[1]\tfloat32\t1\t4\t\n"
    )


def test_csv_jsonl_and_names(cli, samples):
    path = samples / "tied_sequential.pt"
    csv_out = cli("list", path, "-f", "csv").stdout.splitlines()
    assert csv_out == [
        "name,shape,dtype,numel,bytes,shared_with",
        '0.weight,"[1, 1]",float32,1,4,1.weight',
        '1.weight,"[1, 1]",float32,1,4,0.weight',
    ]
    lines = [json.loads(line) for line in cli("list", path, "-f", "jsonl").stdout.splitlines()]
    assert [line["shared_with"] for line in lines] == [["1.weight"], ["0.weight"]]
    assert cli("list", path, "-f", "names").stdout == "0.weight\n1.weight\n"


def test_table_shows_totals_and_the_shared_mark(cli, samples):
    result = cli("list", samples / "tied_transformer.pt", "--format", "table")
    assert "↔ lm_head.weight" in result.stdout
    assert "14 tensors, 1,384 elements, 5.41 KiB (4.41 KiB stored, sharing counted once)" in result.stdout
    assert "by dtype: float32 14 (5.41 KiB)" in result.stdout


@pytest.mark.parametrize(
    "name", ["tied_sequential.pt", "tied_transformer.pt", "tied_transformer.safetensors"]
)
def test_tied_samples_are_marked_shared(cli, samples, name):
    rows = json.loads(cli("list", samples / name, "-f", "json").stdout)["tensors"]
    shared = {row["name"]: row["shared_with"] for row in rows if row["shared_with"]}
    expected = (
        {"0.weight": ["1.weight"], "1.weight": ["0.weight"]}
        if "sequential" in name
        else {
            "embed.weight": ["lm_head.weight"],
            "lm_head.weight": ["embed.weight"],
        }
    )
    assert shared == expected


def test_nested_checkpoint_shows_the_model_dict_by_default(cli, samples):
    result = cli("list", samples / "training.pt", "-f", "json")
    document = json.loads(result.stdout)
    assert document["prefix"] == "state_dict"
    assert [t["name"] for t in document["tensors"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "showing 'state_dict'" not in result.stdout


def test_nested_all_and_key(cli, samples):
    names = cli("list", samples / "training.pt", "--all", "-f", "names").stdout.split()
    assert "state_dict.0.weight" in names
    assert "optimizer.state.0.exp_avg" in names and "optimizer.state.3.exp_avg_sq" in names
    optimizer = cli("list", samples / "training.pt", "--key", "optimizer.state", "-f", "names").stdout.split()
    assert optimizer[:3] == ["0.step", "0.exp_avg", "0.exp_avg_sq"]


def test_extras_show_non_tensor_entries(cli, samples):
    document = json.loads(cli("list", samples / "training.pt", "--extras", "-f", "json").stdout)
    extras = {e["name"]: e["value"] for e in document["extras"]}
    assert extras["epoch"] == 3
    assert extras["optimizer.param_groups.0.lr"] == 0.001


def test_selection_match_regex_exclude(cli, samples):
    path = samples / "cnn.safetensors"
    assert cli("list", path, "-m", "*.weight", "-x", "fc*", "-f", "names").stdout.split() == [
        "conv1.weight",
        "conv2.weight",
    ]
    assert cli("list", path, "-r", "^fc[12]\\.bias$", "-f", "names").stdout.split() == [
        "fc1.bias",
        "fc2.bias",
    ]


def test_sort_by_size_puts_the_largest_first(cli, samples):
    names = cli("list", samples / "cnn.safetensors", "--sort", "size", "-f", "names").stdout.split()
    assert names[0] == "fc1.weight"


def test_tree_groups_by_module_with_subtotals(cli, samples):
    lines = cli("list", samples / "cnn.safetensors", "--tree", "-f", "tsv").stdout.splitlines()
    assert lines[0] == "module\tkind\ttensors\tshape\tdtype\tnumel\tbytes\tstored_bytes\tshared_with"
    assert ".\tmodule\t8\t\tfloat32\t2570\t10280\t10280\t" in lines
    assert "fc1\tmodule\t2\t\tfloat32\t2064\t8256\t8256\t" in lines
    assert "fc1.weight\ttensor\t1\t[16, 128]\tfloat32\t2048\t8192\t8192\t" in lines


def test_tree_csv_quotes_names_with_commas_and_quotes(cli, save_pt):
    import csv
    import io

    path = save_pt({'enc,"odd".weight': torch.zeros(2, 3), 'enc,"odd".bias': torch.zeros(2)})
    result = cli("list", path, "--tree", "-f", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert [row[:3] + row[5:8] for row in rows] == [
        ["module", "kind", "tensors", "numel", "bytes", "stored_bytes"],
        [".", "module", "2", "8", "32", "32"],
        ['enc,"odd"', "module", "2", "8", "32", "32"],
        ['enc,"odd".weight', "tensor", "1", "6", "24", "24"],
        ['enc,"odd".bias', "tensor", "1", "2", "8", "8"],
    ]
    assert result.stdout.splitlines()[2].startswith('"enc,""odd""",module,2,')


def test_tree_jsonl_is_a_module_per_line(cli, samples):
    lines = cli("list", samples / "mlp.pt", "--tree", "-f", "jsonl").stdout.splitlines()
    modules = [json.loads(line) for line in lines]
    assert modules[0] == {
        "module": "",
        "kind": "module",
        "tensors": 4,
        "numel": 19,
        "bytes": 76,
        "stored_bytes": 76,
        "shape": None,
        "dtype": "float32",
        "shared_with": [],
    }
    assert [m["module"] for m in modules[1:3]] == ["0", "0.weight"]


def test_tree_names_and_json_keep_their_shape(cli, samples):
    names = cli("list", samples / "mlp.pt", "--tree", "-f", "names").stdout.splitlines()
    assert names == ["", "0", "0.weight", "0.bias", "2", "2.weight", "2.bias"]
    document = json.loads(cli("list", samples / "mlp.pt", "--tree", "-f", "json").stdout)
    assert document["module"] == "" and [c["module"] for c in document["children"]] == ["0", "2"]


def test_stdin_is_read_with_a_dash(cli, samples):
    data = (samples / "mlp.pt").read_bytes()
    result = cli("list", "-", "-f", "names", input=data)
    assert result.stdout.split() == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_control_characters_in_names_are_escaped(cli, save_pt):
    path = save_pt({"evil\x1b[2J\nname": torch.zeros(1), "tab\there": torch.zeros(1)})
    table = cli("list", path, "-f", "table").stdout
    assert "\x1b" not in table and "evil\\x1b[2J\\nname" in table
    tsv = cli("list", path).stdout.splitlines()
    assert tsv[1].split("\t")[0] == "evil\\x1b[2J\\nname" and tsv[2].split("\t")[0] == "tab\\there"
    assert json.loads(cli("list", path, "-f", "json").stdout)["tensors"][0]["name"] == "evil\x1b[2J\nname"


def test_no_color_is_honoured_on_a_terminal(monkeypatch, samples, capsys):
    from paramctl.inspect.listing import build_listing
    from paramctl.render.engine import Environment, OutputFormat, emit
    from paramctl.render.listing import listing_report

    class Terminal:
        def __init__(self):
            self.parts = []

        def write(self, text):
            self.parts.append(text)

        def flush(self):
            pass

        def isatty(self):
            return True

    def render() -> str:
        out = Terminal()
        env = Environment(out, out, stdout_isatty=True, stderr_isatty=True)
        listing = build_listing(read_checkpoint(samples / "tied_sequential.pt"))
        emit(listing_report(listing), OutputFormat.table, env)
        return "".join(out.parts)

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    magenta = "\x1b[35m"  # the colour of the shared column
    assert magenta in render()
    monkeypatch.setenv("NO_COLOR", "1")
    assert magenta not in render()


def test_each_standard_input_is_read_afresh(cli, samples):
    first = cli("list", "-f", "names", input=(samples / "mlp.pt").read_bytes())
    second = cli("list", "-f", "names", input=(samples / "tied_sequential.pt").read_bytes())
    assert first.stdout.split() == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert second.stdout.split() == ["0.weight", "1.weight"]
