"""Array <-> bytes for every stored dtype; bfloat16 lives in memory as float32."""

from __future__ import annotations

import numpy as np

from inspector.format import spec


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
        bits = np.ascontiguousarray(arr, dtype="<f4").view("<u4")
        return (_round_bf16(bits) >> 16).astype("<u2").tobytes()
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
        bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
        return (_round_bf16(bits) & 0xFFFF0000).view("<f4").astype(np.float32)
    return values.astype(np.dtype(name) if name != "bool" else np.float32)


def _round_bf16(bits: np.ndarray) -> np.ndarray:
    """Round float32 bit patterns to the nearest bfloat16 (ties to even)."""
    bits = bits.astype(np.uint64)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded & 0xFFFFFFFF).astype(np.uint32)
