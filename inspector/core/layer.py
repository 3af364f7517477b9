"""One layer through the whole pipeline, with caches so a slider move costs only what changed.

``LayerCodec.plan`` gives the exact byte counts of every part without building streams;
``LayerCodec.encode`` builds the payload from the same plan, so the two always agree.

Payload layout (all little-endian, bit streams MSB-first):
``codebook (K x float32 or float16) | weight table? | position table? | weight codes |
position codes`` (docs/format.md). Positions are coded as ``positions.py`` says.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inspector.core import fidelity, kernels, positions
from inspector.core.candidates import CandidateCache
from inspector.core.cluster import Clustering, Points, kmeans
from inspector.core.codebook import codebook_bytes, coded_nbytes, half_codebook
from inspector.core.decode import Layout, decode_payload, decode_symbols
from inspector.core.positions import BITMAP, DENSE, GAPS, HOLES
from inspector.core.prune import Mask, Profile, profile, resolve_mask
from inspector.core.settings import LayerSettings
from inspector.core.streams import StreamPlan, encode_stream, fixed_width, plan_stream
from inspector.errors import SettingsError

__all__ = ["LayerCodec", "LayerPlan", "Layout", "decode_payload", "decode_symbols"]

GRID_BINS = 1 << 16  # the finest grid, for layers of at least this many weights
MIN_GRID_BINS = 64
EXACT_SURVIVORS = 4096  # at or below this, k-means runs on the exact distinct values


def grid_bins(size: int) -> int:
    """Fine-grid bins of a ``size``-weight layer: a power of two >= ``size``, up to GRID_BINS.

    Never more bins than weights (rounded up): a layer's fixed state (its histograms and
    cluster tables) stays proportional to the layer, so a model of many small tensors needs
    memory in proportion to its bytes, not to its count of tensors.
    """
    return min(GRID_BINS, max(MIN_GRID_BINS, 1 << max(0, int(size) - 1).bit_length()))


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """Everything about one compressed layer except its streams; all sizes exact."""

    settings: LayerSettings
    size: int
    mask: Mask
    survivors: int
    fillers: int
    codebook: np.ndarray
    cluster_counts: np.ndarray
    weights: StreamPlan
    gaps: StreamPlan
    sse: float
    sumsq: float
    survivor_sumsq: float
    positions: int = GAPS
    codebook_half: bool = False
    codebook_coded_nbytes: int = -1  # bytes of the delta-coded codebook, -1 if not coded
    requested: LayerSettings | None = None  # what was asked, when a floor changed it

    @property
    def asked(self) -> LayerSettings:
        """The settings this plan was asked for (``settings`` is what they resolved to)."""
        return self.requested or self.settings

    @property
    def error_sse(self) -> float:
        """Squared error of the whole layer: pruned weights' energy plus quantization error."""
        return max(self.sumsq - self.survivor_sumsq, 0.0) + self.sse

    @property
    def sqnr_db(self) -> float:
        """Signal-to-noise ratio of the decoded layer in dB (inf when exact, nan if unknown)."""
        noise = self.error_sse
        if math.isnan(noise) or noise <= 0 or self.sumsq <= 0:
            return math.nan if math.isnan(noise) else math.inf
        return 10.0 * math.log10(self.sumsq / noise)

    @property
    def relative_error(self) -> float:
        """||w - decoded|| / ||w||."""
        return math.sqrt(self.error_sse / self.sumsq) if self.sumsq > 0 else 0.0

    @property
    def codebook_coded(self) -> bool:
        return self.codebook_coded_nbytes >= 0

    @property
    def codebook_nbytes(self) -> int:
        if self.codebook_coded:
            return self.codebook_coded_nbytes
        return (2 if self.codebook_half else 4) * int(self.codebook.size)

    @property
    def table_nbytes(self) -> int:
        return self.weights.table_nbytes + self.gaps.table_nbytes

    @property
    def payload_nbytes(self) -> int:
        return self.codebook_nbytes + self.weights.nbytes + self.gaps.nbytes

    @property
    def layout(self) -> Layout:
        return Layout(
            size=self.size,
            codebook_size=int(self.codebook.size),
            has_filler=self.fillers > 0,
            index_bits=self.settings.index_bits,
            entries=self.survivors + self.fillers,
            weight_huffman=self.weights.huffman,
            gap_huffman=self.gaps.huffman,
            weight_nbytes=self.weights.code_nbytes,
            weight_constant=self.weights.constant,
            gap_constant=self.gaps.constant,
            positions=self.positions,
            position_entries=self.gaps.count if self.positions == HOLES else 0,
            codebook_half=self.codebook_half,
            codebook_coded=self.codebook_coded,
        )


