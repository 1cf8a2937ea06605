"""Shared pieces of the benchmarks: the test files, timing of commands, and the report.

Every benchmark runs paramctl and the plain-torch way of doing the same job as separate
processes, alternating, in the same run, and reports medians, their ratio and peak memory
(the child's maximum resident set size, from ``wait4``).
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PYTHON = sys.executable
PARAMCTL = [PYTHON, "-m", "paramctl"]
PACKAGE = Path(__file__).resolve().parent.parent / "paramctl"


def compile_package() -> None:
    """paramctl as an installed copy runs: with its modules' bytecode written, as pip writes
    it for the libraries it is measured against. A source tree run with
    ``PYTHONDONTWRITEBYTECODE`` (or read-only) compiles every module it imports on every run:
    about 90 ms of each command that no installed copy pays."""
    compileall.compile_dir(PACKAGE, quiet=1)


compile_package()


def big_files() -> dict[str, Path]:
    """The 1 GiB ``.pt`` and ``.safetensors`` (256 float32 tensors of 1024x1024, half of them
    ``*.weight``) and a ``.pt`` of 10,000 small tensors; made once, then reused."""
    DATA.mkdir(exist_ok=True)
    files = {
        "1 GiB .pt": DATA / "big.pt",
        "1 GiB .safetensors": DATA / "big.safetensors",
        "10,000 tensors .pt": DATA / "many.pt",
    }
    if not all(path.exists() for path in files.values()):
        subprocess.run([PYTHON, "-c", _MAKE_FILES, str(DATA)], check=True)
    return files


_MAKE_FILES = """
import sys, torch
from pathlib import Path
from safetensors.torch import save_file
out = Path(sys.argv[1])
g = torch.Generator().manual_seed(0)
big = {}
for i in range(128):
    big[f"layers.{i}.weight"] = torch.randn(1024, 1024, generator=g)
    big[f"layers.{i}.proj"] = torch.randn(1024, 1024, generator=g)
torch.save(big, out / "big.pt")
save_file(big, out / "big.safetensors")
del big
many = {f"blocks.{i // 4}.p{i % 4}": torch.randn(16, generator=g) for i in range(10_000)}
torch.save(many, out / "many.pt")
"""


@dataclass
class Measurement:
    seconds: float
    peak_mib: float


def run_once(command: Sequence[str]) -> Measurement:
    """Run ``command`` with output discarded; wall time and the child's peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}")
    return Measurement(elapsed, usage.ru_maxrss / 1024)


@dataclass
class Comparison:
    label: str
    ours: list[Measurement]
    baseline: list[Measurement]

    @property
    def ours_median(self) -> float:
        return statistics.median(m.seconds for m in self.ours)

    @property
    def baseline_median(self) -> float:
        return statistics.median(m.seconds for m in self.baseline)

    @property
    def ratio(self) -> float:
        """paramctl's time over the baseline's (below 1 is faster)."""
        return self.ours_median / self.baseline_median

    def row(self) -> str:
        ours_peak = max(m.peak_mib for m in self.ours)
        base_peak = max(m.peak_mib for m in self.baseline)
        speedup = self.baseline_median / self.ours_median
        return (
            f"| {self.label} | {self.ours_median:.3f} s | {self.baseline_median:.3f} s "
            f"| {self.ratio:.3f} ({speedup:.1f}x) | {ours_peak:.0f} MiB | {base_peak:.0f} MiB |"
        )


HEADER = (
    "| case | paramctl (median) | plain torch (median) | ratio (speed-up) "
    "| paramctl peak RSS | torch peak RSS |\n|---|---|---|---|---|---|"
)


def compare(label: str, ours: Sequence[str], baseline: Sequence[str], repeat: int = 5) -> Comparison:
    """Alternate the two commands ``repeat`` times after one warm-up run of each."""
    run_once(ours), run_once(baseline)
    result = Comparison(label, [], [])
    for _ in range(repeat):
        result.ours.append(run_once(ours))
        result.baseline.append(run_once(baseline))
    return result
