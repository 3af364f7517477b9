"""Coding one symbol stream: fixed width or canonical Huffman, whichever is smaller."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.core import bitpack, huffman, huffman_table


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How a stream of ``count`` symbols over ``alphabet`` is coded, and its exact sizes.

    ``lengths`` is set when the stream is Huffman coded. ``huffman_nbits`` is the Huffman
    payload size whether or not it was chosen (the paper's P+Q+H column).
    """

    alphabet: int
    count: int
    width: int
    lengths: np.ndarray | None
    nbits: int
    table_nbytes: int
    huffman_nbits: int

    @property
    def huffman(self) -> bool:
        return self.lengths is not None

    @property
    def code_nbytes(self) -> int:
        return (self.nbits + 7) // 8

    @property
    def nbytes(self) -> int:
        return self.code_nbytes + self.table_nbytes


def fixed_width(alphabet: int) -> int:
    """Bits of a fixed-width code for ``alphabet`` symbols (0 for one symbol)."""
    return max(0, int(alphabet - 1).bit_length())


def plan_stream(counts: np.ndarray, width: int, use_huffman: bool) -> StreamPlan:
    """Choose the coding of a stream with symbol histogram ``counts``.

    Huffman is used only when asked for and strictly smaller than ``width``-bit codes
    (its table included), so small layers never grow.
    """
    count = int(counts.sum())
    fixed_nbits = count * width
    if count == 0 or width == 0:
        return StreamPlan(counts.size, count, width, None, fixed_nbits, 0, fixed_nbits)
    lengths = huffman.code_lengths(counts)
    hbits = huffman.encoded_nbits(counts, lengths)
    table = huffman_table.table_nbytes(lengths)
    if use_huffman and (hbits + 7) // 8 + table < (fixed_nbits + 7) // 8:
        # Kept up to the last used symbol (the table stores no more): a 16-bit gap code of a
        # tiny layer would otherwise keep 64 KB per plan.
        used = np.flatnonzero(lengths)
        lengths = lengths[: int(used[-1]) + 1].copy()
        return StreamPlan(counts.size, count, width, lengths, hbits, table, hbits)
    return StreamPlan(counts.size, count, width, None, fixed_nbits, 0, hbits)


def encode_stream(symbols: np.ndarray, plan: StreamPlan) -> tuple[bytes, bytes]:
    """The (table, code) bytes of ``symbols`` as ``plan`` says."""
    if plan.lengths is not None:
        code, nbits = huffman.encode(symbols, plan.lengths)
        assert nbits == plan.nbits
        return huffman_table.encode_table(plan.lengths), code
    if plan.width == 0:
        return b"", b""
    return b"", bitpack.pack_fixed(symbols, plan.width)


def decode_stream(
    buf: memoryview, offset: int, count: int, width: int, lengths: np.ndarray | None
) -> np.ndarray:
    """``count`` symbols coded from ``buf[offset:]`` (ValueError on a damaged stream)."""
    if lengths is not None:
        return huffman.decode(np.frombuffer(buf, np.uint8, offset=offset), count, lengths)
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint32)
    return bitpack.unpack_fixed(np.frombuffer(buf, np.uint8, offset=offset), width, count)