@dataclass(frozen=True, slots=True)
class Survivors:
    gaps: np.ndarray
    points: Points
    bins: np.ndarray | None  # nonempty fine-grid bins (grid mode), else None
    values: np.ndarray | None  # exact distinct values (exact mode), else None


class _Lru:
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = make()
        self._items[key] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return value


class LayerCodec:
    """Compress one weight tensor; caches survivors, clusterings and gap histograms.

    Not thread-safe: use one codec from one worker at a time.
    """

    # the position codes a plan may choose from (GAPS always); tests narrow it per codec
    position_codes: tuple[int, ...] = (GAPS, BITMAP, DENSE, HOLES)

    def __init__(self, weights: np.ndarray) -> None:
        w = np.asarray(weights)
        if w.dtype not in (np.float32, np.float64):
            w = w.astype(np.float32)
        self.shape: tuple[int, ...] = tuple(w.shape)
        self.weights = np.ascontiguousarray(w).reshape(-1)
        self.profile: Profile = profile(self.weights)
        span = self.profile.hi - self.profile.lo
        self._lo = self.profile.lo
        self._bins = grid_bins(self.weights.size)
        self._inv_width = self._bins / span if span > 0 else 0.0
        self._full = [np.zeros(self._bins, np.int64), np.zeros(self._bins), np.zeros(self._bins)]
        if not self.profile.nonfinite:
            kernels.grid_histogram(self.weights, self._lo, self._inv_width, *self._full)
        # Weights within ``band`` of a threshold take the exact path of survivor_gaps.
        self._band = 3.0 / self._inv_width if self._inv_width > 0 else np.inf
        self._candidates = CandidateCache(self.weights, self.profile)
        self._survivors = _Lru(2)
        self._clusters = _Lru(4)
        self._gap_counts = _Lru(4)
        self._fitted = _Lru(8)
        self._energy: fidelity.EnergyOrder | None = None
        self._plans = _Lru(4)

    def histogram(self, nbins: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges and counts of all weights on ``nbins`` (a power of two), or on the fine
        grid when it has fewer bins (a small layer)."""
        nbins = min(nbins, self._bins)
        counts = self._full[0].reshape(nbins, -1).sum(axis=1)
        span = self.profile.hi - self.profile.lo
        edges = self.profile.lo + span * np.arange(nbins + 1) / nbins
        return edges, counts

    def mask(self, settings: LayerSettings) -> Mask:
        """The exact mask rule of ``settings`` for this layer."""
        self._check_finite()
        return resolve_mask(self.weights, self.profile, self.fitted(settings), self._above)

    def fitted(self, settings: LayerSettings) -> LayerSettings:
        """``settings`` with its fidelity floor resolved to plain pruning settings."""
        if settings.min_sqnr is None:
            return settings
        self._check_finite()
        return self._fitted.get(settings, lambda: self._fit(settings))

    def _fit(self, settings: LayerSettings) -> LayerSettings:
        if self._energy is None:
            self._energy = fidelity.energy_order(*self._full)

        def exact(s: LayerSettings) -> tuple[float, int]:
            plan = self.plan(s)
            return plan.error_sse, plan.size - plan.survivors, plan.payload_nbytes

        # Conv kernels (output channel first): no channel may lose more than the floor allows.
        channels = self.weights.reshape(self.shape[0], -1) if len(self.shape) >= 3 else None
        return fidelity.fit_floor(self._energy, settings, exact, channels)

    def _above(self, floor: float) -> np.ndarray:
        # A sparsity slider asks for the candidates of its bin and then selects the survivors
        # from the same list, so one pass serves both (and the moves of a drag that follow).
        return self._candidates.get(floor - self._band).mag

    def plan(self, settings: LayerSettings) -> LayerPlan:
        """Exact sizes of this layer under ``settings`` (nothing is encoded)."""
        return self._plans.get(settings, lambda: self._make_plan(settings))

    def _make_plan(self, settings: LayerSettings) -> LayerPlan:
        asked, settings = settings, self.fitted(settings)
        mask = self.mask(settings)
        surv = self._survivors.get(mask, lambda: self._select(mask))
        gap_counts, fillers = self._gaps(mask, surv, settings.index_bits)
        gaps = plan_stream(gap_counts, settings.index_bits, settings.huffman)
        best = self._plan_with(settings, mask, surv, fillers, GAPS, gaps)
        for option in self._position_options(best, surv):
            if option.payload_nbytes < best.payload_nbytes:
                best = option
        return best if asked == settings else replace(best, requested=asked)

    def _position_options(self, best: LayerPlan, surv: Survivors) -> Iterator[LayerPlan]:
        """Plans coding the positions apart from the weights, where they may be smaller.

        Their codebook and weights (no fillers) are the same for BITMAP and HOLES: with them,
        a bitmap's size is exact and a HOLES stream's least possible size (a bit per hole)
        bounds it, so the O(size) pass over the holes runs only where it may win.
        """
        s, size, n = best.settings, best.size, best.survivors
        allowed = self.position_codes
        if n == size:
            if DENSE in allowed:
                yield self._plan_with(s, best.mask, surv, 0, DENSE, positions.plan_dense())
            return
        least = (min(size, size - n) + 7) // 8
        if not best.fillers:  # then the codebook and weights are those of ``best``
            least += best.weights.nbytes + best.codebook_nbytes
        if least >= best.payload_nbytes or not {BITMAP, HOLES} & set(allowed):
            return
        bitmap = self._plan_with(s, best.mask, surv, 0, BITMAP, positions.plan_bitmap(size))
        if BITMAP in allowed:
            yield bitmap
        fixed = bitmap.codebook_nbytes + bitmap.weights.nbytes
        if HOLES in allowed and fixed + (size - n + 7) // 8 < best.payload_nbytes:
            holes = positions.plan_holes(surv.gaps, size, s.index_bits, s.huffman)
            yield self._plan_with(s, best.mask, surv, 0, HOLES, holes)

    def _plan_with(
        self, settings: LayerSettings, mask: Mask, surv: Survivors, fillers: int, mode: int,
        gaps: StreamPlan,
    ) -> LayerPlan:
        clustering, _ = self._cluster(mask, surv, settings, fillers)
        k = clustering.size
        weight_counts = np.zeros(k + (fillers > 0), dtype=np.int64)
        if k:
            weight_counts[:k] = np.add.reduceat(surv.points.cnt, clustering.starts)
        if fillers:
            weight_counts[k] = fillers
        weights = plan_stream(weight_counts, fixed_width(weight_counts.size), settings.huffman)
        survivor_sumsq = float(surv.points.s2.sum())
        pruned_sse = self.profile.sumsq - survivor_sumsq
        codebook, sse, half = half_codebook(clustering, surv.points, pruned_sse)
        coded = coded_nbytes(codebook) if half else -1
        coded = coded if coded < 2 * codebook.size else -1
        return LayerPlan(
            settings=settings,
            size=self.weights.size,
            mask=mask,
            survivors=int(surv.gaps.size),
            fillers=fillers,
            codebook=codebook,
            cluster_counts=weight_counts[:k],
            weights=weights,
            gaps=gaps,
            sse=sse,
            sumsq=self.profile.sumsq,
            survivor_sumsq=survivor_sumsq,
            positions=mode,
            codebook_half=half,
            codebook_coded_nbytes=coded,
        )

    def encode(self, settings: LayerSettings) -> tuple[LayerPlan, bytes]:
        """The plan and the payload bytes; ``len(payload) == plan.payload_nbytes``."""
        plan = self.plan(settings)
        wsym, gsym = self._symbols(plan)
        wtable, wcode = encode_stream(wsym, plan.weights)
        if plan.positions == BITMAP:
            gtable, gcode = b"", positions.bitmap_bytes(self._kept(plan), plan.size)
        else:
            gtable, gcode = encode_stream(gsym, plan.gaps)
        cb = codebook_bytes(plan.codebook, plan.codebook_half, plan.codebook_coded)
        payload = b"".join([cb, wtable, gtable, wcode, gcode])
        assert len(payload) == plan.payload_nbytes, "size accounting disagrees with the writer"
        return plan, payload

    def quantized(self, settings: LayerSettings) -> np.ndarray:
        """The pruned and quantized weights (float32, layer shape), exactly as decoded."""
        plan = self.plan(settings)
        wsym, gsym = self._symbols(plan)
        out = np.zeros(self.weights.size, dtype=np.float32)
        if plan.positions == GAPS:
            filler = plan.codebook.size if plan.fillers else -1
            kernels.scatter_entries(
                wsym, gsym, plan.codebook, filler, plan.settings.index_bits, out)
        else:
            out[self._kept(plan)] = plan.codebook[wsym]
        return out.reshape(self.shape)

    def _check_finite(self) -> None:
        if self.profile.nonfinite:
            raise SettingsError(
                f"{self.profile.nonfinite} weight(s) are NaN or infinite; such a layer can only "
                "be stored losslessly (exclude it)"
            )

    def _select(self, mask: Mask) -> Survivors:
        w = self.weights
        t = mask.threshold
        band = self._band
        cand = self._candidates.get(t - band)
        edge = np.array([self._bin(-t), self._bin(t)], dtype=np.int64)
        part = [np.zeros(2, np.int64), np.zeros(2), np.zeros(2)]
        # The candidates at or above t (the cached list may reach lower), into a new array:
        # the kernel overwrites them with gaps, and the cache must stay.
        gaps = np.empty(cand.idx.size, dtype=cand.idx.dtype)
        n = int(kernels.at_least(cand.idx, cand.mag, cand.idx.size, t, gaps))
        ns = kernels.survivor_gaps(
            w, gaps, n, t, mask.ties, t + band, self._lo, self._inv_width, self._bins, edge, *part
        )
        gaps = gaps[:ns]
        if ns <= EXACT_SURVIVORS:
            pos = np.cumsum(gaps, dtype=np.int64) - 1
            values, counts = np.unique(w[pos].astype(np.float64), return_counts=True)
            points = Points(counts.astype(np.int64), values * counts, values * values * counts)
            return Survivors(gaps, points, None, values)
        cnt, s1, s2 = (a.copy() for a in self._full)
        # Bins strictly between those of -t and t hold only pruned weights. A threshold that
        # prunes nothing by value (all weights above t, or all below -t) is clipped to an end
        # bin full of survivors that ``part`` never summed: leave the histogram alone then.
        if t >= max(0.0, self._lo) and -t <= self.profile.hi:
            lo, hi = int(edge[0]), int(edge[1])
            for a, p in zip((cnt, s1, s2), part, strict=True):
                a[lo : hi + 1] = 0
                a[lo] += p[0]
                if hi != lo:
                    a[hi] += p[1]
        bins = np.flatnonzero(cnt)
        return Survivors(gaps, Points(cnt[bins], s1[bins], s2[bins]), bins, None)

    def _bin(self, x: float) -> int:
        if not np.isfinite(x):
            return 0 if x < 0 else self._bins - 1
        return int(kernels.grid_bin(x, self._lo, self._inv_width, self._bins))

    def _cluster(
        self, mask: Mask, surv: Survivors, s: LayerSettings, fillers: int
    ) -> tuple[Clustering, tuple[np.ndarray, np.ndarray]]:
        # Fillers need a weight code that decodes to zero: like the paper's codebook entry 0,
        # it takes one of the 2**bits codes, so the weight codes stay ``bits`` wide.
        k = s.clusters - (fillers > 0) if s.clusters > 1 else 1
        seed = s.seed if s.init == "random" else 0
        key = (mask, k, s.init, seed)
        return self._clusters.get(key, lambda: self._make_clustering(surv, k, s.init, seed))

    def _make_clustering(
        self, surv: Survivors, k: int, init: str, seed: int
    ) -> tuple[Clustering, tuple[np.ndarray, np.ndarray]]:
        clustering = kmeans(surv.points, k, init, seed)
        labels = clustering.point_labels(surv.points.size)
        if surv.bins is None:
            cuts = surv.values[clustering.starts[1:]] if surv.values is not None else np.zeros(0)
            return clustering, (np.zeros(0, np.uint16), np.ascontiguousarray(cuts, np.float64))
        lut = np.zeros(self._bins, dtype=np.uint16)
        lut[surv.bins] = labels
        np.maximum.accumulate(lut, out=lut)
        return clustering, (lut, np.zeros(0))

    def _gaps(self, mask: Mask, surv: Survivors, index_bits: int) -> tuple[np.ndarray, int]:
        def make() -> tuple[np.ndarray, int]:
            counts = np.zeros(1 << index_bits, dtype=np.int64)
            fillers = kernels.gap_code_counts(surv.gaps, self._tail(surv), index_bits, counts)
            return counts, int(fillers)

        if (1 << index_bits) > 4 * self.weights.size:  # a small layer, a wide gap code: so
            return make()  # cheap to count again that keeping 2**bits counts would dominate
        return self._gap_counts.get((mask, index_bits), make)

    def _tail(self, surv: Survivors) -> int:
        """Positions after the last survivor."""
        return self.weights.size - int(surv.gaps.sum(dtype=np.int64))

    def _kept(self, plan: LayerPlan) -> np.ndarray:
        surv = self._survivors.get(plan.mask, lambda: self._select(plan.mask))
        return positions.kept_positions(surv.gaps)

    def _symbols(self, plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
        """Weight and gap symbols of the entries; without GAPS, the weight symbol of each kept
        weight (no fillers) and the position stream's symbols (HOLES only)."""
        s = plan.settings
        surv = self._survivors.get(plan.mask, lambda: self._select(plan.mask))
        _, (lut, cuts) = self._cluster(plan.mask, surv, s, plan.fillers)
        fillers = plan.fillers if plan.positions == GAPS else self._gaps(
            plan.mask, surv, s.index_bits)[1]
        n = plan.survivors + fillers
        wsym = np.empty(n, dtype=np.uint32)
        gsym = np.empty(n, dtype=np.uint32)
        kernels.entry_symbols(
            self.weights, surv.gaps, self._tail(surv), lut, cuts, self._lo, self._inv_width,
            s.index_bits, plan.codebook.size, wsym, gsym,
        )
        if plan.positions == GAPS:
            return wsym, gsym
        wsym = wsym[wsym < plan.codebook.size] if fillers else wsym
        if plan.positions == HOLES:
            holes = positions.holes_of(positions.kept_positions(surv.gaps), plan.size)
            return wsym, positions.hole_symbols(holes, s.index_bits)
        return wsym, np.zeros(0, np.uint32)
