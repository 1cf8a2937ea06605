"""Tables fit 80 and 160 columns: every tensor name appears whole (folded at dots where it
must be), no column is empty, no line is too wide and nothing is cut with an ellipsis."""

from __future__ import annotations

import re

import pytest
import torch
from tables import Drawn, assert_fits, assert_no_empty_column, read_table
from torch import nn

from paramctl import read_checkpoint

WIDTHS = [80, 160]
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor")


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """A training checkpoint of a small transformer: long dotted names, an optimizer, a
    batch-norm counter, a tied head."""
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {
            "transformer": nn.Transformer(
                d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32
            ),
            "norm": nn.BatchNorm1d(16),
            "embed": nn.Embedding(10, 16),
            "head": nn.Linear(16, 10, bias=False),
        }
    )
    model["head"].weight = model["embed"].weight
    optimizer = torch.optim.Adam(model.parameters())
    model["head"](model["embed"](torch.tensor([1, 2]))).sum().backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("width") / "train.ckpt"
    torch.save(
        {"model_state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}, path
    )
    return path


def table(cli, width, *args):
    result = cli(*args, "-f", "table", env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.stderr
    assert_fits(result.stdout, width)
    return result.stdout


def names_of(path, *flags):
    from paramctl.checkpoint import model_view

    return [entry.name for entry in model_view(read_checkpoint(path), all_tensors="--all" in flags).entries]


def assert_names_whole(drawn: Drawn, names: list[str], index: int = 0) -> None:
    """Each name is on the lines of its row, in order, whole; where it folds, it folds
    after a dot (or inside a part longer than the column)."""
    cells = iter(cell.strip() for cell in drawn.column(index) if cell.strip())
    width = len(drawn.column(index)[0]) - 2
    for name in names:
        pieces = [next(cells)]
        while "".join(pieces) != name:
            assert name.startswith("".join(pieces)), (name, pieces)
            assert pieces[-1].endswith(".") or len(pieces[-1]) == width, pieces
            pieces.append(next(cells))
    assert next(cells, None) is None


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("flags", [(), ("--all",), ("--stats",), ("--all", "--stats")])
def test_list_shows_every_name_whole(cli, training, width, flags):
    text = table(cli, width, "list", training, *flags)
    drawn = read_table(text)
    assert drawn.headers[0] == "name"
    assert_names_whole(drawn, names_of(training, *flags))
    assert_no_empty_column(drawn)
    if "--stats" in flags:
        assert {"mean", "std"} <= set(drawn.headers)


@pytest.mark.parametrize("width", WIDTHS)
def test_hidden_columns_are_named(cli, training, width):
    text = table(cli, width, "list", training, "--stats")
    shown = set(read_table(text).headers)
    every = {"name", "shape", "dtype", "numel", "bytes", "shared", "mean", "std", "min", "max"}
    every |= {"max|x|", "L2 norm", "zeros", "NaN", "Inf"}
    hidden = every - shown
    note = re.search(r"\((?:stats )?columns hidden: (.*?) — widen", " ".join(text.split()))
    if hidden:
        assert note is not None
        assert set(note.group(1).split(", ")) == hidden
    else:
        assert note is None


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tree_shows_every_module_and_tensor_whole(cli, training, width):
    text = table(cli, width, "list", training, "--tree")
    drawn = read_table(text)
    assert_no_empty_column(drawn)
    shown = [re.sub(r"^[│├└─ ]+", "", cell.strip()) for cell in drawn.column(0)]
    parts = {part for name in names_of(training) for part in name.split(".")}
    assert parts <= set(shown)
    assert shown[0] == "(all)"


@pytest.mark.parametrize("width", WIDTHS)
def test_shared_shows_every_name_whole(cli, training, width):
    text = table(cli, width, "shared", training)
    drawn = read_table(text)
    assert_no_empty_column(drawn)
    assert_names_whole(drawn, ["embed.weight", "head.weight"], drawn.headers.index("name"))


@pytest.mark.parametrize("width", WIDTHS)
def test_show_fits_and_names_its_tensor(cli, training, width):
    name = "transformer.decoder.layers.0.multihead_attn.in_proj_weight"
    result = cli("show", training, name, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.stderr
    assert_fits(result.stdout, width)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(name + "  [48, 16] float32")
    # The statistics flow over lines: every one of them is there, label and value.
    statistics = " ".join(lines[5:8])
    for label in ("numel 768", "mean", "std", "min", "max", "max|x|", "L2 norm", "zeros", "NaN 0", "Inf 0"):
        assert label in statistics


@pytest.mark.parametrize("width", WIDTHS)
def test_check_names_every_finding_whole(cli, tmp_path, width):
    names = [f"encoder.layers.{i}.self_attention.output_projection.weight" for i in range(3)]
    path = tmp_path / "nan.pt"
    torch.save({name: torch.tensor([[float("nan"), 1.0], [2.0, 3.0]]) for name in names}, path)
    result = cli("check", path, "-f", "table", env={"COLUMNS": str(width)})
    assert result.exit_code == 1
    assert_fits(result.stdout, width)
    for name in names:
        assert name in result.stdout.replace("\n", " ").split(": ")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_init_report_shows_every_name_whole(cli, training, tmp_path, width):
    args = ["init", training, "-m", "*.weight", "-x", "*norm*", "-s", "xavier_uniform", "--seed", "0"]
    text = table(cli, width, *args, "-o", tmp_path / "out.ckpt")
    drawn = read_table(text)
    assert_no_empty_column(drawn)
    changed = cli(*args, "--dry-run", "-f", "names").stdout.split()
    assert len(changed) > 5 and "same tensor" in drawn.headers  # the tied head changes with embed
    assert_names_whole(drawn, changed)


@pytest.mark.parametrize("width", [24, 40])
def test_a_narrow_terminal_gets_a_block_per_tensor(cli, training, width):
    text = table(cli, width, "list", training, "--stats")
    assert "┏" not in text
    blocks = [line for line in text.splitlines() if line and not line.startswith(" ")]
    # Each tensor's name on lines of its own (folded at dots), its values indented under it.
    assert "".join(names_of(training)) in "".join(blocks)
    values = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    assert any(line.startswith("mean ") for line in values)
    assert all(len(line) <= width - 2 for line in values)
