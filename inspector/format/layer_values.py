"""A deep layer's values from the symbols its up-front check decoded.

:func:`inspector.format.verify.check_deep_payload` decodes a layer's streams to check them; the
container keeps what it decoded, and a read that follows builds the values here instead of
decoding the streams again (the costly part of a read: Huffman decoding), through
:func:`inspector.core.decode.values_of_symbols`, the second half of ``decode_payload``; the
array is the same (``tests/format/test_decode_once.py``).
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
    from inspector.core import positions
    from inspector.core.decode import values_of_symbols

    psym = symbols.positions
    if layout.positions == positions.BITMAP:  # the check keeps the bitmap packed
        psym = np.unpackbits(psym, count=layout.size).astype(np.uint32)
    return values_of_symbols(symbols.codebook, symbols.weights, psym, layout)
