"""Method ``binary``: sign times one scale per unit (BinaryConnect / XNOR-Net style), 13.4.

Per unit (the tensor, or each output channel: :mod:`.signs`) a weight decodes to
``+s`` if ``w >= 0`` else ``-s``, with ``s = mean|w|``, the least-squares scale for the
signs (with an importance, its weighted mean: still the least-squares optimum; the signs
do not depend on it).

The signs are the symbols 0 (non-negative) and -1 (negative), whose zig-zag codes are 0
and 1: the ``fixed`` stage stores exactly 1 bit a weight (plus its width byte); ``auto``
takes an adaptive coder instead where it is smaller (skewed signs). The size counts the
scales (float16 when exact enough).
"""

from __future__ import annotations

from typing import ClassVar

import numba
import numpy as np

from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options
from inspector.core.stages.fitted import ENTROPY_CHOICES, FitLayer
from inspector.core.stages.signs import ScaledSigns, granularity_option


@numba.njit(cache=True, nogil=True)
def _fit(w, imp, units, size, symbols, num, den):
    weighted = imp.size > 0
    for u in range(units):
        a, q = w[u * size:(u + 1) * size], symbols[u * size:(u + 1) * size]
        c = imp[u * size:(u + 1) * size] if weighted else imp
        for j in range(a.size):
            x = np.float64(a[j])
            q[j] = -1 if x < 0 else 0
            cj = c[j] if weighted else 1.0
            num[u] += cj * abs(x)
            den[u] += cj


class Binary(ScaledSigns):
    """The ``binary`` method (see the module docstring)."""

    name: ClassVar[str] = "binary"
    code: ClassVar[int] = 25
    # symbol -1 -> -1, 0 -> +1 (index 2 is never read: symbol 1 is refused)
    mult: ClassVar[np.ndarray] = np.array([-1, 1, 0], dtype=np.float32)
    symbols_lo: ClassVar[int] = -1
    symbols_hi: ClassVar[int] = 0
    options: ClassVar[tuple[Option, ...]] = (
        granularity_option(),
        Option("entropy", str, "auto", "Entropy coder", "coder of the signs; fixed: 1 bit a "
               "weight; auto: the smallest", choices=ENTROPY_CHOICES),
    )

    def fit_units(self, layer: FitLayer, options: Options, geometry: tuple[int, int],
                  symbols: np.ndarray, num: np.ndarray, den: np.ndarray) -> None:
        imp = np.empty(0) if layer.imp is None else layer.imp
        _fit(layer.w, imp, geometry[0], geometry[1], symbols, num, den)


registry.register_method(Binary())
