"""A deep layer's values from the symbols its up-front check decoded.

:func:`inspector.format.verify.check_deep_payload` decodes a layer's streams to check them; the
container keeps what it decoded, and a read that follows builds the values here instead of
decoding the streams again (the costly part of a read: Huffman decoding). This is the second
half of :func:`inspector.core.decode.decode_payload`, whose first half the check replaces, and
gives the same array (``tests/format/test_decode_once.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from inspector.core.decode import Layout
    from inspector.format.verify import Symbols


def values_of(symbols: Symbols, layout: Layout) -> np.ndarray:
    """The flat float32 weights the checked ``symbols`` describe (ValueError on any
    inconsistency, as the decoder would raise)."""
    from inspector.core import kernels, positions

    codebook, wsym = symbols.codebook, symbols.weights
    out = np.zeros(layout.size, dtype=np.float32)
    if layout.positions == positions.GAPS:
        filler = layout.codebook_size if layout.has_filler else -1
        bad = kernels.scatter_entries(
            wsym, symbols.positions, codebook, filler, layout.index_bits, out)
        if bad:
            raise ValueError(f"entry {-bad - 1} of the sparse index is inconsistent")
        return out
    psym = symbols.positions
    if layout.positions == positions.BITMAP:
        psym = np.unpackbits(psym, count=layout.size).astype(np.uint32)
    kept = positions.decode_positions(
        layout.positions, psym, layout.size, layout.entries, layout.index_bits)
    if wsym.size and int(wsym.max()) >= codebook.size:
        raise ValueError("a weight symbol lies outside the codebook")
    out[kept] = codebook[wsym]
    return out
