"""``init`` on a sharded checkpoint: only the shards holding selected tensors are rewritten,
as one atomic set that a kill at any moment leaves complete old or complete new."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paramctl import read_checkpoint
from paramctl.atomic import recover
from paramctl.values import ValueReader

TARGET = "transformer.h.1.mlp.c_fc.weight"
KILLER = Path(__file__).with_name("kill_writer.py")


def contents(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()
    }


def holder(directory: Path, name: str = TARGET) -> str:
    (index,) = directory.glob("*.index.json")
    return json.loads(index.read_text())["weight_map"][name]


def loaded(directory: Path) -> dict[str, torch.Tensor]:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(directory).state_dict()


def test_in_place_rewrites_only_the_shard_holding_the_tensor(hf_dir, cli):
    before = contents(hf_dir)
    inodes = {p.name: p.stat().st_ino for p in hf_dir.iterdir()}
    result = cli("init", hf_dir, "-m", TARGET, "-s", "zeros", "--in-place", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    shard = holder(hf_dir)
    assert report["files_written"] == [shard]
    assert report["bytes_written"] == (hf_dir / shard).stat().st_size
    after = contents(hf_dir)
    assert [name for name in before if before[name] != after[name]] == [shard]
    assert all(p.stat().st_ino == inodes[p.name] for p in hf_dir.iterdir() if p.name != shard)
    state = loaded(hf_dir)
    assert torch.equal(state[TARGET], torch.zeros_like(state[TARGET]))


def test_the_report_names_the_shards_and_the_bytes(hf_dir, cli):
    result = cli("init", hf_dir, "-m", TARGET, "-s", "ones", "--in-place")
    assert f"rewrote {holder(hf_dir)}: " in result.stderr + result.stdout


def test_a_new_directory_is_complete_and_loads(hf_dir, tmp_path, cli):
    out = tmp_path / "new"
    result = cli("init", hf_dir, "-m", "*.ln_f.*", "-s", "ones", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert contents(out).keys() == contents(hf_dir).keys()
    for path in out.iterdir():
        assert path.stat().st_nlink == 1  # copies, never links to the input
    changed = {holder(hf_dir, "transformer.ln_f.weight")}
    same = {name for name, digest in contents(out).items() if digest == contents(hf_dir)[name]}
    assert same == set(contents(hf_dir)) - changed
    state, original = loaded(out), loaded(hf_dir)
    assert torch.equal(state["transformer.ln_f.bias"], torch.ones(32))
    for name, tensor in original.items():
        if not name.startswith("transformer.ln_f."):
            assert torch.equal(state[name], tensor), name


def test_a_new_directory_must_not_hold_a_checkpoint_already(hf_dir, tmp_path, cli):
    out = tmp_path / "taken"
    out.mkdir()
    (out / holder(hf_dir)).write_bytes(b"x")
    result = cli("init", hf_dir, "-s", "zeros", "-o", out)
    assert result.exit_code == 2 and "already holds" in result.stderr


def test_selecting_across_shards_rewrites_each_of_them(hf_dir, cli):
    result = cli("init", hf_dir, "-m", "*.bias", "-s", "zeros", "--in-place", "--format", "json")
    report = json.loads(result.stdout)
    checkpoint = read_checkpoint(hf_dir)
    holders = {
        os.path.basename(checkpoint.storage_of(e).file)
        for e in checkpoint.entries
        if e.name.endswith(".bias")
    }
    assert sorted(report["files_written"]) == sorted(holders) and len(holders) > 1
    with ValueReader(checkpoint) as values:
        for entry in checkpoint.entries:
            if entry.name.endswith(".bias"):
                assert not values.array(entry).any()


def _run_killed(directory: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        KILLER,
        str(kill_at),
        "init",
        str(directory),
        "-m",
        "*.weight",
        "-s",
        "ones",
        "--in-place",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["safetensors"])
def test_a_write_killed_at_any_point_leaves_old_or_new_whole(written, tmp_path, fmt):
    import shutil

    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    shutil.copytree(written[fmt], old_dir)
    shutil.copytree(written[fmt], new_dir)
    clean = _run_killed(new_dir, 0)
    assert clean.returncode == 0, clean.stderr
    calls = int(clean.stderr.rsplit("calls=", 1)[1])
    old, new = contents(old_dir), contents(new_dir)
    outcomes = set()
    # Points spread over the write, and every one of the last calls (the commit's renames).
    points = sorted({*range(1, calls + 1, max(1, calls // 5)), *range(max(1, calls - 4), calls + 1)})
    for kill_at in points:
        victim = tmp_path / f"killed-{kill_at}"
        shutil.copytree(old_dir, victim)
        killed = _run_killed(victim, kill_at)
        assert killed.returncode == -9, killed.stderr
        recover(victim)
        for stale in victim.glob(".*.paramctl-tmp"):
            stale.unlink()  # what the next write removes (its writer is gone)
        state = contents(victim)
        assert state in (old, new), kill_at
        outcomes.add("new" if state == new else "old")
        read_checkpoint(victim)
    assert outcomes == {"old", "new"}
