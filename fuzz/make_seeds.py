"""Seeds for fuzz/atheris_readers.py: real files of each kind, each behind the byte that
picks its reader (0 safetensors, 1 pickle, 2 zip, 3 GGUF, 4 .npy, 5 .npz, 6 MXNet),
written to ``fuzz/seeds``.

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
    for name, target, data in _other_formats(tensors):
        (SEEDS / name).write_bytes(bytes([target]) + data)


def _other_formats(tensors: dict[str, torch.Tensor]) -> list[tuple[str, int, bytes]]:
    import gguf
    import numpy as np

    from paramctl.formats.mxnet.write import write_arrays

    found = []
    path = SEEDS / "model.gguf.tmp"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("w", tensors["w"].numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    found.append(("gguf", 3, path.read_bytes()))
    path.unlink()
    npy, npz = io.BytesIO(), io.BytesIO()
    np.save(npy, tensors["w"].numpy())
    np.savez(npz, **{name: value.numpy() for name, value in tensors.items()})
    found += [("npy", 4, npy.getvalue()), ("npz", 5, npz.getvalue())]
    params = io.BytesIO()
    write_arrays(
        params, [(name, tuple(v.shape), str(v.dtype)[6:], v.numpy().tobytes()) for name, v in tensors.items()]
    )
    found.append(("mxnet", 6, params.getvalue()))
    return found


if __name__ == "__main__":
    main()
