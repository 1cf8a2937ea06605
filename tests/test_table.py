"""The rules of tables that fit, at any width: names whole, nothing cut, nothing too wide."""

from __future__ import annotations

import io
import string

from hypothesis import given, settings
from hypothesis import strategies as st
from tables import assert_fits, read_table

from paramctl.render.columns import STAT_COLUMNS, TENSOR_COLUMNS, compact_int, human_stat
from paramctl.render.engine import Column, Environment, OutputFormat, Report, emit
from paramctl.render.table import fit_layout, fold_name, hidden_note

parts = st.text(string.ascii_lowercase + "_0123456789", min_size=1, max_size=30)
names = st.lists(parts, min_size=1, max_size=6).map(".".join)


def rendered(report: Report, width: int) -> str:
    out = io.StringIO()
    emit(report, OutputFormat.table, Environment(out, io.StringIO(), True, False, width=width))
    return out.getvalue()


def listing_rows(tensor_names: list[str]) -> list[dict]:
    return [
        {
            "name": name,
            "shape": [i + 1, 4096],
            "dtype": "float32",
            "numel": 4096 * (i + 1),
            "bytes": 16384 * (i + 1),
        }
        | {"shared_with": [], "mean": 0.001 * i, "std": 0.02, "min": -0.1, "max": 0.1, "absmax": 0.1}
        | {"norm": 12.5, "zeros": 0.0, "nan": 0, "inf": 0}
        for i, name in enumerate(tensor_names)
    ]


@settings(max_examples=60, deadline=None)
@given(tensor_names=st.lists(names, min_size=1, max_size=8, unique=True), width=st.integers(20, 200))
def test_any_table_at_any_width_keeps_every_name_whole(tensor_names, width):
    report = Report(TENSOR_COLUMNS + STAT_COLUMNS, listing_rows(tensor_names), title="m.pt")
    text = rendered(report, width)
    assert_fits(text, width)
    if "┏" in text:
        drawn = read_table(text)
        assert drawn.folded(0) == "".join(tensor_names)
        assert "shared" not in drawn.headers  # empty in every row
    else:  # blocks: the names on lines of their own
        heads = "".join(line for line in text.splitlines()[1:] if line and not line.startswith(" "))
        assert heads == "".join(tensor_names)


def test_names_fold_after_dots_and_inside_a_part_only_when_it_is_too_long():
    assert fold_name("a.b.c", 10) == ["a.b.c"]
    assert fold_name("layers.0.attention.weight", 12) == ["layers.0.", "attention.", "weight"]
    assert fold_name("x.averyveryverylongpart", 8) == ["x.", "averyver", "yverylon", "gpart"]


def test_numbers_keep_their_precision_in_compact_form():
    assert [compact_int(n) for n in (999, 1000, 4096, 12288, 123456, 7 * 10**9)] == [
        "999",
        "1.00K",
        "4.10K",
        "12.3K",
        "123K",
        "7.00B",
    ]
    assert human_stat(1.23456e-7) == "1.235e-7" and human_stat(-0.5) == "-0.5"


def test_a_column_saying_the_same_in_every_row_is_hidden_before_names_fold():
    rows = [{"name": f"encoder.layer.{i}.weight", "dtype": "float32", "note": "x" * 10} for i in range(3)]
    columns = [
        Column("name", "name", fold="name"),
        Column("dtype", "dtype", drop_rank=3),
        Column("note", "note"),
    ]
    layout = fit_layout(columns, rows, width=40)
    assert [c.key for c in layout.columns] == ["name", "note"] and [c.key for c in layout.hidden] == ["dtype"]
    assert layout.widths[0] == len("encoder.layer.0.weight")


def test_the_note_of_hidden_columns_names_their_kind():
    stats = [column for column in STAT_COLUMNS if column.key in ("zeros", "nan", "inf")]
    assert (
        hidden_note(stats)
        == "(stats columns hidden: zeros, NaN, Inf — widen the terminal or use --format tsv)"
    )
    assert hidden_note([TENSOR_COLUMNS[2], stats[0]]).startswith("(columns hidden: dtype, zeros")


def test_columns_picks_columns_in_every_format(cli, samples):
    import json

    path = samples / "mlp.pt"
    assert cli("list", path, "--columns", "name,numel").stdout.splitlines()[:2] == [
        "name\tnumel",
        "0.weight\t12",
    ]
    assert cli("list", path, "--columns", "numel,name", "-f", "csv").stdout.splitlines()[1] == "12,0.weight"
    document = json.loads(cli("list", path, "--stats", "--columns", "name,mean", "-f", "json").stdout)
    assert set(document["tensors"][0]) == {"name", "mean"} and "totals" in document
    line = json.loads(cli("list", path, "--columns", "name", "-f", "jsonl").stdout.splitlines()[0])
    assert line == {"name": "0.weight"}
    table = read_table(cli("list", path, "--columns", "name,bytes", "-f", "table").stdout)
    assert table.headers == ["name", "bytes"]
    wrong = cli("list", path, "--columns", "name,nmuel")
    assert wrong.exit_code == 2 and "no column 'nmuel'; did you mean numel?" in wrong.stderr


def test_columns_works_on_every_command_with_rows(cli, samples, tmp_path):
    import json

    shared = json.loads(
        cli("shared", samples / "tied_sequential.pt", "--columns", "name,relation", "-f", "json").stdout
    )
    assert shared == [{"name": "0.weight", "relation": "alias"}, {"name": "1.weight", "relation": "alias"}]
    nan = tmp_path / "nan.pt"
    import torch

    torch.save({"w": torch.tensor([float("nan"), 1.0])}, nan)
    assert cli("check", nan, "--columns", "name,check").stdout.splitlines() == ["name\tcheck", "w\tnan"]
    out = tmp_path / "out.pt"
    init = cli(
        "init", samples / "mlp.pt", "-m", "*.bias", "-s", "zeros", "-o", out, "--columns", "name,std_after"
    )
    assert init.stdout.splitlines() == ["name\tstd_after", "0.bias\t0.0", "2.bias\t"]
