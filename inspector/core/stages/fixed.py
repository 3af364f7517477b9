"""Entropy stage ``fixed``: every signed level in one fixed bit width.

The simplest coder, so a method that makes integer levels works before any adaptive coder:
int8/int4 files are this, and it is the floor "auto" must beat.

Layout: one byte ``width`` (0..32), then ``count`` zig-zag codes (``0, -1, 1, -2, ...`` ->
``0, 1, 2, 3, ...``) of ``width`` bits each, MSB-first as :mod:`inspector.core.bitpack`, the
last byte zero-padded. ``width`` is the fewest bits that hold the largest code (0 when every
symbol is 0: the stream is then the width byte alone). A decoder refuses a wrong length,
non-zero padding, or a width that is not the smallest (each stream has one spelling).
"""

from __future__ import annotations

from typing import ClassVar

import numba
import numpy as np

from inspector.core.bitpack import (
    _unpack_fixed_ref,
    as_uint8,
    fixed_nbytes,
    pack_fixed,
    unpack_fixed,
)
from inspector.core.stages.registry import register_entropy

__all__ = ["Fixed", "pack_unsigned", "unpack_unsigned", "unsigned_nbytes", "zigzag",
           "zigzag_reference"]


def zigzag(symbols: np.ndarray) -> np.ndarray:
    """Signed int32-range integers as uint32 zig-zag codes (ValueError outside int32)."""
    s = np.asarray(symbols).reshape(-1)
    if s.dtype != np.int32:
        if s.size and (int(s.min()) < -(1 << 31) or int(s.max()) >= 1 << 31):
            raise ValueError("symbols must fit in int32")
        s = s.astype(np.int32)
    out = np.empty(s.size, dtype=np.uint32)
    _zigzag_kernel(np.ascontiguousarray(s), out)
    return out


def zigzag_reference(symbols: np.ndarray) -> np.ndarray:
    s = np.asarray(symbols).astype(np.int64).reshape(-1)
    return ((s << 1) ^ (s >> 63)).astype(np.uint32)


@numba.njit(cache=True, nogil=True)
def _zigzag_kernel(s, out):
    for i in range(s.size):
        v = np.int64(s[i])
        out[i] = (v << 1) ^ (v >> 63)


@numba.njit(cache=True, nogil=True)
def _unzigzag_kernel(c, out):
    for i in range(c.size):
        v = np.int64(c[i])
        out[i] = (v >> 1) ^ -(v & 1)


def unzigzag(codes: np.ndarray, reference: bool = False) -> np.ndarray:
    if reference:
        c = codes.astype(np.int64)
        return ((c >> 1) ^ -(c & 1)).astype(np.int32)
    out = np.empty(codes.size, dtype=np.int32)
    _unzigzag_kernel(codes, out)
    return out


def width_of(codes: np.ndarray) -> int:
    """Fewest bits that hold every non-negative code (0 for none or all zero)."""
    return int(codes.max()).bit_length() if codes.size else 0


def unsigned_nbytes(count: int, width: int) -> int:
    """Bytes of ``count`` values of ``width`` bits (``width`` 0: none)."""
    return fixed_nbytes(count, width) if width else 0


def pack_unsigned(values: np.ndarray, width: int) -> bytes:
    """``values`` (each < 2**width) MSB-first in ``width`` bits; empty for width 0."""
    return pack_fixed(values, width) if width else b""


def unpack_unsigned(data: np.ndarray, width: int, count: int, reference: bool = False
                    ) -> np.ndarray:
    """uint32 values packed by :func:`pack_unsigned`; ``data`` must be exactly their bytes,
    with zero padding (ValueError otherwise)."""
    need = unsigned_nbytes(count, width)
    if data.size != need:
        raise ValueError(f"{count} values of {width} bits take {need} bytes, got {data.size}")
    if width == 0:
        return np.zeros(count, dtype=np.uint32)
    pad = need * 8 - count * width
    if pad and int(data[-1]) & ((1 << pad) - 1):
        raise ValueError("non-zero padding bits")
    if reference:
        return _unpack_fixed_ref(data, width, count)
    return unpack_fixed(data, width, count)


class Fixed:
    """The ``fixed`` entropy stage (see the module docstring)."""

    name: ClassVar[str] = "fixed"
    code: ClassVar[int] = 1

    def nbytes(self, symbols: np.ndarray) -> int:
        s = np.asarray(symbols).reshape(-1)
        if s.size == 0:
            return 1
        hi, lo = int(s.max()), int(s.min())
        if lo < -(1 << 31) or hi >= 1 << 31:
            raise ValueError("symbols must fit in int32")
        top = max(2 * hi, -2 * lo - 1, 0)  # the largest zig-zag code, without making them
        return 1 + unsigned_nbytes(s.size, top.bit_length())

    def encode(self, symbols: np.ndarray) -> bytes:
        codes = zigzag(symbols)
        width = width_of(codes)
        return bytes([width]) + pack_unsigned(codes, width)

    def decode(self, data: bytes | memoryview, count: int) -> np.ndarray:
        return self._decode(data, count, reference=False)

    def decode_reference(self, data: bytes | memoryview, count: int) -> np.ndarray:
        return self._decode(data, count, reference=True)

    @staticmethod
    def _decode(data: bytes | memoryview, count: int, reference: bool) -> np.ndarray:
        buf = as_uint8(data)
        if buf.size < 1:
            raise ValueError("fixed stream: missing the width byte")
        width = int(buf[0])
        if width > 32:
            raise ValueError(f"fixed stream: width {width} > 32")
        codes = unpack_unsigned(buf[1:], width, count, reference)
        if width_of(codes) != width:
            raise ValueError(f"fixed stream: width {width} is not the smallest for its codes")
        return unzigzag(codes, reference)


register_entropy(Fixed())
