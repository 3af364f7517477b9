"""Method ``ternary``: ternary weight networks (TWN, Li & Liu 2016), issue 13.4.

Per unit (the tensor, or each output channel: :mod:`.signs`) the threshold is
``Delta = delta * mean|w|`` (TWN's 0.7 by default); a weight with ``|w| > Delta`` becomes
``sign(w) * s``, the others 0, and ``s`` is the mean of the kept magnitudes, the
least-squares scale for those levels. With an importance the scale is the
importance-weighted mean (still the least-squares optimum of the weighted error); the
threshold stays TWN's rule, which does not weigh elements.

The levels -1, 0, +1 go to an entropy stage (``auto``: the smallest registered one): the
``fixed`` stage spends 2 bits a weight, an adaptive coder much less on zero-heavy levels.
The record is :mod:`.signs`'; the size counts the scales (float16 when exact enough).
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
def _fit(w, imp, units, size, delta, symbols, num, den):
    weighted = imp.size > 0
    for u in range(units):
        a, q = w[u * size:(u + 1) * size], symbols[u * size:(u + 1) * size]
        c = imp[u * size:(u + 1) * size] if weighted else imp
        total = 0.0
        for j in range(a.size):
            total += abs(np.float64(a[j]))
        cut = delta * total / a.size if a.size else 0.0
        for j in range(a.size):
            x = np.float64(a[j])
            if abs(x) > cut:
                q[j] = 1 if x > 0 else -1
                cj = c[j] if weighted else 1.0
                num[u] += cj * abs(x)
                den[u] += cj


class Ternary(ScaledSigns):
    """The ``ternary`` method (see the module docstring)."""

    name: ClassVar[str] = "ternary"
    code: ClassVar[int] = 24
    mult: ClassVar[np.ndarray] = np.array([-1, 0, 1], dtype=np.float32)
    symbols_lo: ClassVar[int] = -1
    symbols_hi: ClassVar[int] = 1
    options: ClassVar[tuple[Option, ...]] = (
        granularity_option(),
        Option("delta", float, 0.7, "Threshold (x mean|w|)", "weights with |w| above this "
               "times the unit's mean |w| keep their sign, the others become 0 (TWN: 0.7)",
               lo=0.0, hi=100.0),
        Option("entropy", str, "auto", "Entropy coder", "coder of the levels; auto: the "
               "smallest", choices=ENTROPY_CHOICES),
    )

    def fit_units(self, layer: FitLayer, options: Options, geometry: tuple[int, int],
                  symbols: np.ndarray, num: np.ndarray, den: np.ndarray) -> None:
        imp = np.empty(0) if layer.imp is None else layer.imp
        _fit(layer.w, imp, geometry[0], geometry[1], float(options["delta"]), symbols, num,
             den)


registry.register_method(Ternary())
