"""Real checkpoints against paramctl's limits (README: Limits): ``paramctl list`` of files of
100,000 tensors beside the plain way of listing them, and where each stands to the limits.

Run: ``python bench/bench_limits.py [--repeat N]``. Prints a markdown table (medians, their
ratio, each side's peak RSS), then each file's pickle size, memo entries and tensors beside
the limits that bound them.
"""

from __future__ import annotations

import argparse
import subprocess
import zipfile

from common import DATA, HEADER, PARAMCTL, PYTHON, compare

_MAKE = """
import sys, collections, torch
from pathlib import Path
from safetensors.torch import save_file
out = Path(sys.argv[1])
state = collections.OrderedDict((f"layers.{i}.weight", torch.zeros(2)) for i in range(100_000))
torch.save(state, out / "100k.pt")
torch.save(state, out / "100k-legacy.pt", _use_new_zipfile_serialization=False)
save_file(dict(state), out / "100k.safetensors")
"""
TORCH_LIST = (
    "import sys, torch\n"
    "sd = torch.load(sys.argv[1], weights_only=True)\n"
    "for k, v in sd.items(): print(k, tuple(v.shape), v.dtype)\n"
)
SAFETENSORS_LIST = (
    "import sys\n"
    "from safetensors import safe_open\n"
    "with safe_open(sys.argv[1], 'pt') as f:\n"
    "    for k in f.keys(): print(k, f.get_slice(k).get_shape(), f.get_slice(k).get_dtype())\n"
)
_STANDING = """
import sys, zipfile
from pathlib import Path
from paramctl import read_checkpoint
from paramctl.formats._limits import LIMITS
from paramctl.formats._pickle_scan import memo_index_bits
path = Path(sys.argv[1])
checkpoint = read_checkpoint(path)
pickle = ""
if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
        size = archive.getinfo(archive.namelist()[0].split("/")[0] + "/data.pkl").file_size
    pickle = f"data.pkl {size:,} B of {LIMITS.pickle_bytes:,}; memo below {1 << memo_index_bits(size):,}; "
print(f"{path.name}: {pickle}{len(checkpoint.entries):,} tensors of {LIMITS.tensors:,}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    files = {
        "100,000 tensors .pt": DATA / "100k.pt",
        "100,000 tensors legacy .pt": DATA / "100k-legacy.pt",
        "100,000 tensors .safetensors": DATA / "100k.safetensors",
    }
    if not all(path.exists() for path in files.values()):
        subprocess.run([PYTHON, "-c", _MAKE, str(DATA)], check=True)
    print(HEADER)
    for label, path in files.items():
        baseline = SAFETENSORS_LIST if path.suffix == ".safetensors" else TORCH_LIST
        result = compare(
            label,
            [*PARAMCTL, "list", str(path), "--format", "tsv"],
            [PYTHON, "-c", baseline, str(path)],
            repeat=args.repeat,
        )
        print(result.row(), flush=True)
    print()
    for path in files.values():
        subprocess.run([PYTHON, "-c", _STANDING, str(path)], check=True)
    assert zipfile.is_zipfile(files["100,000 tensors .pt"])


if __name__ == "__main__":
    main()
