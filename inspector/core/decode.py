"""Reading a deep-compressed payload back: the record's layout, the streams, the weights.

Payload (docs/format.md): ``codebook | weight table? | position table? | weight codes |
position codes``; a table slot holds a Huffman code table, or a constant stream's symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.core import huffman_table, kernels, positions
from inspector.core.codebook import read_codebook
from inspector.core.positions import BITMAP, DENSE, GAPS, HOLES
from inspector.core.streams import decode_stream, fixed_width, read_constant


@dataclass(frozen=True, slots=True)
class Layout:
    """What a decoder needs besides the payload: stored in the file's layer record."""

    size: int
    codebook_size: int
    has_filler: bool
    index_bits: int
    entries: int
    weight_huffman: bool
    gap_huffman: bool
    weight_nbytes: int
    weight_constant: bool = False
    gap_constant: bool = False
    positions: int = GAPS
    position_entries: int = 0  # symbols of a HOLES stream
    codebook_half: bool = False  # the codebook is stored as float16
    codebook_coded: bool = False  # ... and delta-coded (codebook.py)

    @property
    def filler(self) -> int:
        return self.codebook_size

    @property
    def survivors(self) -> int | None:
        """Kept weights, where the position code says (None for GAPS: fillers are entries)."""
        return None if self.positions == GAPS else self.entries



def _table(
    buf: memoryview, offset: int, huffman: bool, constant: bool, alphabet: int, what: str
) -> tuple[np.ndarray | None, int, int]:
    """A stream's table slot: (Huffman lengths or None, constant symbol or -1, offset past)."""
    if huffman:
        lengths, offset = huffman_table.decode_table(buf, offset)
        if lengths.size > alphabet:
            raise ValueError(f"{what} code table is larger than its alphabet")
        return lengths, -1, offset
    if constant:
        symbol, offset = read_constant(buf, offset, alphabet)
        return None, symbol, offset
    return None, -1, offset


def decode_symbols(
    payload: bytes | memoryview, layout: Layout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The codebook, the weight-index symbols and the position stream's symbols of a payload
    (ValueError if bad). Position symbols are the gap codes (GAPS), the bits (BITMAP), the
    hole codes (HOLES), or none (DENSE)."""
    buf = memoryview(payload)
    k = layout.codebook_size
    codebook, offset = read_codebook(buf, k, layout.codebook_half, layout.codebook_coded)
    walpha = k + layout.has_filler
    wlengths, wsymbol, offset = _table(
        buf, offset, layout.weight_huffman, layout.weight_constant, walpha, "weight")
    coded = layout.positions in (GAPS, HOLES)
    glengths, gsymbol, offset = _table(
        buf, offset, coded and layout.gap_huffman, coded and layout.gap_constant,
        1 << layout.index_bits, "position")
    gap_offset = offset + layout.weight_nbytes
    if gap_offset > len(buf):
        raise ValueError("weight codes run past the end of the layer")
    wsym = decode_stream(
        buf[:gap_offset], offset, layout.entries, fixed_width(walpha), wlengths, wsymbol)
    if layout.positions == DENSE:
        return codebook, wsym, np.zeros(0, np.uint32)
    if layout.positions == BITMAP:
        nbytes = (layout.size + 7) // 8
        if gap_offset + nbytes > len(buf):
            raise ValueError("position bitmap runs past the end of the layer")
        bits = np.unpackbits(np.frombuffer(buf, np.uint8, nbytes, gap_offset), count=layout.size)
        return codebook, wsym, bits.astype(np.uint32)
    n = layout.entries if layout.positions == GAPS else layout.position_entries
    gsym = decode_stream(buf, gap_offset, n, layout.index_bits, glengths, gsymbol)
    return codebook, wsym, gsym


def decode_kept(
    payload: bytes | memoryview, layout: Layout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The codebook, the kept positions (int64, ascending) and their weight symbols."""
    codebook, wsym, gsym = decode_symbols(payload, layout)
    if layout.positions != GAPS:
        kept = positions.decode_positions(
            layout.positions, gsym, layout.size, layout.entries, layout.index_bits)
        return codebook, kept, wsym
    pos = np.cumsum(gsym.astype(np.int64) + 1) - 1
    real = wsym != layout.filler if layout.has_filler else np.ones(pos.size, bool)
    return codebook, pos[real], wsym[real]


def decode_payload(payload: bytes | memoryview, layout: Layout) -> np.ndarray:
    """The flat float32 weights of a payload (ValueError on any inconsistency)."""
    return values_of_symbols(*decode_symbols(payload, layout), layout)


def values_of_symbols(
    codebook: np.ndarray, wsym: np.ndarray, gsym: np.ndarray, layout: Layout
) -> np.ndarray:
    """The flat float32 weights of decoded streams: the codebook, the weight symbols and the
    position symbols ``decode_symbols`` gives (ValueError on any inconsistency)."""
    out = np.zeros(layout.size, dtype=np.float32)
    if layout.positions == GAPS:
        filler = layout.codebook_size if layout.has_filler else -1
        bad = kernels.scatter_entries(wsym, gsym, codebook, filler, layout.index_bits, out)
        if bad:
            raise ValueError(f"entry {-bad - 1} of the sparse index is inconsistent")
        return out
    kept = positions.decode_positions(
        layout.positions, gsym, layout.size, layout.entries, layout.index_bits)
    if wsym.size and int(wsym.max()) >= codebook.size:
        raise ValueError("a weight symbol lies outside the codebook")
    out[kept] = codebook[wsym]
    return out
