"""Seeds for fuzz/atheris_readers.py: real files of each kind, each behind the byte that
picks its reader (0 safetensors, 1 pickle, 2 zip), written to ``fuzz/seeds``.

    python fuzz/make_seeds.py
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch
from safetensors.torch import save

SEEDS = Path(__file__).resolve().parent / "seeds"


def main() -> None:
    SEEDS.mkdir(exist_ok=True)
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}
    (SEEDS / "safetensors").write_bytes(b"\x00" + save(tensors))
    for protocol in range(6):
        data = pickle.dumps({"epoch": 3, "lr": [0.1, 0.01], "name": "x", "flags": {1, 2}}, protocol=protocol)
        (SEEDS / f"pickle-{protocol}").write_bytes(b"\x01" + data)
    buffer = io.BytesIO()
    torch.save({"model": tensors, "view": tensors["w"][1:], "epoch": 3}, buffer)
    (SEEDS / "torch-zip").write_bytes(b"\x02" + buffer.getvalue())
    buffer = io.BytesIO()
    torch.save(tensors, buffer, _use_new_zipfile_serialization=False)
    (SEEDS / "torch-legacy").write_bytes(b"\x02" + buffer.getvalue())


if __name__ == "__main__":
    main()
