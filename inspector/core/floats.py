"""Rounding to 16-bit float storage, NaN-safe (the container's raw layers and the fp16/bf16
methods share it)."""

from __future__ import annotations

import numpy as np


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """The bfloat16 nearest each value (ties to even), as little-endian 16-bit patterns.

    Values are rounded to float32 first, as torch does. A NaN stays a quiet NaN with its sign
    and high payload: plain rounding would carry a low-bits-only payload into +inf, or wrap an
    all-ones NaN to zero.
    """
    f32 = np.ascontiguousarray(values, dtype="<f4")
    bits = f32.view("<u4")
    # Adding just under half of the dropped 16 bits, plus the kept lowest bit, rounds to
    # nearest-even; only NaNs can carry out of 32 bits, and they are redone below.
    out = ((bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16).astype("<u2")
    nan = np.isnan(f32)
    if nan.any():
        out[nan] = ((bits[nan] >> 16) | np.uint32(0x0040)).astype("<u2")
    return out


def bfloat16_values(bits: np.ndarray) -> np.ndarray:
    """float32 values of little-endian bfloat16 patterns (exact: the upper half of float32)."""
    return (np.asarray(bits, dtype="<u2").astype("<u4") << 16).view("<f4").astype(np.float32)
