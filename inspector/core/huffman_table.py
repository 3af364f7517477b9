"""The stored form of a canonical Huffman code: its code lengths, compactly.

Table format (:func:`encode_table`); the file stores code lengths, never codes:

1. ``A`` as a minimal unsigned LEB128 varint, ``A`` = last symbol with a non-zero length + 1
   (0 if none), at most ``MAX_TABLE_ALPHABET`` = 2**20.
2. MSB-first 5-bit fields giving the lengths of symbols 0..A-1 in order. ``0..24``: the next
   symbol's length (0 = unused). ``31``: a run of ``r >= 2`` unused symbols, followed by a 5-bit
   ``n`` (0..19) and ``n`` bits ``v``; ``r = ((1 << n) | v) + 1``. ``25..30`` are reserved.
   The writer emits a run for ``r >= 3`` and single 0 fields otherwise.
3. Zero bits up to the next byte boundary.

Each kernel has a plain-Python twin (suffix ``_ref``); kernels call only kernels in this module,
because numba's cache does not notice edits to other modules.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from inspector.core.bitpack import as_uint8, read_uvarint, uvarint
from inspector.core.huffman import MAX_CODE_LENGTH, _bits_to_bytes, _check_lengths

__all__ = ["MAX_TABLE_ALPHABET", "decode_table", "encode_table", "table_nbytes"]

MAX_TABLE_ALPHABET = 1 << 20
_RUN = 31
_MAX_RUN_BITS = 19  # runs are shorter than 2**20, so r - 1 has at most 20 bits, top one implicit
_TABLE_ERRORS = {
    1: "truncated code-length table",
    2: "code length field out of range in table",
    3: "zero run passes the end of the alphabet in table",
    4: "zero-run width out of range in table",
    5: "non-zero padding bits in table",
}


def encode_table(lengths: np.ndarray) -> bytes:
    """Serialise code lengths in the compact format of the module docstring."""
    lens = _check_lengths(lengths)
    used = np.flatnonzero(lens)
    size = int(used[-1]) + 1 if used.size else 0
    if size > MAX_TABLE_ALPHABET:
        raise ValueError(f"alphabet of {size} symbols exceeds {MAX_TABLE_ALPHABET}")
    out = np.empty((5 * size + 7) // 8, dtype=np.uint8)  # a run never costs more than 5r bits
    return uvarint(size) + out[: _table_encode_kernel(lens[:size], out)].tobytes()


def table_nbytes(lengths: np.ndarray) -> int:
    """Exact size in bytes of :func:`encode_table` for these lengths."""
    return len(encode_table(lengths))


def decode_table(
    buf: bytes | memoryview | np.ndarray, offset: int = 0, *, alphabet_size: int | None = None
) -> tuple[np.ndarray, int]:
    """Read code lengths written by :func:`encode_table`.

    Parameters
    ----------
    buf : bytes, memoryview or numpy.ndarray
        Data holding the table at byte ``offset``.
    offset : int
        Byte offset of the table in ``buf``.
    alphabet_size : int, optional
        Pad the result with unused symbols to this size (the table omits trailing ones).

    Returns
    -------
    tuple of (numpy.ndarray, int)
        uint8 lengths and the offset just past the table.

    Raises
    ------
    ValueError
        If the table is truncated, malformed, too large or not a valid prefix code.
    """
    data = as_uint8(buf)
    size, pos = read_uvarint(data, offset, MAX_TABLE_ALPHABET)
    if alphabet_size is not None and size > alphabet_size:
        raise ValueError(f"table alphabet size {size} exceeds expected {alphabet_size}")
    lens = np.zeros(size if alphabet_size is None else alphabet_size, dtype=np.uint8)
    status, end = _table_decode_kernel(data, 8 * pos, lens[:size])
    if status:
        raise ValueError(_TABLE_ERRORS[status])
    return _check_lengths(lens), end // 8


@numba.njit(cache=True, nogil=True)
def _put_bits(out: np.ndarray, j: int, acc: int, nacc: int, value: int, width: int) -> tuple:
    acc = (acc << width) | value
    nacc += width
    while nacc >= 8:
        nacc -= 8
        out[j] = (acc >> nacc) & 0xFF
        j += 1
    return j, acc & ((1 << nacc) - 1), nacc


@numba.njit(cache=True, nogil=True)
def _get_bits(buf: np.ndarray, pos: int, width: int) -> int:
    # Caller checks pos + width <= 8 * buf.size; width <= 24 spans at most 4 bytes.
    end = pos + width
    value = 0
    for b in range(pos >> 3, (end + 7) >> 3):
        value = ((value << 8) | np.int64(buf[b])) & 0xFFFFFFFF
    return (value >> (-end % 8)) & ((1 << width) - 1)


@numba.njit(cache=True, nogil=True)
def _table_encode_kernel(lengths: np.ndarray, out: np.ndarray) -> int:
    j = acc = nacc = s = 0
    while s < lengths.size:
        r = 0
        while s + r < lengths.size and lengths[s + r] == 0:
            r += 1
        if r >= 3:
            nb = 0
            while (r - 1) >> (nb + 1):
                nb += 1
            j, acc, nacc = _put_bits(out, j, acc, nacc, _RUN, 5)
            j, acc, nacc = _put_bits(out, j, acc, nacc, nb, 5)
            j, acc, nacc = _put_bits(out, j, acc, nacc, (r - 1) & ((1 << nb) - 1), nb)
            s += r
        else:
            j, acc, nacc = _put_bits(out, j, acc, nacc, np.int64(lengths[s]), 5)
            s += 1
    if nacc:
        out[j] = (acc << (8 - nacc)) & 0xFF
        j += 1
    return j


@numba.njit(cache=True, nogil=True)
def _table_decode_kernel(buf: np.ndarray, pos: int, out: np.ndarray) -> tuple[int, int]:
    # Fills the zeroed `out` from bit `pos`; returns (status, bit position past the padding),
    # status keying _TABLE_ERRORS. Every read is bounds-checked before it happens.
    nbits = 8 * buf.size
    s = 0
    while s < out.size:
        if pos + 5 > nbits:
            return 1, pos
        f = _get_bits(buf, pos, 5)
        pos += 5
        if f <= MAX_CODE_LENGTH:
            out[s] = f
            s += 1
            continue
        if f != _RUN:
            return 2, pos
        if pos + 5 > nbits:
            return 1, pos
        nb = _get_bits(buf, pos, 5)
        if nb > _MAX_RUN_BITS:
            return 4, pos
        if pos + 5 + nb > nbits:
            return 1, pos
        r = ((1 << nb) | _get_bits(buf, pos + 5, nb)) + 1
        pos += 5 + nb
        if r > out.size - s:
            return 3, pos
        s += r
    pad = -pos % 8
    if pad and _get_bits(buf, pos, pad):
        return 5, pos
    return 0, pos + pad


def _encode_table_ref(lengths: np.ndarray) -> bytes:
    """Twin of :func:`encode_table`, on bit strings."""
    lens = [int(n) for n in lengths]
    while lens and not lens[-1]:
        lens.pop()
    fields, s = [], 0
    while s < len(lens):
        r = next((k for k in range(s, len(lens)) if lens[k]), len(lens)) - s
        if r >= 3:
            fields.append(f"{_RUN:05b}{(r - 1).bit_length() - 1:05b}" + bin(r - 1)[3:])
            s += r
        else:
            fields.append(f"{lens[s]:05b}")
            s += 1
    return uvarint(len(lens)) + _bits_to_bytes("".join(fields))


def _decode_table_ref(buf: bytes, offset: int = 0) -> tuple[np.ndarray, int]:
    """Twin of :func:`decode_table` (without padding to an alphabet size), on bit strings."""
    size, pos = read_uvarint(buf, offset, MAX_TABLE_ALPHABET)
    bits = "".join(f"{b:08b}" for b in bytes(buf[pos:]))
    lens: list[int] = []
    at = 0

    def take(width: int) -> int:
        nonlocal at
        if at + width > len(bits):
            raise ValueError("truncated code-length table")
        at += width
        return int(bits[at - width : at] or "0", 2)

    while len(lens) < size:
        f = take(5)
        if f <= MAX_CODE_LENGTH:
            lens.append(f)
        elif f == _RUN and (nb := take(5)) <= _MAX_RUN_BITS:
            lens += [0] * (((1 << nb) | take(nb)) + 1)
        else:
            raise ValueError("bad field in code-length table")
    if len(lens) > size or int(bits[at : 8 * math.ceil(at / 8)] or "0", 2):
        raise ValueError("bad zero run or padding in code-length table")
    return _check_lengths(np.array(lens, dtype=np.uint8)), pos + math.ceil(at / 8)
