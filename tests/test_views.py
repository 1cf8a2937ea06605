"""list --tree as a real view, list --plot, and the progress bar's rules."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
import torch

from paramctl.render.engine import Environment
from paramctl.render.progress import progress


@pytest.fixture
def layered(tmp_path):
    """Three blocks whose scale grows with depth (the third 10x), a tied head, an int counter."""
    torch.manual_seed(0)
    tensors = {}
    for block, scale in enumerate((0.01, 0.02, 0.2)):
        tensors[f"blocks.{block}.weight"] = torch.randn(8, 8) * scale
        tensors[f"blocks.{block}.bias"] = torch.zeros(8)
    embed = torch.randn(4, 8)
    tensors |= {"embed.weight": embed, "head.weight": embed, "steps": torch.tensor(7)}
    path = tmp_path / "layered.pt"
    torch.save(tensors, path)
    return path, tensors


def tree_rows(cli, path, *args):
    result = cli("list", path, "--tree", *args, "-f", "json")
    assert result.exit_code == 0, result.stderr

    def walk(node):
        yield node
        for child in node.get("children", []):
            yield from walk(child)

    return {node["module"]: node for node in walk(json.loads(result.stdout))}


def test_the_tree_counts_tied_bytes_once_and_marks_ties(cli, layered):
    path, _ = layered
    rows = tree_rows(cli, path)
    assert rows[""]["bytes"] - rows[""]["stored_bytes"] == 4 * 8 * 4  # the head is the embedding
    assert rows["head.weight"]["shared_with"] == ["embed.weight"]
    text = cli("list", path, "--tree", "-f", "table", env={"COLUMNS": "100"}).stdout
    assert "↔ embed.weight" in text and "↔ head.weight" in text
    assert "by dtype: float32 8 (" in text and "int64 1 (8 B)" in text
    assert "│  └─ weight" in text or "└─ weight" in text
    assert re.search(r"└─ steps\s+│ \[\]\s+│ int64", text)
    assert "1 tensor " in text and "1 tensors" not in text


def test_the_tree_pools_the_statistics_of_each_module(cli, layered):
    path, tensors = layered
    rows = tree_rows(cli, path, "--stats")
    values = torch.cat(
        [tensors[f"blocks.{i}.{kind}"].flatten() for i in range(3) for kind in ("weight", "bias")]
    )
    blocks = rows["blocks"]
    assert blocks["mean"] == pytest.approx(values.mean().item(), abs=1e-7)
    assert blocks["std"] == pytest.approx(values.std().item(), rel=1e-5)
    assert blocks["norm"] == pytest.approx(torch.linalg.vector_norm(values).item(), rel=1e-5)
    assert blocks["zeros"] == pytest.approx((values == 0).float().mean().item())
    assert blocks["absmax"] == pytest.approx(values.abs().max().item())


def test_the_tree_honours_sort_and_depth(cli, layered):
    path, _ = layered
    sized = list(tree_rows(cli, path, "--sort", "size"))
    assert sized[1] == "blocks"  # the largest module first
    shallow = cli("list", path, "--depth", "1", "-f", "names").stdout.splitlines()
    assert shallow == ["", "blocks", "embed", "head", "steps"]
    whole = cli("list", path, "--tree", "-f", "names").stdout.splitlines()
    assert "blocks.2.weight" in whole


def test_plot_draws_a_bar_per_tensor_in_file_order(cli, layered):
    path, _ = layered
    text = cli(
        "list", path, "--plot", "std", "-m", "blocks.*.weight", "-f", "table", env={"COLUMNS": "80"}
    ).stdout
    lines = [line for line in text.splitlines() if line.startswith("blocks.")]
    assert [line.split()[0] for line in lines] == ["blocks.0.weight", "blocks.1.weight", "blocks.2.weight"]
    bars = [len(line.split()[-1]) for line in lines]
    assert bars[2] > 5 * bars[0]  # the layer at the wrong scale stands out
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "std: linear scale from 0; the longest bar is" in text


def test_plot_on_a_log_scale_and_per_module(cli, layered):
    path, _ = layered
    linear = cli("list", path, "--plot", "norm", "--tree", "-f", "table", env={"COLUMNS": "80"}).stdout
    logged = cli(
        "list", path, "--plot", "norm", "--tree", "--log", "-f", "table", env={"COLUMNS": "80"}
    ).stdout
    assert "norm per module" in linear and "log scale" in logged
    assert re.search(r"^├─ blocks\s+\S+ █+", linear, re.M)

    def bar(text, label):
        return len(re.search(rf"^{re.escape(label)}\s+\S+ (\S*)$", text, re.M).group(1))

    assert bar(logged, "│  ├─ 1") > 3 * bar(linear, "│  ├─ 1")  # small values get room on a log scale


def test_plot_in_a_pipe_gives_the_statistics_and_log_needs_plot(cli, layered):
    path, _ = layered
    header = cli("list", path, "--plot", "mean").stdout.splitlines()[0].split("\t")
    assert header[:2] == ["name", "shape"] and "mean" in header
    refused = cli("list", path, "--log")
    assert refused.exit_code == 2 and "add --plot" in refused.stderr


def test_a_mean_below_zero_keeps_its_sign_beside_its_bar(cli, tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"up": torch.full((4,), 0.5), "down": torch.full((4,), -1.0)}, path)
    text = cli("list", path, "--plot", "mean", "-f", "table", env={"COLUMNS": "60"}).stdout
    assert re.search(r"^down\s+-1 █+$", text, re.M) and "red bars are negative" in " ".join(text.split())


# -- progress ----------------------------------------------------------------------------------


def terminal() -> Environment:
    return Environment(io.StringIO(), io.StringIO(), stdout_isatty=True, stderr_isatty=True)


def test_no_bar_in_a_pipe_or_for_short_work():
    pipe = Environment(io.StringIO(), io.StringIO(), False, False)
    with progress(pipe, 1 << 40, "x") as bar:
        assert bar is None
    with progress(terminal(), 1 << 10, "x") as bar:
        assert bar is None


def test_work_that_ends_before_the_delay_prints_nothing():
    env = terminal()
    with progress(env, 1 << 30, "statistics", delay=5) as bar:
        assert bar is not None
        bar(1 << 30)
    assert env.stderr.getvalue() == "" and env.stdout.getvalue() == ""


def test_long_work_shows_bytes_done_of_the_total_on_stderr_only():
    env = terminal()
    with progress(env, 64 << 20, "hashing", delay=0) as bar:
        assert bar is not None
        time.sleep(0.2)
        bar(32 << 20)
        bar.describe("hashing more")
        time.sleep(0.2)
    shown = env.stderr.getvalue()
    assert "hashing more" in shown and "/64.0 MiB" in shown
    assert env.stdout.getvalue() == ""
