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


def check_tensor(tensor: torch.Tensor) -> None:
    """Refuse a tensor whose layout would make torch read or write outside its memory.

    A strided view must not step backwards (negative strides) or past its storage; a sparse
    tensor's indices must lie within its shape. Checked before anything densifies it.

    Raises
    ------
    ValueError
        The invariant broken, in plain words.
    """
    if tensor.layout == torch.strided:
        if any(s < 0 for s in tensor.stride()):
            raise ValueError(f"negative strides {list(tensor.stride())}")
        reach = tensor.storage_offset() + sum(
            (n - 1) * s for n, s in zip(tensor.shape, tensor.stride(), strict=True)
        )
        nbytes = tensor.untyped_storage().nbytes()
        if tensor.numel() and (reach + 1) * tensor.element_size() > nbytes:
            raise ValueError("its shape and strides reach past its storage")
        return
    if tensor.layout == torch.sparse_coo:
        indices, values = tensor._indices(), tensor._values()
        check_tensor(indices)
        check_tensor(values)
        sizes = tensor.shape[: indices.shape[0]]
        _check_index_range(indices, tuple(sizes))
        return
    if tensor.layout in (torch.sparse_csr, torch.sparse_csc) and tensor.ndim == 2:
        csr = tensor.layout == torch.sparse_csr
        compressed = tensor.crow_indices() if csr else tensor.ccol_indices()
        plain = tensor.col_indices() if csr else tensor.row_indices()
        for part in (compressed, plain, tensor.values()):
            check_tensor(part)
        steps = compressed.diff()
        nnz = tensor.values().shape[0]
        if compressed[0] != 0 or compressed[-1] != nnz or bool((steps < 0).any()):
            raise ValueError("its compressed sparse indices are not 0..nnz ascending")
        _check_index_range(plain.reshape(1, -1), (tensor.shape[1] if csr else tensor.shape[0],))
        return
    raise ValueError(f"tensors of layout {tensor.layout} are not supported")


def _check_index_range(indices: torch.Tensor, sizes: tuple[int, ...]) -> None:
    for dim, size in enumerate(sizes):
        row = indices[dim]
        if row.numel() and (int(row.min()) < 0 or int(row.max()) >= size):
            raise ValueError(f"sparse indices fall outside dimension {dim} of size {size}")


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
