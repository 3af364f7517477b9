"""Array <-> bytes for every stored dtype; bfloat16 lives in memory as float32."""

from __future__ import annotations

import numpy as np

from inspector.core.floats import bfloat16_bits
from inspector.format import spec

__all__ = ["bfloat16_bits", "cast", "dtype_name", "from_bytes", "numpy_dtype", "to_bytes"]


def numpy_dtype(name: str) -> np.dtype:
    """The little-endian numpy dtype holding ``name`` in memory (bfloat16 -> float32)."""
    return np.dtype("<f4") if name == "bfloat16" else np.dtype(name).newbyteorder("<")


def dtype_name(arr: np.ndarray, original: str | None = None) -> str:
    """The stored dtype name of ``arr`` (``original`` wins, e.g. ``"bfloat16"``)."""
    name = original or arr.dtype.name
    if name not in spec.DTYPES:
        raise ValueError(f"dtype {name} cannot be stored")
    return name


def to_bytes(arr: np.ndarray, name: str) -> bytes:
    """Raw little-endian bytes of ``arr`` stored as ``name``."""
    if name == "bfloat16":
        return bfloat16_bits(arr).tobytes()
    return np.ascontiguousarray(arr, dtype=numpy_dtype(name)).tobytes()


def from_bytes(buf: bytes | memoryview, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The array stored as ``name`` in ``buf``."""
    if name == "bfloat16":
        bits = np.frombuffer(buf, dtype="<u2").astype("<u4") << 16
        return bits.view("<f4").astype(np.float32).reshape(shape)
    return np.frombuffer(buf, dtype=numpy_dtype(name)).astype(np.dtype(name)).reshape(shape)


def cast(values: np.ndarray, name: str) -> np.ndarray:
    """Decoded float32 ``values`` as the in-memory dtype of ``name`` (rounded like storage)."""
    if name == "bfloat16":
        return (bfloat16_bits(values).astype("<u4") << 16).view("<f4").astype(np.float32)
    return values.astype(np.dtype(name) if name != "bool" else np.float32)
