"""Conversions between torch tensors and numpy arrays, keeping track of the original dtype.

Imported only by the io modules that already need torch, so importing it costs nothing extra.
"""

from __future__ import annotations

import numpy as np
import torch

from inspector.errors import InputError


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``, matching numpy's names where both exist."""
    return str(dtype).removeprefix("torch.")


def tensor_to_numpy(tensor: torch.Tensor) -> tuple[np.ndarray, str]:
    """Convert a tensor to a numpy array numpy can hold, and name its original dtype.

    bfloat16 and float8 tensors are widened to float32 (exact), complex32 to complex64.
    """
    name = dtype_name(tensor.dtype)
    if tensor.is_quantized:
        raise ValueError(f"quantized tensors ({name}) are not supported")
    if tensor.layout != torch.strided:
        tensor = tensor.to_dense()
    if tensor.dtype == torch.complex32:
        tensor = tensor.to(torch.complex64)
    elif tensor.dtype.is_floating_point and not hasattr(np, name):
        tensor = tensor.to(torch.float32)
    # force=True detaches and resolves conjugate/negative views; it copies only when it must.
    return tensor.numpy(force=True), name


def numpy_to_tensor(array: np.ndarray, dtype: str | None = None) -> torch.Tensor:
    """Convert an array to a contiguous CPU tensor, cast to the original ``dtype`` if given.

    Raises
    ------
    InputError
        If ``dtype`` is not a torch dtype name, or torch cannot hold the array's dtype.
    """
    # ascontiguousarray turns a 0-d array into shape (1,); keep scalars (num_batches_tracked) 0-d
    array = np.ascontiguousarray(array).reshape(np.shape(array))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.writeable:
        # torch.from_numpy warns on read-only memory (e.g. a memory-mapped source file).
        array = array.copy()
    try:
        tensor = torch.from_numpy(array)
    except TypeError as exc:
        raise InputError(f"torch cannot store dtype {array.dtype}") from exc
    if dtype is None:
        return tensor
    target = getattr(torch, dtype, None)
    if not isinstance(target, torch.dtype):
        raise InputError(f"unknown dtype {dtype!r}")
    return tensor if tensor.dtype == target else tensor.to(target)
