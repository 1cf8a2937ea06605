"""paramctl shared: storage identity from the file, each relation built with torch."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_model

from paramctl import read_checkpoint
from paramctl.checkpoint import Checkpoint, Storage, TensorEntry
from paramctl.inspect.sharing import find_shared, storage_groups


def groups_of(path, **options):
    report = find_shared(read_checkpoint(path), **options)
    return [(g.relation, [n.name for n in g.names]) for g in report.groups], report


@pytest.mark.parametrize("legacy", [False, True])
def test_sequential_linear_linear_is_one_weight(save_pt, legacy):
    # The lessons' shared layer: the same Linear twice, so both names are one tensor.
    linear = torch.nn.Linear(1, 1, bias=False)
    path = save_pt(torch.nn.Sequential(linear, linear).state_dict(), legacy=legacy)
    found, report = groups_of(path)
    assert found == [("alias", ["0.weight", "1.weight"])]
    assert report.saved_bytes == 4


def test_tied_embedding_and_output_projection(save_pt):
    embed = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = embed.weight
    path = save_pt({"embed.weight": embed.weight, "head.weight": head.weight, "head.bias": torch.zeros(10)})
    found, report = groups_of(path)
    assert found == [("alias", ["embed.weight", "head.weight"])]
    assert report.groups[0].storage_bytes == 160


def test_a_slice_saved_with_its_base_is_an_overlapping_view(save_pt):
    base = torch.arange(10.0)
    path = save_pt({"base": base, "part": base[2:5]})
    found, report = groups_of(path)
    assert found == [("overlapping", ["base", "part"])]
    spans = {n.name: (n.start, n.end, n.view) for n in report.groups[0].names}
    assert spans == {"base": (0, 40, 1), "part": (8, 20, 1)}
    assert report.groups[0].saved_bytes == 12


def test_two_halves_of_one_tensor_are_disjoint_views(save_pt):
    whole = torch.arange(8.0)
    path = save_pt({"lo": whole[:4], "hi": whole[4:]})
    found, report = groups_of(path)
    assert found == [("disjoint", ["lo", "hi"])]
    assert [n.view for n in report.groups[0].names] == [1, 2]
    assert report.saved_bytes == 0


def test_mixed_views_number_each_name(save_pt):
    whole = torch.arange(8.0)
    path = save_pt({"lo": whole[:4], "lo_again": whole[:4], "hi": whole[4:]})
    (group,) = find_shared(read_checkpoint(path)).groups
    assert group.relation == "mixed"
    assert {n.name: n.view for n in group.names} == {"lo": 1, "lo_again": 1, "hi": 2}


def test_transposed_view_of_a_weight_is_an_alias_of_its_bytes(save_pt):
    weight = torch.randn(3, 5)
    path = save_pt({"w": weight, "w_t": weight.t()})
    found, _ = groups_of(path)
    assert found == [("alias", ["w", "w_t"])]


def test_tied_samples(samples):
    for name in ("tied_transformer.pt", "tied_transformer.safetensors"):
        found, _ = groups_of(samples / name)
        assert found == [("alias", ["embed.weight", "lm_head.weight"])], name
    assert groups_of(samples / "mlp.pt")[0] == []


def test_safetensors_alias_comes_from_the_metadata(samples, tmp_path):
    report = find_shared(read_checkpoint(samples / "tied_transformer.safetensors"))
    names = {n.name: n.from_metadata for n in report.groups[0].names}
    assert names == {"embed.weight": False, "lm_head.weight": True}
    # save_model on the lessons' shared layer records the dropped name the same way.
    linear = torch.nn.Linear(2, 2)
    path = tmp_path / "tied.safetensors"
    save_model(torch.nn.Sequential(linear, linear), str(path))
    found, _ = groups_of(path)
    assert sorted(found) == [("alias", ["0.bias", "1.bias"]), ("alias", ["0.weight", "1.weight"])]


def test_byte_ranges_that_overlap_in_the_file_are_grouped(tmp_path):
    # Two storages over overlapping bytes of one file: no format paramctl reads allows it
    # (a safetensors file like this is refused), so the checkpoint is built by hand.
    path = tmp_path / "overlap.bin"
    path.write_bytes(bytes(16))
    entries = [
        TensorEntry("a", ("a",), (4,), "float32", (1,), "a"),
        TensorEntry("b", ("b",), (2,), "float32", (1,), "b"),
    ]
    storages = {"a": Storage("a", path, "float32", 16, 0), "b": Storage("b", path, "float32", 8, 8)}
    report = find_shared(Checkpoint(path, "safetensors", entries, storages))
    assert [(g.relation, [n.name for n in g.names]) for g in report.groups] == [("overlapping", ["a", "b"])]


def test_by_value_finds_duplicated_tied_weights(save_pt, save_st):
    weight = torch.randn(16, 8)
    tensors = {"embed.weight": weight, "lm_head.weight": weight.clone(), "other": torch.randn(16, 8)}
    for path in (save_pt(tensors), save_st(tensors)):
        assert groups_of(path)[0] == []
        found, report = groups_of(path, by_value=True)
        assert found == [("equal", ["embed.weight", "lm_head.weight"])]
        assert report.saved_bytes == 16 * 8 * 4
        assert report.groups[0].digest


def test_by_value_compares_strided_views_by_their_values(save_pt):
    weight = torch.randn(6, 4)
    path = save_pt({"w_t": weight.t(), "copy": weight.t().contiguous(), "other": torch.randn(4, 6)})
    found, _ = groups_of(path, by_value=True)
    assert found == [("equal", ["w_t", "copy"])]


def test_by_value_needs_equal_dtype_and_shape(save_pt):
    path = save_pt({"a": torch.zeros(4), "b": torch.zeros(2, 2), "c": torch.zeros(4, dtype=torch.int32)})
    assert groups_of(path, by_value=True)[0] == []


def test_by_value_lists_an_alias_and_its_copy_once_each(save_pt):
    weight = torch.randn(3, 3)
    path = save_pt({"a": weight, "b": weight, "c": weight.clone()})
    found, report = groups_of(path, by_value=True)
    assert found == [("alias", ["a", "b"]), ("equal", ["a", "b", "c"])]
    # the alias saves one copy, the equal copy one more
    assert report.saved_bytes == 2 * 36


def test_cli_table_and_summary(cli, samples):
    result = cli("shared", samples / "tied_sequential.pt", "-f", "table")
    assert result.exit_code == 0
    assert "alias" in result.stdout
    assert "1 group, 2 names, sharing saves 4 B" in result.stdout


def test_cli_tsv_is_exact_and_the_summary_goes_to_stderr(cli, samples):
    result = cli("shared", samples / "tied_transformer.pt")
    assert result.stdout == (
        "group\trelation\tname\tshape\tdtype\tbytes\tstorage\tstart\tend\tview\n"
        "1\talias\tembed.weight\t[32, 8]\tfloat32\t1024\t0\t0\t1024\t1\n"
        "1\talias\tlm_head.weight\t[32, 8]\tfloat32\t1024\t0\t0\t1024\t1\n"
    )
    assert "1 group, 2 names, sharing saves 1.00 KiB" in result.stderr


def test_cli_nothing_shared_exits_zero(cli, samples):
    result = cli("shared", samples / "mlp.pt", "-f", "json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["groups"] == []
    assert document["summary"] == {"groups": 0, "names": 0, "saved_bytes": 0, "tensors": 4}
    table = cli("shared", samples / "mlp.pt", "-f", "table")
    assert "no shared storages among 4 tensors" in table.stdout


def test_cli_json_by_value(cli, save_pt):
    weight = torch.ones(2, 2)
    path = save_pt({"a": weight, "b": weight.clone()})
    document = json.loads(cli("shared", path, "--by-value", "-f", "json").stdout)
    (group,) = document["groups"]
    assert group["relation"] == "equal" and group["saved_bytes"] == 16
    assert [n["name"] for n in group["names"]] == ["a", "b"]


def test_cli_selection_limits_the_names(cli, samples):
    result = cli("shared", samples / "tied_transformer.pt", "-m", "embed.*", "-f", "names")
    assert result.stdout == ""


# -- the interval rule, for any layout -------------------------------------------------


@st.composite
def views_of_one_storage(draw):
    size = draw(st.integers(4, 40))
    spans = draw(
        st.lists(
            st.tuples(st.integers(0, size - 1), st.integers(1, size)).map(
                lambda t: (t[0], max(t[0] + 1, t[1]))
            ),
            min_size=2,
            max_size=6,
        )
    )
    return size, [(start, min(end, size)) for start, end in spans]


@settings(max_examples=200, deadline=None)
@given(views_of_one_storage())
def test_views_chain_by_overlap_and_relation_follows(layout):
    size, spans = layout
    entries = [
        TensorEntry(f"t{i}", (f"t{i}",), (end - start,), "uint8", (1,), "s", start)
        for i, (start, end) in enumerate(spans)
    ]
    checkpoint = Checkpoint(
        path=Path("x"),
        format="test",
        entries=entries,
        storages={"s": Storage("s", Path("x"), "uint8", size, 0)},
    )
    (group,) = storage_groups(checkpoint, entries)
    by_view: dict[int, list[tuple[int, int]]] = {}
    for name in group.names:
        by_view.setdefault(name.view, []).append((name.start, name.end))
    # names in different views never overlap; a view is one connected run of intervals
    views = sorted(by_view.values(), key=min)
    for left, right in itertools.pairwise(views):
        assert max(end for _, end in left) <= min(start for start, _ in right)
    for members in views:
        members.sort()
        reach = members[0][1]
        for start, end in members[1:]:
            assert start < reach
            reach = max(reach, end)
    distinct = {(n.start, n.end) for n in group.names}
    if len(views) == 1:
        assert group.relation == ("alias" if len(distinct) == 1 else "overlapping")
    else:
        assert group.relation in ("disjoint", "mixed")
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert group.saved_bytes == sum(end - start for start, end in spans) - len(covered)
