"""``huffman``: signed levels as canonical Huffman codes (the paper's coder), or fixed width.

Levels are offset by the stream's minimum into the alphabet 0..A-1 and coded as
:func:`inspector.core.streams.plan_stream` chooses: Huffman when strictly smaller, else fixed
width (0 bits when every level is the same). Stream (empty for zero levels):

| field | type | meaning |
|---|---|---|
| mode | u8 | 0 fixed width, 1 Huffman |
| min | varint | zig-zag of the smallest level (2v for v >= 0, -2v - 1 below) |
| A - 1 | varint | largest level - smallest level |
| table | bytes | Huffman only: the code-length table of :mod:`inspector.core.huffman_table` |
| code | bytes | the symbols level - min, MSB first, zero-padded to a byte |

A decoder accepts only what the encoder writes: the minimum and maximum occur, the table is
the one the decoded histogram gives, the code ends in the last byte with zero padding.
Huffman needs A <= 2**20 (the table's limit); wider streams are fixed width.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from inspector.core import bitpack, huffman, huffman_table, streams
from inspector.core.stages.registry import register_entropy

__all__ = ["HuffmanStage"]

_I32 = (-(1 << 31), (1 << 31) - 1)


def _zigzag(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def _plan(levels: np.ndarray) -> tuple[int, streams.StreamPlan, np.ndarray]:
    """(minimum, plan, offset symbols) of a non-empty int32 stream."""
    lo, hi = int(levels.min()), int(levels.max())
    sym = (levels.astype(np.int64) - lo).astype(np.uint32)
    return lo, _plan_counts(sym, hi - lo + 1), sym


def _plan_counts(sym: np.ndarray, alphabet: int) -> streams.StreamPlan:
    width = streams.fixed_width(alphabet)
    if alphabet > huffman_table.MAX_TABLE_ALPHABET:  # fixed width only: no histogram
        nbits = sym.size * width
        return streams.StreamPlan(alphabet, sym.size, width, None, nbits, 0, nbits)
    counts = np.bincount(sym, minlength=alphabet)
    return streams.plan_stream(counts, width, True, allow_constant=False)


def _head(mode: int, lo: int, alphabet: int) -> bytes:
    return bytes([mode]) + bitpack.uvarint(_zigzag(lo)) + bitpack.uvarint(alphabet - 1)


def _levels(symbols: np.ndarray) -> np.ndarray:
    raw = np.asarray(symbols).reshape(-1)
    if raw.dtype.kind not in "iu":
        raise ValueError(f"levels must be integers, got dtype {raw.dtype}")
    if raw.size and (int(raw.min()) < _I32[0] or int(raw.max()) > _I32[1]):
        raise ValueError("huffman codes int32 levels; got a level beyond that range")
    return np.ascontiguousarray(raw, dtype=np.int32)


class HuffmanStage:
    """The ``huffman`` entropy stage (see the module docstring)."""

    name: ClassVar[str] = "huffman"
    code: ClassVar[int] = 2

    def nbytes(self, symbols: np.ndarray) -> int:
        lv = _levels(symbols)
        if lv.size == 0:
            return 0
        lo, plan, _ = _plan(lv)
        return len(_head(plan.mode, lo, plan.alphabet)) + plan.nbytes

    def encode(self, symbols: np.ndarray) -> bytes:
        lv = _levels(symbols)
        if lv.size == 0:
            return b""
        lo, plan, sym = _plan(lv)
        table, code = streams.encode_stream(sym, plan)
        return _head(plan.mode, lo, plan.alphabet) + table + code

    def decode(self, data: bytes | memoryview, count: int) -> np.ndarray:
        return _decode(data, count, reference=False)

    def decode_reference(self, data: bytes | memoryview, count: int) -> np.ndarray:
        return _decode(data, count, reference=True)


def _decode(data: bytes | memoryview, count: int, reference: bool) -> np.ndarray:
    buf = bitpack.as_uint8(data)
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count == 0:
        if buf.size:
            raise ValueError("huffman stream is damaged: bytes for an empty stream")
        return np.empty(0, dtype=np.int32)
    try:
        return _decode_checked(buf, count, reference)
    except ValueError as err:
        raise ValueError(f"huffman stream is damaged: {err}") from None


def _decode_checked(buf: np.ndarray, count: int, reference: bool) -> np.ndarray:
    if buf.size == 0 or buf[0] > streams.HUFFMAN:
        raise ValueError("no stream or an unknown mode")
    mode = int(buf[0])
    z, pos = bitpack.read_uvarint(buf, 1, 1 << 32)
    span, pos = bitpack.read_uvarint(buf, pos, (1 << 32) - 1)
    lo = _unzigzag(z)
    if lo < _I32[0] or lo + span > _I32[1]:
        raise ValueError("levels beyond int32")
    alphabet = span + 1
    width = streams.fixed_width(alphabet)
    lengths = None
    if mode == streams.FIXED:
        if buf.size - pos != (bitpack.fixed_nbytes(count, width) if width else 0):
            raise ValueError("the code is not count x width bits")
        unpack = bitpack._unpack_fixed_ref if reference else bitpack.unpack_fixed
        sym = unpack(buf[pos:], width, count) if width else np.zeros(count, dtype=np.uint32)
        _check_padding(buf, count * width)
    else:
        if alphabet > huffman_table.MAX_TABLE_ALPHABET:
            raise ValueError("a Huffman alphabet beyond the table's limit")
        lengths, pos = huffman_table.decode_table(buf, pos, alphabet_size=alphabet)
        code = buf[pos:]
        if count > 8 * code.size:
            raise ValueError("too short for its count")
        sym = (huffman._decode_ref(code.tobytes(), count, lengths) if reference
               else huffman.decode(code, count, lengths))
        nbits = huffman.encoded_nbits(np.bincount(sym, minlength=alphabet), lengths)
        if code.size != (nbits + 7) // 8:
            raise ValueError("bytes after the code")
        _check_padding(buf, nbits)
    if int(sym.min()) != 0 or int(sym.max()) != span:
        raise ValueError("its minimum or maximum does not occur")
    plan = _plan_counts(sym, alphabet)
    if plan.mode != mode or (lengths is not None and not _same(plan.lengths, lengths)):
        raise ValueError("not the code the encoder writes")
    return (sym.astype(np.int64) + lo).astype(np.int32)


def _same(used: np.ndarray, lengths: np.ndarray) -> bool:
    """Lengths trimmed after the last used symbol equal the table's (padded) lengths."""
    return bool(np.array_equal(used, lengths[: used.size]) and not lengths[used.size :].any())


def _check_padding(buf: np.ndarray, nbits: int) -> None:
    """The last byte's bits past the code are zero."""
    rest = nbits % 8
    if rest and int(buf[-1]) & ((1 << (8 - rest)) - 1):
        raise ValueError("non-zero padding bits")


register_entropy(HuffmanStage())
