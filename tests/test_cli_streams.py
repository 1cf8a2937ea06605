"""One stream, one thing: when standard output carries the checkpoint, ``init``'s report,
notes and footer go to standard error, for a file and for a live module alike."""

from __future__ import annotations

import io

import pytest
import torch

LINEAR = ["--model", "torch.nn:Linear", "--model-arg", "in_features=2", "--model-arg", "out_features=1"]


@pytest.mark.parametrize("live", [False, True], ids=["file", "live module"])
def test_the_report_moves_to_stderr_when_stdout_carries_the_checkpoint(cli, samples, live):
    source = LINEAR if live else [samples / "mlp.pt"]
    result = cli("init", *source, "-m", "*bias", "-s", "zeros", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    written = torch.load(io.BytesIO(result.output_bytes), weights_only=True)
    biases = [name for name in written if name.endswith("bias")]
    assert biases and all(torch.equal(written[name], torch.zeros_like(written[name])) for name in biases)
    report = result.stderr.splitlines()
    assert report[0].startswith("name\tshape\tdtype\taction")
    assert report[-1].startswith("changed ") and report[-1].endswith("→ <stdout> (torch-zip)")


def test_with_a_file_destination_the_report_stays_on_stdout(cli, samples, tmp_path):
    result = cli("init", samples / "mlp.pt", "-m", "*bias", "-s", "zeros", "-o", tmp_path / "out.pt")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("name\tshape\tdtype\taction")
    assert result.stderr.strip().endswith("(torch-zip)")


def test_a_drawn_seed_is_noted_so_the_run_can_be_repeated(cli, samples, tmp_path):
    result = cli("init", samples / "mlp.pt", "-s", "normal", "-o", tmp_path / "out.pt", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("seed ") and "(pass --seed " in result.stderr
