"""1-D k-means: the optimal quantizer is optimal, Lloyd never makes NaN, results are stable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core import cluster
from inspector.core import reference as ref
from inspector.core.kernels import TIES_ALL
from inspector.core.layer import EXACT_SURVIVORS, LayerCodec
from inspector.core.prune import Mask
from inspector.core.settings import INITS, LayerSettings

SLOW = settings(deadline=None, max_examples=80)


def points_of(values: np.ndarray) -> cluster.Points:
    """Exact distinct values with their counts, as LayerCodec's exact mode builds them."""
    vals, counts = np.unique(np.asarray(values, np.float64), return_counts=True)
    counts = counts.astype(np.int64)
    return cluster.Points(counts, vals * counts, vals * vals * counts)


def kept(w: np.ndarray, mask: Mask) -> np.ndarray:
    """The weights a mask keeps, by the rule stated in kernels.py."""
    a = np.abs(w.astype(np.float64))
    tie = a == mask.threshold
    pruned = (a < mask.threshold) | (tie & (np.cumsum(tie) <= mask.ties))
    return w.astype(np.float64)[~pruned]


def decoded_sse(codec: LayerCodec, s: LayerSettings) -> tuple[float, np.ndarray]:
    """SSE of the survivors against their decoded values, and the survivors."""
    plan = codec.plan(s)
    w = codec.weights.astype(np.float64)
    a = np.abs(w)
    tie = a == plan.mask.threshold
    limit = TIES_ALL if plan.mask.ties == TIES_ALL else plan.mask.ties
    keep = ~((a < plan.mask.threshold) | (tie & (np.cumsum(tie) <= limit)))
    q = codec.quantized(s).reshape(-1).astype(np.float64)
    return float(np.sum((w[keep] - q[keep]) ** 2)), w[keep]


def tolerance(values: np.ndarray) -> float:
    """Absolute slack for a zero optimum: float32 rounding of the codebook."""
    return 1e-12 * float(np.sum(values * values)) + 1e-30


@st.composite
def small_values(draw: st.DrawFn) -> np.ndarray:
    """Up to 200 values with duplicates, of mixed sign and scale."""
    n = draw(st.integers(1, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["gauss", "rounded", "few", "pruned"]))
    scale = draw(st.sampled_from([1e-3, 0.05, 1.0, 100.0]))
    v = rng.normal(0, scale, n)
    if kind == "rounded":
        v = np.round(v / scale, 1) * scale
    elif kind == "few":
        v = rng.choice(rng.normal(0, scale, draw(st.integers(1, 5))), n)
    elif kind == "pruned":  # a hole around zero, as pruning leaves
        v = v[np.abs(v) > 0.8 * scale]
        if v.size == 0:
            v = np.array([scale])
    return v


@SLOW
@given(small_values(), st.integers(1, 16))
def test_optimal_init_is_within_a_tenth_percent_of_exact(v: np.ndarray, k: int) -> None:
    c = cluster.kmeans(points_of(v), k, "optimal")
    best = ref.optimal_sse_ref(v, k)
    assert c.sse <= best * 1.001 + tolerance(v)
    assert c.size <= min(k, np.unique(v).size)
    assert np.all(np.isfinite(c.codebook))
    assert np.all(np.diff(c.codebook) >= 0)


@pytest.mark.parametrize("bits", [4, 5])
def test_optimal_on_a_20k_survivor_gaussian_layer(bits: int) -> None:
    w = np.random.default_rng(bits).normal(0, 0.05, 40_000).astype(np.float32)
    codec = LayerCodec(w)
    # index bits 16: no fillers, so k-means gets all 2**bits clusters
    s = LayerSettings(policy="sparsity", value=0.5, bits=bits, index_bits=16)
    plan = codec.plan(s)
    assert plan.survivors == 20_000 > EXACT_SURVIVORS  # the fine-grid path
    assert plan.fillers == 0
    sse, survivors = decoded_sse(codec, s)
    pts = points_of(survivors)
    best = ref.partition_sse_ref(pts.cnt, pts.s1, pts.s2, cluster.optimal_starts(pts, 1 << bits))
    assert sse <= best * 1.001
    assert plan.sse == pytest.approx(sse, rel=1e-6)


@pytest.mark.parametrize("init", ["linear", "density", "random"])
@pytest.mark.parametrize("n", [2_000, 60_000])  # exact mode, fine-grid mode
def test_pruned_layer_never_nan_and_dead_centroids_dropped(init: str, n: int) -> None:
    w = np.random.default_rng(1).normal(0, 0.05, n).astype(np.float32)
    codec = LayerCodec(w)
    s = LayerSettings(policy="sparsity", value=0.9, bits=6, init=init, index_bits=8)
    plan = codec.plan(s)
    assert np.all(np.isfinite(plan.codebook))
    assert np.all(np.diff(plan.codebook) > 0)
    if init == "linear":  # centroids in the pruned hole around zero die
        assert plan.codebook.size < s.clusters - (plan.fillers > 0)
    q = codec.quantized(s)
    assert np.all(np.isfinite(q))
    used = np.unique(q[q != 0])
    assert set(used.tolist()) <= set(plan.codebook.tolist())


def test_lloyd_linear_dead_centroids_are_dropped_directly() -> None:
    v = np.concatenate([np.linspace(-1, -0.5, 50), np.linspace(0.5, 1, 50)])
    c = cluster.kmeans(points_of(v), 16, "linear")
    assert c.size < 16
    assert np.all(np.isfinite(c.codebook)) and np.all(np.diff(c.codebook) > 0)
    assert not np.any((c.codebook > -0.5) & (c.codebook < 0.5))
    assert c.starts[0] == 0 and np.all(np.diff(c.starts) > 0)


@pytest.mark.parametrize("init", INITS)
def test_fewer_points_than_clusters(init: str) -> None:
    v = np.array([0.3, -0.2, 0.3, 5.0])
    c = cluster.kmeans(points_of(v), 8, init, seed=3)
    assert c.size <= 3
    assert np.all(np.isfinite(c.codebook))
    assert c.sse >= 0


def test_empty_points() -> None:
    empty = cluster.Points(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    c = cluster.kmeans(empty, 4)
    assert c.size == 0 and c.sse == 0.0


def test_random_init_is_deterministic_per_seed() -> None:
    w = np.random.default_rng(5).normal(0, 0.05, 8_000).astype(np.float32)
    books = []
    for seed in range(6):
        s = LayerSettings(policy="sparsity", value=0.5, bits=3, init="random", seed=seed)
        a = LayerCodec(w).plan(s).codebook
        b = LayerCodec(w).plan(s).codebook
        np.testing.assert_array_equal(a, b)
        books.append(a.tobytes())
    assert len(set(books)) > 1  # different seeds reach different local optima


@pytest.mark.parametrize("init", INITS)
def test_codebook_sorted_ascending(init: str) -> None:
    rng = np.random.default_rng(9)
    for n in (300, 20_000):
        w = rng.laplace(0, 0.05, n).astype(np.float32)
        for bits in (1, 3, 8):
            plan = LayerCodec(w).plan(
                LayerSettings(policy="sparsity", value=0.7, bits=bits, init=init)
            )
            assert np.all(np.diff(plan.codebook.astype(np.float64)) >= 0)
            assert plan.codebook.dtype == np.float32


def test_point_labels_match_starts() -> None:
    c = cluster.kmeans(points_of(np.array([1.0, 2.0, 10.0, 11.0, 20.0])), 3)
    np.testing.assert_array_equal(c.point_labels(5), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(c.codebook, np.float32([1.5, 10.5, 20.0]))
