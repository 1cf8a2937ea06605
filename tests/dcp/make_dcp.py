"""Write a torch.distributed.checkpoint directory with torch's own writer.

Under ``torchrun --nproc-per-node 2`` (gloo, CPU) the parameters are DTensors sharded
``Shard(0)`` across the two ranks; run plainly, one process saves plain tensors. Both add
non-tensor entries (a step count, bytes).

``python make_dcp.py OUT``  or  ``torchrun --nproc-per-node 2 make_dcp.py OUT``
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp


def tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "layer.weight": torch.randn(8, 6, generator=generator),
        "layer.bias": torch.randn(8, generator=generator),
        "embed.weight": torch.randn(10, 4, generator=generator).to(torch.bfloat16),
        "wide.weight": torch.randn(3, 16, generator=generator),
    }


def main(out: str) -> None:
    if "RANK" not in os.environ:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dcp.save({"model": tensors(), "step": 3}, checkpoint_id=out)
        return
    from torch.distributed.tensor import Shard, distribute_tensor, init_device_mesh

    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (2,))
    model = {name: distribute_tensor(value, mesh, [Shard(0)]) for name, value in tensors().items()}
    model["scale"] = torch.tensor(2.0)  # replicated: saved once
    dcp.save({"model": model, "step": 7, "note": b"hello"}, checkpoint_id=out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
