"""One layer through the whole pipeline, with caches so a slider move costs only what changed.

``LayerCodec.plan`` gives the exact byte counts of every part without building streams;
``LayerCodec.encode`` builds the payload from the same plan, so the two always agree.

Payload layout (all little-endian, bit streams MSB-first):
``codebook (K x float32) | weight table? | gap table? | weight codes | gap codes``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.core import fidelity, huffman_table, kernels
from inspector.core.candidates import CandidateCache
from inspector.core.cluster import Clustering, Points, kmeans
from inspector.core.prune import Mask, Profile, profile, resolve_mask
from inspector.core.settings import LayerSettings
from inspector.core.streams import (
    StreamPlan,
    decode_stream,
    encode_stream,
    fixed_width,
    plan_stream,
)
from inspector.errors import SettingsError

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

    @property
    def filler(self) -> int:
        return self.codebook_size


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
    def codebook_nbytes(self) -> int:
        return 4 * int(self.codebook.size)

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
        clustering, _ = self._cluster(mask, surv, settings, fillers)
        k = clustering.size
        weight_counts = np.zeros(k + (fillers > 0), dtype=np.int64)
        if k:
            weight_counts[:k] = np.add.reduceat(surv.points.cnt, clustering.starts)
        if fillers:
            weight_counts[k] = fillers
        weights = plan_stream(weight_counts, fixed_width(weight_counts.size), settings.huffman)
        gaps = plan_stream(gap_counts, settings.index_bits, settings.huffman)
        return LayerPlan(
            settings=settings,
            size=self.weights.size,
            mask=mask,
            survivors=int(surv.gaps.size),
            fillers=fillers,
            codebook=clustering.codebook,
            cluster_counts=weight_counts[:k],
            weights=weights,
            gaps=gaps,
            sse=clustering.sse,
            sumsq=self.profile.sumsq,
            survivor_sumsq=float(surv.points.s2.sum()),
            requested=asked if asked != settings else None,
        )

    def encode(self, settings: LayerSettings) -> tuple[LayerPlan, bytes]:
        """The plan and the payload bytes; ``len(payload) == plan.payload_nbytes``."""
        plan = self.plan(settings)
        wsym, gsym = self._symbols(plan)
        parts = [plan.codebook.astype("<f4").tobytes()]
        wtable, wcode = encode_stream(wsym, plan.weights)
        gtable, gcode = encode_stream(gsym, plan.gaps)
        payload = b"".join([*parts, wtable, gtable, wcode, gcode])
        assert len(payload) == plan.payload_nbytes, "size accounting disagrees with the writer"
        return plan, payload

    def quantized(self, settings: LayerSettings) -> np.ndarray:
        """The pruned and quantized weights (float32, layer shape), exactly as decoded."""
        plan = self.plan(settings)
        wsym, gsym = self._symbols(plan)
        filler = plan.codebook.size if plan.fillers else -1
        out = np.zeros(self.weights.size, dtype=np.float32)
        kernels.scatter_entries(wsym, gsym, plan.codebook, filler, plan.settings.index_bits, out)
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

    def _symbols(self, plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
        s = plan.settings
        surv = self._survivors.get(plan.mask, lambda: self._select(plan.mask))
        _, (lut, cuts) = self._cluster(plan.mask, surv, s, plan.fillers)
        n = plan.survivors + plan.fillers
        wsym = np.empty(n, dtype=np.uint32)
        gsym = np.empty(n, dtype=np.uint32)
        kernels.entry_symbols(
            self.weights, surv.gaps, self._tail(surv), lut, cuts, self._lo, self._inv_width,
            s.index_bits, plan.codebook.size, wsym, gsym,
        )
        return wsym, gsym


def decode_symbols(
    payload: bytes | memoryview, layout: Layout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The codebook and the weight-index and gap-code symbols of a payload (ValueError if bad)."""
    buf = memoryview(payload)
    k = layout.codebook_size
    if 4 * k > len(buf):
        raise ValueError("codebook runs past the end of the layer")
    codebook = np.frombuffer(buf[: 4 * k], dtype="<f4").astype(np.float32)
    offset = 4 * k
    walpha = k + layout.has_filler
    wlengths = glengths = None
    if layout.weight_huffman:
        wlengths, offset = huffman_table.decode_table(buf, offset)
        if wlengths.size > walpha:
            raise ValueError("weight code table is larger than the codebook")
    if layout.gap_huffman:
        glengths, offset = huffman_table.decode_table(buf, offset)
        if glengths.size > (1 << layout.index_bits):
            raise ValueError("gap code table is larger than the index alphabet")
    gap_offset = offset + layout.weight_nbytes
    if gap_offset > len(buf):
        raise ValueError("weight codes run past the end of the layer")
    n = layout.entries
    wsym = decode_stream(buf[:gap_offset], offset, n, fixed_width(walpha), wlengths)
    gsym = decode_stream(buf, gap_offset, n, layout.index_bits, glengths)
    return codebook, wsym, gsym


def decode_payload(payload: bytes | memoryview, layout: Layout) -> np.ndarray:
    """The flat float32 weights of a payload (ValueError on any inconsistency)."""
    codebook, wsym, gsym = decode_symbols(payload, layout)
    out = np.zeros(layout.size, dtype=np.float32)
    filler = layout.codebook_size if layout.has_filler else -1
    bad = kernels.scatter_entries(wsym, gsym, codebook, filler, layout.index_bits, out)
    if bad:
        raise ValueError(f"entry {-bad - 1} of the sparse index is inconsistent")
    return out
