"""paramctl diff A B: names, shapes, dtypes, ties and values of two checkpoints, any formats."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file, save_model
from tables import assert_fits, assert_no_empty_column, read_table
from torch import nn

from paramctl import read_checkpoint
from paramctl.compare import diff_checkpoints
from paramctl.rename import NameMap


@pytest.fixture
def state():
    torch.manual_seed(0)
    return {
        k: v.clone()
        for k, v in nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict().items()
    }


def diff_json(cli, *args):
    result = cli("diff", *args, "-f", "json")
    return result.exit_code, json.loads(result.stdout) if result.stdout else None, result


def changes_of(document):
    return {c["name"]: c["change"] for c in document["changes"]}


# -- equal and different ---------------------------------------------------------------------


def test_equal_checkpoints_exit_0_with_no_rows(cli, save_pt, state):
    a, b = save_pt(state, "a.pt"), save_pt(state, "b.pt")
    result = cli("diff", a, b)
    assert result.exit_code == 0, result.stderr
    header = "name change name_a shape_a shape_b dtype_a dtype_b numel differing max_abs rel_l2 ties_a ties_b"
    assert result.stdout == header.replace(" ", "\t") + "\n"
    assert result.stderr == "no differences among 4 tensors (values equal exactly)\n"


def test_equal_across_formats(cli, save_pt, save_st, state):
    # The same tensors as .pt, legacy .pt and safetensors are equal: formats do not matter.
    pt, legacy, st = save_pt(state, "a.pt"), save_pt(state, "l.pt", legacy=True), save_st(state)
    for first, second in [(pt, st), (legacy, st), (st, legacy)]:
        code, document, _ = diff_json(cli, first, second)
        assert code == 0 and document["equal"] and document["compared"] == 4


def test_changed_values_report_max_abs_relative_l2_and_count(cli, save_pt, state):
    after = dict(state)
    after["0.weight"] = state["0.weight"] + torch.tensor([[0.5, 0, 0, 0], [0, 0, -2.0, 0], [0, 0, 0, 0]])
    code, document, _ = diff_json(cli, save_pt(state, "a.pt"), save_pt(after, "b.pt"))
    assert code == 1
    (change,) = document["changes"]
    a, b = state["0.weight"].double(), after["0.weight"].double()
    assert change["name"] == "0.weight" and change["change"] == ["values"]
    assert change["differing"] == 2 and change["numel"] == 12
    assert change["max_abs"] == pytest.approx(2.0)
    assert change["rel_l2"] == pytest.approx(float((a - b).norm() / b.norm()), rel=1e-6)
    assert document["summary"] == "1 of 4 names differ: values 1 (values equal exactly)"


def test_only_in_a_only_in_b_shape_and_dtype(cli, save_pt, save_st, state):
    after = dict(state)
    del after["0.bias"]
    after["extra.weight"] = torch.zeros(2)
    after["2.weight"] = torch.zeros(5, 3)
    after["2.bias"] = state["2.bias"].to(torch.bfloat16)
    code, document, _ = diff_json(cli, save_pt(state, "a.pt"), save_st(after))
    assert code == 1
    assert changes_of(document) == {
        "2.weight": ["shape"],
        "2.bias": ["dtype", "values"],  # float32 to bfloat16 rounds
        "0.bias": ["only_a"],
        "extra.weight": ["only_b"],
    }
    shape = next(c for c in document["changes"] if c["name"] == "2.weight")
    assert (shape["shape_a"], shape["shape_b"], shape["max_abs"]) == ([2, 3], [5, 3], None)


def test_a_dtype_change_that_keeps_the_values_is_a_dtype_change_only(cli, save_pt):
    ints = {"steps": torch.arange(6, dtype=torch.int64)}
    code, document, _ = diff_json(cli, save_pt(ints, "a.pt"), save_pt({"steps": torch.arange(6.0)}, "b.pt"))
    assert code == 1 and changes_of(document) == {"steps": ["dtype"]}
    assert document["changes"][0]["differing"] == 0


def test_nan_equals_nan_in_the_same_place(cli, save_pt):
    values = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    assert cli("diff", save_pt({"w": values}, "a.pt"), save_pt({"w": values.clone()}, "b.pt")).exit_code == 0
    moved = torch.tensor([float("nan"), 1.0, float("inf"), -float("inf")])
    code, document, _ = diff_json(cli, save_pt({"w": values}, "a.pt"), save_pt({"w": moved}, "c.pt"))
    assert code == 1 and document["changes"][0]["differing"] == 2
    assert math.isnan(document["changes"][0]["max_abs"])


def test_negative_zero_equals_zero_though_its_bytes_differ(cli, save_pt):
    code, _, _ = diff_json(
        cli, save_pt({"w": torch.zeros(3)}, "a.pt"), save_pt({"w": -torch.zeros(3)}, "b.pt")
    )
    assert code == 0


# -- tolerances and names only ------------------------------------------------------------------


def test_atol_and_rtol_decide_equal_as_isclose_does(cli, save_pt):
    a = save_pt({"w": torch.tensor([1.0, 100.0])}, "a.pt")
    b = save_pt({"w": torch.tensor([1.001, 100.05])}, "b.pt")
    assert cli("diff", a, b).exit_code == 1
    assert cli("diff", a, b, "--atol", "0.01").exit_code == 1  # 0.05 > 0.01
    assert cli("diff", a, b, "--atol", "0.001", "--rtol", "0.001").exit_code == 0
    result = cli("diff", a, b, "--rtol", "1e-4")
    assert result.exit_code == 1
    assert result.stderr == "1 of 1 name differ: values 1 (values equal within atol 0, rtol 0.0001)\n"
    assert cli("diff", a, b, "--atol", "-1").exit_code == 2


def test_names_only_reads_no_values(cli, save_pt, state, monkeypatch):
    after = dict(state, **{"0.weight": state["0.weight"] + 1, "2.weight": torch.zeros(1, 3)})
    a, b = save_pt(state, "a.pt"), save_pt(after, "b.pt")
    import paramctl.values

    def no_values(*args, **kwargs):
        raise AssertionError("values were read")

    monkeypatch.setattr(paramctl.values.ValueReader, "chunks", no_values)
    monkeypatch.setattr(paramctl.values.ValueReader, "raw_chunks", no_values)
    code, document, _ = diff_json(cli, a, b, "--names-only")
    assert code == 1 and changes_of(document) == {"2.weight": ["shape"]}
    assert document["summary"].endswith("(values not compared)")


# -- ties ----------------------------------------------------------------------------------------


def tied_model():
    torch.manual_seed(0)
    model = nn.ModuleDict({"embed": nn.Embedding(6, 4), "head": nn.Linear(4, 6, bias=False)})
    model["head"].weight = model["embed"].weight
    return model


def test_a_tie_broken_is_a_change_of_ties(cli, save_pt):
    model = tied_model()
    tied = save_pt(model.state_dict(), "tied.pt")
    untied = save_pt({k: v.clone() for k, v in model.state_dict().items()}, "untied.pt")
    code, document, _ = diff_json(cli, tied, untied)
    assert code == 1
    assert changes_of(document) == {"embed.weight": ["ties"], "head.weight": ["ties"]}
    embed = document["changes"][0]
    assert (embed["ties_a"], embed["ties_b"], embed["differing"]) == (["head.weight"], [], 0)


def test_save_model_keeps_the_tie_a_pt_file_has(cli, save_pt, tmp_path):
    model = tied_model()
    st = tmp_path / "tied.safetensors"
    save_model(model, str(st))
    assert cli("diff", save_pt(model.state_dict(), "tied.pt"), st).exit_code == 0
    broken = tmp_path / "copies.safetensors"
    save_file({k: v.clone().contiguous() for k, v in model.state_dict().items()}, broken)
    assert cli("diff", st, broken, "--names-only").exit_code == 1


def test_a_shared_storage_is_compared_once(save_pt):
    model = tied_model()
    a = read_checkpoint(save_pt(model.state_dict(), "a.pt"))
    with torch.no_grad():
        model["embed"].weight += 1  # still tied
    b = read_checkpoint(save_pt(model.state_dict(), "b.pt"))
    read: list[int] = []
    found = diff_checkpoints(a, b, on_progress=read.append)
    assert [c.name for c in found.changes] == ["embed.weight", "head.weight"]
    assert read == [6 * 4 * 4]  # one tensor's bytes, for two names


# -- names aligned ------------------------------------------------------------------------------


def test_strip_prefix_aligns_a_data_parallel_checkpoint(cli, save_pt, state):
    wrapped = save_pt({f"module.{k}": v for k, v in state.items()}, "dp.pt")
    plain = save_pt(state, "plain.pt")
    code, document, _ = diff_json(cli, wrapped, plain)
    assert code == 1 and document["compared"] == 0 and len(document["changes"]) == 8
    code, document, _ = diff_json(cli, wrapped, plain, "--strip-prefix", "module.")
    assert code == 0 and document["compared"] == 4
    assert document["renaming"] == ["--strip-prefix", "module."]


def test_rename_aligns_and_the_row_keeps_as_name(cli, save_pt, state):
    old = save_pt({k.replace("weight", "gamma"): v for k, v in state.items()}, "old.pt")
    new = save_pt(dict(state, **{"0.weight": state["0.weight"] * 2}), "new.pt")
    code, document, _ = diff_json(cli, old, new, "--rename", r"gamma$=weight")
    assert code == 1 and changes_of(document) == {"0.weight": ["values"]}
    assert document["changes"][0]["name_a"] == "0.gamma"
    assert cli("diff", old, new, "--rename", "no equals").exit_code == 2


def test_the_library_renames_a_only(save_pt, state):
    a = read_checkpoint(save_pt({f"model.{k}": v for k, v in state.items()}, "a.pt"))
    b = read_checkpoint(save_pt(state, "b.pt"))
    assert diff_checkpoints(a, b, names=NameMap(("model.",))).equal
    assert not diff_checkpoints(b, a, names=NameMap(("model.",))).equal


def test_selection_limits_the_names_compared(cli, save_pt, state):
    after = dict(state, **{"0.weight": state["0.weight"] + 1, "2.weight": state["2.weight"] + 1})
    a, b = save_pt(state, "a.pt"), save_pt(after, "b.pt")
    code, document, _ = diff_json(cli, a, b, "-m", "2.*")
    assert code == 1 and changes_of(document) == {"2.weight": ["values"]}
    assert cli("diff", a, b, "-m", "*.bias").exit_code == 0
    nothing = cli("diff", a, b, "-m", "3.*")
    assert nothing.exit_code == 1 and "no tensor matches --match 3.*" in nothing.stderr


def test_key_and_all_choose_the_tensors_as_list_does(cli, save_pt, state):
    ckpt = {"state_dict": state, "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}}, "epoch": 1}
    later = {"state_dict": state, "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}}, "epoch": 2}
    a, b = save_pt(ckpt, "a.ckpt"), save_pt(later, "b.ckpt")
    assert cli("diff", a, b).exit_code == 0  # the model dict found in both
    code, document, _ = diff_json(cli, a, b, "--all")
    assert code == 1 and changes_of(document) == {"optimizer.state.0.exp_avg": ["values"]}
    assert cli("diff", a, save_pt(state, "plain.pt")).exit_code == 0


# -- the init round --------------------------------------------------------------------------------


def test_diff_after_init_shows_exactly_the_selected_names(cli, samples, tmp_path):
    before, after = samples / "tied_transformer.pt", tmp_path / "after.pt"
    init = ["init", before, "-m", "attn.*", "-m", "mlp.0.*", "-s", "normal", "--seed", "1"]
    assert cli(*init, "-o", after).exit_code == 0
    selected = cli(*init, "--dry-run", "-f", "names").stdout.split()
    result = cli("diff", before, after, "-f", "names")
    assert result.exit_code == 1, result.stderr
    assert result.stdout.split() == selected
    assert selected == [n for n in read_checkpoint(before).names() if n.startswith(("attn.", "mlp.0."))]


def test_diff_after_init_of_a_tied_weight_shows_its_tie_too(cli, samples, tmp_path):
    before, after = samples / "tied_transformer.pt", tmp_path / "after.pt"
    assert cli("init", before, "-m", "embed.weight", "-s", "zeros", "-o", after).exit_code == 0
    result = cli("diff", before, after, "-f", "names")
    assert result.stdout.split() == ["embed.weight", "lm_head.weight"]


# -- exit codes and streams --------------------------------------------------------------------------


def test_exit_codes(cli, save_pt, state, tmp_path):
    a = save_pt(state, "a.pt")
    assert cli("diff", a).exit_code == 2  # no B
    assert cli("diff", a, tmp_path / "missing.pt").exit_code == 5
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    assert cli("diff", a, tmp_path / "junk.pt").exit_code == 3
    unsafe = save_pt(nn.Linear(2, 2), "module.pt")
    refused = cli("diff", unsafe, a)
    assert refused.exit_code == 4 and "nothing was executed" in refused.stderr
    assert cli("diff", a, a, "--trust").exit_code == 2


def test_a_checkpoint_from_standard_input(cli, save_pt, state):
    a = save_pt(state, "a.pt")
    b = save_pt(dict(state, **{"2.bias": state["2.bias"] + 1}), "b.pt")
    result = cli("diff", "-", b, "-f", "names", input=a.read_bytes())
    assert result.exit_code == 1 and result.stdout == "2.bias\n"


def test_tsv_columns_and_the_table(cli, save_pt, state):
    after = dict(state, **{"0.weight": state["0.weight"] * 0, "2.bias": state["2.bias"].half()})
    a, b = save_pt(state, "a.pt"), save_pt(after, "b.pt")
    result = cli("diff", a, b, "--columns", "name,change,dtype_a,dtype_b,differing")
    assert result.stdout == (
        "name\tchange\tdtype_a\tdtype_b\tdiffering\n"
        "0.weight\tvalues\tfloat32\tfloat32\t12\n"
        "2.bias\tdtype,values\tfloat32\tfloat16\t2\n"
    )
    table = cli("diff", a, b, "-f", "table", env={"COLUMNS": "100"}).stdout
    drawn = read_table(table)
    assert drawn.headers[:2] == ["name", "change"]
    assert "float32 → float16" in table and "dtype, values" in table
    assert table.splitlines()[-1] == "2 of 4 names differ: dtype 1, values 2 (values equal exactly)"


@pytest.mark.parametrize("width", [80, 160])
def test_the_table_fits_and_shows_every_name_whole(cli, tmp_path, width):
    names = [f"transformer.encoder.layers.{i}.self_attention.output_projection.weight" for i in range(3)]
    torch.manual_seed(0)
    before = {name: torch.randn(4, 4) for name in names}
    after = {
        name: (v + 1).to(torch.bfloat16) if i else v.t().contiguous()
        for i, (name, v) in enumerate(before.items())
    }
    after["added.by.the.second.checkpoint.weight"] = torch.zeros(2)
    a, b = tmp_path / "a.pt", tmp_path / "b.safetensors"
    torch.save(before, a)
    save_file(after, b)
    result = cli("diff", a, b, "-f", "table", env={"COLUMNS": str(width)})
    assert result.exit_code == 1
    assert_fits(result.stdout, width)
    drawn = read_table(result.stdout)
    assert_no_empty_column(drawn)
    folded = drawn.folded(0)
    assert folded == "".join([*names, "added.by.the.second.checkpoint.weight"])


def test_diff_reads_values_without_torch(tmp_path):
    import subprocess
    import sys

    a, b = tmp_path / "a.pt", tmp_path / "b.safetensors"
    torch.save({"w": torch.ones(3, 3), "b": torch.zeros(3)}, a)
    save_file({"w": torch.ones(3, 3) * 2, "b": torch.zeros(3)}, b)
    code = (
        "import sys; from paramctl.cli import app\n"
        "try:\n    app(['diff', sys.argv[1], sys.argv[2], '-f', 'names'])\nexcept SystemExit as exit:\n"
        "    assert exit.code == 1, exit.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(a), str(b)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "w\n"


def test_memory_stays_at_a_few_chunks(tmp_path):
    # Two 64 MiB tensors that differ: values are streamed, never held whole.
    import subprocess
    import sys

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    big = torch.arange(16 << 20, dtype=torch.float32)
    torch.save({"w": big}, a)
    big[-1] = 0
    torch.save({"w": big}, b)
    del big
    code = (
        "import sys, tracemalloc\n"
        "from paramctl import read_checkpoint\nfrom paramctl.compare import diff_checkpoints\n"
        "a, b = read_checkpoint(sys.argv[1]), read_checkpoint(sys.argv[2])\n"
        "tracemalloc.start()\nfound = diff_checkpoints(a, b)\n"
        "print(found.changes[0].values.differing, tracemalloc.get_traced_memory()[1] >> 20)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(a), str(b)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    differing, peak_mib = map(int, done.stdout.split())
    assert differing == 1
    assert peak_mib < 40, f"{peak_mib} MiB traced for two 64 MiB tensors"


def test_strided_views_are_compared_element_by_element(cli, save_pt):
    base = torch.arange(24.0).reshape(4, 6)
    a = save_pt({"t": base.t()}, "a.pt")  # a transposed view: element order differs from bytes
    b = save_pt({"t": base.t().contiguous()}, "b.pt")
    assert cli("diff", a, b).exit_code == 0
    c = save_pt({"t": base.contiguous().view(6, 4)}, "c.pt")
    code, document, _ = diff_json(cli, a, c)
    assert code == 1 and document["changes"][0]["differing"] == int(
        np.count_nonzero(base.t().numpy() != base.view(6, 4).numpy())
    )


def test_every_format_compares_with_every_other(tmp_path, state, save_pt):
    import gguf
    import torch.distributed.checkpoint as dcp

    pt = save_pt(state, "a.pt")
    arrays = {k: v.numpy() for k, v in state.items()}
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    with pytest.warns(UserWarning):
        dcp.save({k: v.clone() for k, v in state.items()}, checkpoint_id=tmp_path / "dcp")
    writer = gguf.GGUFWriter(tmp_path / "a.gguf", "llama")
    for name, array in arrays.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file()
    writer.close()
    changed = save_pt(dict(state, **{"2.bias": state["2.bias"] + 1}), "b.pt")
    first = read_checkpoint(pt)
    for other in ("a.npz", "c.npz", "dcp", "a.gguf"):
        assert diff_checkpoints(first, read_checkpoint(tmp_path / other)).equal, other
        found = diff_checkpoints(read_checkpoint(tmp_path / other), read_checkpoint(changed))
        assert [(c.name, c.kinds) for c in found.changes] == [("2.bias", ("values",))], other
