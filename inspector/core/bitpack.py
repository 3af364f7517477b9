"""Fixed-width bit packing, MSB-first.

The file format fixes the bit order: the first bit of a stream is the most significant bit of
byte 0, each value is written most significant bit first, and the last byte is zero-padded in
its low bits. A stream of ``count`` values of ``width`` bits takes ``ceil(count * width / 8)``
bytes.

Each kernel has a plain-numpy twin (suffix ``_ref``); the tests check that the two agree.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["as_uint8", "fixed_nbytes", "pack_fixed", "read_uvarint", "unpack_fixed", "uvarint"]

MAX_WIDTH = 32


def as_uint8(buf: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """View a bytes-like object or a uint8 array as a 1-D uint8 array, without copying.

    Parameters
    ----------
    buf : bytes, bytearray, memoryview or numpy.ndarray
        The data. An ndarray must have dtype uint8 (a silent reinterpretation of wider
        integers as bytes would depend on the machine's byte order).

    Returns
    -------
    numpy.ndarray
        1-D uint8 array sharing memory with ``buf`` (read-only for ``bytes``).
    """
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise ValueError(f"expected a uint8 buffer, got dtype {buf.dtype}")
        return np.ascontiguousarray(buf).reshape(-1)
    return np.frombuffer(buf, dtype=np.uint8)


def fixed_nbytes(count: int, width: int) -> int:
    """Bytes taken by ``count`` values of ``width`` bits: ``ceil(count * width / 8)``.

    Python integers throughout, so it never overflows.
    """
    _check_width(width)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return (int(count) * int(width) + 7) // 8


def pack_fixed(values: np.ndarray, width: int) -> bytes:
    """Pack unsigned integers into ``width``-bit fields, MSB-first.

    Parameters
    ----------
    values : numpy.ndarray
        Integers of any integer dtype, each in ``[0, 2**width)``. Flattened in C order.
    width : int
        Bits per value, 1..32.

    Returns
    -------
    bytes
        ``fixed_nbytes(values.size, width)`` bytes; the final byte is zero-padded.

    Raises
    ------
    ValueError
        If ``width`` is out of range or a value does not fit in ``width`` bits.
    """
    _check_width(width)
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"values must be integers, got dtype {arr.dtype}")
    arr = arr.reshape(-1)
    if arr.size == 0:
        return b""
    # Check before the cast to uint32, which would silently wrap negatives and wide values.
    if int(arr.min()) < 0 or int(arr.max()) >= 1 << width:
        raise ValueError(f"values must lie in [0, 2**{width})")
    out = np.empty(fixed_nbytes(arr.size, width), dtype=np.uint8)
    _pack_fixed_kernel(np.ascontiguousarray(arr, dtype=np.uint32), width, out)
    return out.tobytes()


def unpack_fixed(buf: bytes | np.ndarray, width: int, count: int) -> np.ndarray:
    """Read ``count`` values of ``width`` bits written by :func:`pack_fixed`.

    Parameters
    ----------
    buf : bytes or numpy.ndarray
        The packed stream (uint8 if an array). Bytes past the stream are ignored.
    width : int
        Bits per value, 1..32.
    count : int
        Number of values to read.

    Returns
    -------
    numpy.ndarray
        uint32 array of length ``count``.

    Raises
    ------
    ValueError
        If ``buf`` holds fewer than ``count * width`` bits, or ``width``/``count`` is invalid.
    """
    need = fixed_nbytes(count, width)
    data = as_uint8(buf)
    if data.size < need:
        raise ValueError(
            f"truncated bit-packed stream: {count} x {width} bits need {need} bytes, "
            f"got {data.size}"
        )
    out = np.empty(count, dtype=np.uint32)
    _unpack_fixed_kernel(data, width, out)
    return out


def uvarint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low group first, high bit set on all but the last."""
    if value < 0:
        raise ValueError(f"uvarint needs a non-negative value, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_uvarint(buf: bytes | np.ndarray, offset: int, max_value: int) -> tuple[int, int]:
    """Read a minimal unsigned LEB128 value no larger than ``max_value``.

    Returns ``(value, offset past it)``. Raises ValueError on truncation, a non-minimal
    encoding, or a value above ``max_value`` (checked before reading more bytes than that
    value needs, so hostile input costs O(1)).
    """
    data = as_uint8(buf)
    value = 0
    for k in range(len(uvarint(max_value))):
        if not 0 <= offset < data.size:
            raise ValueError("truncated varint")
        byte = int(data[offset])
        offset += 1
        value |= (byte & 0x7F) << (7 * k)
        if not byte & 0x80:
            if byte == 0 and k:
                raise ValueError("non-minimal varint")
            if value > max_value:
                break
            return value, offset
    raise ValueError(f"varint exceeds {max_value}")


def _check_width(width: int) -> None:
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"width must be in 1..{MAX_WIDTH}, got {width}")


# ------------------------------------------------------------------------------------ kernels
# Accumulators are int64 holding fewer than 8 + 32 bits: masked after every flush, so no shift
# ever overflows and no uint64/int64 mixing (which numba promotes to float64) is needed.


@numba.njit(cache=True, nogil=True)
def _pack_fixed_kernel(values: np.ndarray, width: int, out: np.ndarray) -> None:
    acc = 0
    nacc = 0
    j = 0
    for i in range(values.size):
        acc = (acc << width) | np.int64(values[i])
        nacc += width
        while nacc >= 8:
            nacc -= 8
            out[j] = (acc >> nacc) & 0xFF
            j += 1
        acc &= (1 << nacc) - 1
    if nacc > 0:
        out[j] = (acc << (8 - nacc)) & 0xFF


def _pack_fixed_ref(values: np.ndarray, width: int) -> bytes:
    """Numpy twin of :func:`_pack_fixed_kernel`: explode to bits, let packbits pad."""
    v = np.asarray(values, dtype=np.uint64).reshape(-1)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((v[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


@numba.njit(cache=True, nogil=True)
def _unpack_fixed_kernel(buf: np.ndarray, width: int, out: np.ndarray) -> None:
    acc = 0
    nacc = 0
    j = 0
    mask = (1 << width) - 1
    for i in range(out.size):
        while nacc < width:
            acc = (acc << 8) | np.int64(buf[j])
            j += 1
            nacc += 8
        nacc -= width
        out[i] = (acc >> nacc) & mask
        acc &= (1 << nacc) - 1


def _unpack_fixed_ref(buf: bytes | np.ndarray, width: int, count: int) -> np.ndarray:
    """Numpy twin of :func:`_unpack_fixed_kernel`."""
    bits = np.unpackbits(as_uint8(buf))[: count * width].astype(np.uint64)
    weights = np.uint64(1) << np.arange(width - 1, -1, -1, dtype=np.uint64)
    return (bits.reshape(count, width) @ weights).astype(np.uint32)
