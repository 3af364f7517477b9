"""The candidates of a prune threshold: every position whose magnitude may survive it.

One compaction pass over a layer finds them; the list is kept with the magnitudes, so the moves
of a threshold drag that follow read the (much shorter) list instead of the layer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from inspector.core import kernels
from inspector.core.prune import Profile

PARALLEL_SIZE = 1 << 21  # layers this large are compacted on two threads
# A fresh list reaches this fraction further down (in count), so a drag's next moves reuse it;
# one more than twice as long as needed is not reused (scanning it would cost more).
CANDIDATE_MARGIN = 0.25
MIN_CANDIDATES = 4096
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """The two worker threads of large layers' passes, made on first use."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(2, thread_name_prefix="inspector-kernel"))
    return _POOL[0]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Positions (ascending) with ``|w| >= floor``, and their ``|w|`` in the weights' dtype."""

    floor: float
    idx: np.ndarray
    mag: np.ndarray


class CandidateCache:
    """The last candidate list of one layer's flat weights, reused while it serves."""

    def __init__(self, weights: np.ndarray, profile: Profile) -> None:
        self.weights = weights
        self.profile = profile
        self._last: Candidates | None = None

    def get(self, floor: float) -> Candidates:
        """A list including every position with ``|w| >= floor``: the cached one of a lower
        floor while it is not much longer, else a fresh one reaching a little lower."""
        last = self._last
        if last is not None and last.floor <= floor and last.idx.size <= self._reuse_limit(floor):
            return last
        floor = self._lowered(floor)
        w = self.weights
        idx = np.empty(w.size, dtype=np.int32 if w.size < 2**31 else np.int64)
        mag = np.empty(w.size, dtype=w.dtype)

        def part(lo: int, hi: int) -> int:
            return int(kernels.candidate_magnitudes(w[lo:hi], floor, idx[lo:hi], mag[lo:hi]))

        if w.size < PARALLEL_SIZE:
            n = part(0, w.size)
        else:  # the kernel releases the GIL
            half = w.size // 2
            n0, n1 = _pool().map(lambda lo_hi: part(*lo_hi), [(0, half), (half, w.size)])
            idx[n0 : n0 + n1] = idx[half : half + n1] + half
            mag[n0 : n0 + n1] = mag[half : half + n1]
            n = n0 + n1
        # Keep survivor-sized lists, not layer-sized buffers.
        self._last = Candidates(floor, idx[:n].copy(), mag[:n].copy())
        return self._last

    def _count_above(self, floor: float) -> int:
        """At least the count of weights with ``|w| >= floor`` (whole magnitude bins)."""
        prof = self.profile
        if not floor > 0 or prof.abs_scale <= 0:
            return prof.size
        x = floor * prof.abs_scale
        b = prof.abs_cum.size if x >= prof.abs_cum.size else int(x)
        return prof.size - (int(prof.abs_cum[b - 1]) if b else 0)

    def _reuse_limit(self, floor: float) -> int:
        """The most candidates worth scanning for ``floor`` instead of a fresh pass."""
        return int(self._count_above(floor) * (1 + 2 * CANDIDATE_MARGIN)) + MIN_CANDIDATES

    def _lowered(self, floor: float) -> float:
        """A floor below ``floor`` by about CANDIDATE_MARGIN more candidates."""
        prof = self.profile
        if not floor > 0 or prof.abs_scale <= 0:
            return floor
        want = int(self._count_above(floor) * (1 + CANDIDATE_MARGIN)) + MIN_CANDIDATES // 2
        if want >= prof.size:
            return -np.inf
        edge = int(np.searchsorted(prof.abs_cum, prof.size - want, side="right"))
        return min(floor, edge / prof.abs_scale)
