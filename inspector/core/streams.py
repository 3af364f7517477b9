"""Coding one symbol stream: fixed width, canonical Huffman, or one repeated symbol.

The plan picks whichever is smallest, so small layers never grow and a stream whose symbols
are all the same costs a few bytes, not a bit per symbol (format version 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.core import bitpack, huffman, huffman_table

FIXED, HUFFMAN, CONSTANT = 0, 1, 2  # stream modes, as stored in a version-2 record
MODES = {FIXED: "fixed", HUFFMAN: "huffman", CONSTANT: "constant"}


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How a stream of ``count`` symbols over ``alphabet`` is coded, and its exact sizes.

    ``lengths`` is set when the stream is Huffman coded; ``symbol`` (>= 0) when every symbol
    is that one and the stream is stored as the symbol alone (a varint in the table slot, no
    code bits). ``huffman_nbits`` is the Huffman payload size whether or not it was chosen (the
    paper's P+Q+H column), 0 for a constant stream (its entropy).
    """

    alphabet: int
    count: int
    width: int
    lengths: np.ndarray | None
    nbits: int
    table_nbytes: int
    huffman_nbits: int
    symbol: int = -1

    @property
    def huffman(self) -> bool:
        return self.lengths is not None

    @property
    def constant(self) -> bool:
        return self.symbol >= 0

    @property
    def mode(self) -> int:
        return HUFFMAN if self.huffman else CONSTANT if self.constant else FIXED

    @property
    def code_nbytes(self) -> int:
        return (self.nbits + 7) // 8

    @property
    def nbytes(self) -> int:
        return self.code_nbytes + self.table_nbytes


def fixed_width(alphabet: int) -> int:
    """Bits of a fixed-width code for ``alphabet`` symbols (0 for one symbol)."""
    return max(0, int(alphabet - 1).bit_length())


def plan_stream(
    counts: np.ndarray, width: int, use_huffman: bool, allow_constant: bool = True
) -> StreamPlan:
    """Choose the coding of a stream with symbol histogram ``counts``.

    Huffman is used only when asked for and strictly smaller than ``width``-bit codes (its
    table included). A stream of one repeated symbol is stored as that symbol when that is
    strictly smaller still (``allow_constant``: version 2 and later).
    """
    count = int(counts.sum())
    fixed_nbits = count * width
    best = StreamPlan(counts.size, count, width, None, fixed_nbits, 0, fixed_nbits)
    if count == 0 or width == 0:
        return best
    lengths = huffman.code_lengths(counts)
    hbits = huffman.encoded_nbits(counts, lengths)
    table = huffman_table.table_nbytes(lengths)
    best = StreamPlan(counts.size, count, width, None, fixed_nbits, 0, hbits)
    if use_huffman and (hbits + 7) // 8 + table < best.nbytes:
        best = StreamPlan(counts.size, count, width, _used(lengths), hbits, table, hbits)
    used = np.flatnonzero(counts)
    if allow_constant and used.size == 1:
        symbol = int(used[0])
        plan = StreamPlan(counts.size, count, width, None, 0, len(bitpack.uvarint(symbol)),
                          0, symbol)
        if plan.nbytes < best.nbytes:
            best = plan
    return best


def _used(lengths: np.ndarray) -> np.ndarray:
    """Code lengths up to the last used symbol (the table stores no more): a 16-bit gap code
    of a tiny layer would otherwise keep 64 KB per plan."""
    used = np.flatnonzero(lengths)
    return lengths[: int(used[-1]) + 1].copy()


def plan_stream_as(counts: np.ndarray, width: int, mode: int) -> StreamPlan:
    """The plan of a stream with histogram ``counts`` that a file says was coded in ``mode``
    (to recount a stored layer's sizes exactly)."""
    count = int(counts.sum())
    if mode == FIXED or count == 0:
        plan = plan_stream(counts, width, False, allow_constant=False)
        return plan
    lengths = huffman.code_lengths(counts)
    hbits = huffman.encoded_nbits(counts, lengths)
    if mode == HUFFMAN:
        table = huffman_table.table_nbytes(lengths)
        lengths = _used(lengths)
        return StreamPlan(counts.size, count, width, lengths, hbits, table, hbits)
    symbol = int(np.flatnonzero(counts)[0])
    return StreamPlan(counts.size, count, width, None, 0, len(bitpack.uvarint(symbol)), 0, symbol)


def encode_stream(symbols: np.ndarray, plan: StreamPlan) -> tuple[bytes, bytes]:
    """The (table, code) bytes of ``symbols`` as ``plan`` says."""
    if plan.lengths is not None:
        code, nbits = huffman.encode(symbols, plan.lengths)
        assert nbits == plan.nbits
        return huffman_table.encode_table(plan.lengths), code
    if plan.constant:
        return bitpack.uvarint(plan.symbol), b""
    if plan.width == 0:
        return b"", b""
    return b"", bitpack.pack_fixed(symbols, plan.width)


def read_constant(buf: memoryview, offset: int, alphabet: int) -> tuple[int, int]:
    """The symbol of a constant stream stored at ``buf[offset:]``, and the offset past it."""
    if alphabet < 1:
        raise ValueError("constant stream over an empty alphabet")
    return bitpack.read_uvarint(np.frombuffer(buf, np.uint8), offset, alphabet - 1)


def decode_stream(
    buf: memoryview, offset: int, count: int, width: int, lengths: np.ndarray | None,
    symbol: int = -1,
) -> np.ndarray:
    """``count`` symbols coded from ``buf[offset:]`` (ValueError on a damaged stream)."""
    if symbol >= 0:
        return np.full(count, symbol, dtype=np.uint32)
    if lengths is not None:
        return huffman.decode(np.frombuffer(buf, np.uint8, offset=offset), count, lengths)
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint32)
    return bitpack.unpack_fixed(np.frombuffer(buf, np.uint8, offset=offset), width, count)
