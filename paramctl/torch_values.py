"""Values of tensors torch loaded, as numpy numbers: the one way from torch's fallback
reader (sparse, quantized and subclass tensors) and from live tensors into numpy.

>>> import torch
>>> from_torch(torch.tensor([1.0, 2.0], dtype=torch.bfloat16)).numbers
array([1., 2.], dtype=float32)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paramctl.dtypes import FLOAT8

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    Array = NDArray[Any]


@dataclass(frozen=True)
class TorchValues:
    """What a torch tensor's values are as numpy numbers (see :func:`from_torch`)."""

    numbers: Array
    numel: int
    implicit_zeros: int = 0
    note: str | None = None
    indices: Array | None = None  # a sparse tensor's coordinates


def torch_dtype(name: str) -> torch.dtype:
    """torch's dtype of that name (``float32``, ``bfloat16``)."""
    import torch

    return getattr(torch, name)  # type: ignore[no-any-return]


def from_torch(tensor: torch.Tensor, *, dense: bool = False) -> TorchValues:
    """A torch tensor's values as numpy numbers, shared with the tensor where possible.

    A quantized tensor is dequantized; a sparse one gives the values it stores (its other
    elements are implicit zeros), or with ``dense`` all of them.

    >>> import torch
    >>> found = from_torch(torch.eye(3).to_sparse())
    >>> found.numbers, found.implicit_zeros, found.note
    (array([1., 1., 1.], dtype=float32), 6, 'sparse (sparse_coo): 3 stored values, 6 implicit zeros')
    """
    import torch

    from paramctl.values import decode, stored_dtype

    tensor = tensor.detach()
    numel = tensor.numel()
    if tensor.layout != torch.strided:
        layout = str(tensor.layout).removeprefix("torch.")
        if dense:
            return TorchValues(from_torch(tensor.to_dense()).numbers, numel, note=f"sparse ({layout})")
        coo = tensor if tensor.layout == torch.sparse_coo else tensor.to_sparse(layout=torch.sparse_coo)
        coo = coo.coalesce()  # duplicate coordinates add up: one value each
        stored = from_torch(coo.values()).numbers
        zeros = numel - stored.size
        note = f"sparse ({layout}): {stored.size:,} stored values, {zeros:,} implicit zeros"
        return TorchValues(stored, numel, zeros, note, coo.indices().numpy())
    if tensor.is_quantized:
        name = str(tensor.dtype).removeprefix("torch.")
        return TorchValues(tensor.dequantize().numpy(), numel, note=f"dequantized {name} values")
    name = str(tensor.dtype).removeprefix("torch.")
    if name in FLOAT8 or name == "bfloat16":
        bits = tensor.view(torch.uint8 if name in FLOAT8 else torch.int16).numpy()
        return TorchValues(decode(bits.view(stored_dtype(name)), name), numel)
    return TorchValues(tensor.numpy(), numel)
