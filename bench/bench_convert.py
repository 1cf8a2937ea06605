"""``paramctl convert`` of a 1 GiB ``.pt`` to ``.safetensors`` beside the plain way:
``torch.load(path, mmap=True, weights_only=True)`` then ``safetensors.torch.save_file``,
then ``os.fsync`` of the output (paramctl fsyncs before its atomic rename: both sides make
the file durable).

Run: ``python bench/bench_convert.py [--repeat N]``. The input is the 1 GiB ``.pt`` of
``common.big_files`` (256 float32 tensors of 1024x1024); the outputs go to a scratch
directory beside it and are removed. Targets: a wall-time ratio of 0.5 or less, and
paramctl's peak memory under 128 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import DATA, HEADER, PARAMCTL, PYTHON, big_files, compare

PLAIN = (
    "import os, sys, torch\n"
    "from safetensors.torch import save_file\n"
    "state = torch.load(sys.argv[1], mmap=True, weights_only=True)\n"
    "save_file(state, sys.argv[2])\n"
    "fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd); os.close(fd)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    source = big_files()["1 GiB .pt"]
    scratch = Path(tempfile.mkdtemp(prefix="convert-bench-", dir=DATA))
    try:
        ours = [*PARAMCTL, "convert", str(source), str(scratch / "ours.safetensors"), "--format", "tsv"]
        plain = [PYTHON, "-c", PLAIN, str(source), str(scratch / "plain.safetensors")]
        print(HEADER)
        result = compare("1 GiB .pt → .safetensors", ours, plain, repeat=args.repeat)
        print(result.row(), flush=True)
        ours_peak = max(m.peak_mib for m in result.ours)
        ratio_met = "met" if result.ratio <= 0.5 else "NOT met"
        peak_met = "met" if ours_peak < 128 else "NOT met"
        print(
            f"\nratio {result.ratio:.3f} (target 0.5 or less): {ratio_met}; "
            f"paramctl peak {ours_peak:.0f} MiB (target under 128 MiB): {peak_met}"
        )
        same = (scratch / "ours.safetensors").stat().st_size, (scratch / "plain.safetensors").stat().st_size
        print(f"output sizes: paramctl {same[0]:,} bytes, plain {same[1]:,} bytes")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n(measured in {time.perf_counter() - start:.0f} s)")
