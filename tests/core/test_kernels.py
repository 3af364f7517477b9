"""Every numba kernel equals its plain-numpy twin in ``inspector.core.reference``."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.core import cluster, kernels
from inspector.core import reference as ref

SLOW = settings(deadline=None, max_examples=60)
NBINS = 64  # a coarse grid, so many values share bins and fall on bin edges


@st.composite
def weights(draw: st.DrawFn, max_size: int = 300, finite: bool = True) -> np.ndarray:
    """Flat float32/float64 weights: a few distinct values (many ties), Gaussian, or anything."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(0, max_size))
    mode = draw(st.sampled_from(["few", "gauss", "any"]))
    if mode == "few":
        mags = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 3.0]), min_size=1))
        pool = sorted({m * s for m in mags for s in (1.0, -1.0)})
        return draw(hnp.arrays(dtype, n, elements=st.sampled_from(pool)))
    if mode == "gauss":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        w = rng.normal(scale=draw(st.sampled_from([1e-3, 0.05, 1.0])), size=n).astype(dtype)
        w[rng.random(n) < draw(st.floats(0, 0.9))] = 0
        return w
    width = 32 if dtype == np.float32 else 64
    elements = st.floats(-2.0**100, 2.0**100, width=width, allow_subnormal=False)
    if not finite:
        elements = st.one_of(elements, st.sampled_from([np.nan, np.inf, -np.inf]))
    return draw(hnp.arrays(dtype, n, elements=elements))


def grid_of(w: np.ndarray) -> tuple[float, float]:
    """(lo, inv_width) of a fine grid of ``NBINS`` bins over ``w``, as LayerCodec builds it."""
    if w.size == 0:
        return 0.0, 0.0
    lo, hi = float(w.min()), float(w.max())
    return lo, (NBINS / (hi - lo) if hi > lo else 0.0)


def abs_scale_of(w: np.ndarray) -> float:
    absmax = float(np.abs(w.astype(np.float64)).max()) if w.size else 0.0
    return NBINS / absmax if absmax > 0 else 0.0


def a_threshold(draw: st.DrawFn, w: np.ndarray) -> float:
    """A threshold: one of the magnitudes (ties), 0, or anything."""
    mags = np.abs(w.astype(np.float64))
    choices = [st.just(0.0), st.floats(0, 10)]
    if w.size:
        choices.append(st.sampled_from(sorted(set(mags.tolist()))))
    return draw(st.one_of(choices))


@SLOW
@given(weights(finite=False))
def test_weight_moments(w: np.ndarray) -> None:
    assert kernels.weight_moments(w) == ref.weight_moments_ref(w)


def test_weight_moments_empty() -> None:
    for dtype in (np.float32, np.float64):
        assert kernels.weight_moments(np.zeros(0, dtype)) == (0, 0, 0.0, 0.0, np.inf, -np.inf)


@SLOW
@given(weights(), st.data())
def test_abs_histogram(w: np.ndarray, data: st.DataObject) -> None:
    scale = abs_scale_of(w) * data.draw(st.sampled_from([1.0, 0.0, 0.3, 2.5]))
    counts = np.zeros(NBINS, np.int64)
    kernels.abs_histogram(w, scale, counts)
    np.testing.assert_array_equal(counts, ref.abs_histogram_ref(w, scale, NBINS))
    assert counts.sum() == w.size


@SLOW
@given(weights(), st.integers(0, NBINS - 1))
def test_abs_in_bin(w: np.ndarray, target: int) -> None:
    scale = abs_scale_of(w)
    out = np.empty(w.size, np.float64)
    found = kernels.abs_in_bin(w, scale, NBINS, target, out)
    np.testing.assert_array_equal(out[:found], ref.abs_in_bin_ref(w, scale, NBINS, target))


@SLOW
@given(weights())
def test_grid_histogram(w: np.ndarray) -> None:
    lo, inv_width = grid_of(w)
    cnt, s1, s2 = np.zeros(NBINS, np.int64), np.zeros(NBINS), np.zeros(NBINS)
    kernels.grid_histogram(w, lo, inv_width, cnt, s1, s2)
    rcnt, rs1, rs2 = ref.grid_histogram_ref(w, lo, inv_width, NBINS)
    np.testing.assert_array_equal(cnt, rcnt)
    np.testing.assert_array_equal(s1, rs1)
    np.testing.assert_array_equal(s2, rs2)


@SLOW
@given(weights(), st.data())
def test_candidates(w: np.ndarray, data: st.DataObject) -> None:
    t = a_threshold(data.draw, w)
    out = np.empty(w.size, np.int32)
    n = kernels.candidates(w, t, out)
    np.testing.assert_array_equal(out[:n], ref.candidates_ref(w, t))


@SLOW
@given(weights(), st.data())
def test_candidate_magnitudes(w: np.ndarray, data: st.DataObject) -> None:
    t = a_threshold(data.draw, w)
    out, mag = np.empty(w.size, np.int32), np.empty(w.size, w.dtype)
    n = kernels.candidate_magnitudes(w, t, out, mag)
    idx, ref_mag = ref.candidate_magnitudes_ref(w, t)
    np.testing.assert_array_equal(out[:n], idx)
    np.testing.assert_array_equal(mag[:n], ref_mag)
    assert mag.dtype == w.dtype


@SLOW
@given(weights(), st.data())
def test_at_least(w: np.ndarray, data: st.DataObject) -> None:
    # A candidate list of a lower floor, narrowed to a higher threshold.
    floor, t = sorted((a_threshold(data.draw, w), a_threshold(data.draw, w)))
    idx, mag = ref.candidate_magnitudes_ref(w, floor)
    out = np.empty(idx.size, idx.dtype)
    n = kernels.at_least(idx, mag, idx.size, t, out)
    np.testing.assert_array_equal(out[:n], ref.at_least_ref(idx, mag, t))
    np.testing.assert_array_equal(out[:n], ref.candidates_ref(w, t))


@SLOW
@given(weights(), st.data())
def test_survivor_gaps(w: np.ndarray, data: st.DataObject) -> None:
    t = a_threshold(data.draw, w)
    band = data.draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0, np.inf]))
    m = data.draw(st.one_of(st.integers(0, w.size + 1), st.just(kernels.TIES_ALL)))
    lo, inv_width = grid_of(w)
    edge = np.array(
        [ref.grid_bin_ref(-t, lo, inv_width, NBINS), ref.grid_bin_ref(t, lo, inv_width, NBINS)]
    )
    idx = np.empty(w.size, np.int64)
    n = kernels.candidates(w, t - band, idx)
    candidates = idx[:n].copy()
    part = [np.zeros(2, np.int64), np.zeros(2), np.zeros(2)]
    ns = kernels.survivor_gaps(w, idx, n, t, m, t + band, lo, inv_width, NBINS, edge, *part)
    gaps, cnt, s1, s2 = ref.survivor_gaps_ref(
        w, candidates, t, m, t + band, lo, inv_width, NBINS, edge
    )
    np.testing.assert_array_equal(idx[:ns], gaps)
    np.testing.assert_array_equal(part[0], cnt)
    np.testing.assert_array_equal(part[1], s1)
    np.testing.assert_array_equal(part[2], s2)


def test_survivor_gaps_ties_by_position() -> None:
    w = np.array([0.5, -0.5, 1.0, 0.5, 0.2, -0.5], np.float32)
    for m, kept in [(0, [0, 1, 2, 3, 5]), (2, [2, 3, 5]), (3, [2, 5]), (kernels.TIES_ALL, [2])]:
        idx = np.arange(w.size, dtype=np.int64)
        part = [np.zeros(2, np.int64), np.zeros(2), np.zeros(2)]
        ns = kernels.survivor_gaps(w, idx, w.size, 0.5, m, np.inf, -0.5, 0.0, 1,
                                   np.zeros(2, np.int64), *part)
        np.testing.assert_array_equal(np.cumsum(idx[:ns]) - 1, kept)


@st.composite
def gaps_and_tail(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    b = draw(st.integers(1, 16))
    step = 1 << b
    near = st.sampled_from([1, step - 1, step, step + 1, 2 * step, 2 * step + 1, 3 * step])
    gap = st.one_of(st.integers(1, 3 * step + 2), near.filter(lambda g: g >= 1))
    gaps = draw(st.lists(gap, max_size=50))
    edges = st.sampled_from([step - 1, step, step + 1])
    tail = draw(st.one_of(st.integers(0, 3 * step + 2), edges))
    return np.array(gaps, dtype=np.int32), tail, b


@SLOW
@given(gaps_and_tail())
def test_gap_code_counts(case: tuple[np.ndarray, int, int]) -> None:
    gaps, tail, b = case
    counts = np.zeros(1 << b, np.int64)
    fillers = kernels.gap_code_counts(gaps, tail, b, counts)
    rcounts, rfillers = ref.gap_code_counts_ref(gaps, tail, b)
    assert fillers == rfillers
    np.testing.assert_array_equal(counts, rcounts)
    assert counts.sum() == gaps.size + fillers


@SLOW
@given(weights(max_size=200), st.integers(1, 6), st.booleans(), st.data())
def test_entry_symbols(w: np.ndarray, b: int, use_lut: bool, data: st.DataObject) -> None:
    keep = data.draw(hnp.arrays(np.bool_, w.size))
    pos = np.flatnonzero(keep)
    gaps = np.diff(pos, prepend=-1).astype(np.int32)
    tail = int(w.size - 1 - pos[-1]) if pos.size else int(w.size)
    lo, inv_width = grid_of(w)
    k = data.draw(st.integers(1, 8))
    if use_lut:
        lut = np.sort(data.draw(hnp.arrays(np.uint16, NBINS, elements=st.integers(0, k - 1))))
        cuts = np.zeros(0)
    else:
        lut = np.zeros(0, np.uint16)
        cuts = np.sort(w.astype(np.float64)[pos])[: k - 1] if pos.size else np.zeros(0)
    filler = k
    entries = gaps.size + ref.gap_code_counts_ref(gaps, tail, b)[1]
    wsym = np.full(entries, 999, np.uint32)
    gsym = np.full(entries, 999, np.uint32)
    e = kernels.entry_symbols(w, gaps, tail, lut, cuts, lo, inv_width, b, filler, wsym, gsym)
    rw, rg = ref.entry_symbols_ref(w, gaps, tail, lut, cuts, lo, inv_width, b, filler)
    assert e == entries == rw.size
    np.testing.assert_array_equal(wsym, rw)
    np.testing.assert_array_equal(gsym, rg)


@st.composite
def entries(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Entry streams, mostly valid, sometimes with a bad symbol, gap or length."""
    b = draw(st.integers(1, 5))
    k = draw(st.integers(0, 6))
    has_filler = draw(st.booleans())
    filler = k if has_filler else -1
    alphabet = k + has_filler
    n = draw(st.integers(0, 40))
    symbols = st.integers(0, max(alphabet - 1, 0)) if alphabet else st.just(0)
    wsym = np.array(draw(st.lists(symbols, min_size=n, max_size=n)), np.uint32)
    codes = st.lists(st.integers(0, (1 << b) - 1), min_size=n, max_size=n)
    gsym = np.array(draw(codes), np.uint32)
    if has_filler and draw(st.booleans()):  # fillers mostly carry the right gap code
        gsym[wsym == k] = (1 << b) - 1
    if n and draw(st.booleans()):  # a stray symbol
        wsym[draw(st.integers(0, n - 1))] = draw(st.integers(0, alphabet + 2))
    used = int((gsym.astype(np.int64) + 1).sum())
    size = max(0, used + draw(st.integers(-3, (1 << b) + 2)))
    codebook = np.sort(np.random.default_rng(n).normal(size=k)).astype(np.float32)
    return wsym, gsym, codebook, filler, b, size


@SLOW
@given(entries())
def test_scatter_entries(case: tuple) -> None:
    wsym, gsym, codebook, filler, b, size = case
    out = np.zeros(size, np.float32)
    status = kernels.scatter_entries(wsym, gsym, codebook, filler, b, out)
    rout, rstatus = ref.scatter_entries_ref(wsym, gsym, codebook, filler, b, size)
    assert status == rstatus
    np.testing.assert_array_equal(out, rout)


def test_scatter_entries_empty() -> None:
    empty, book = np.zeros(0, np.uint32), np.zeros(0, np.float32)
    for size, b, want in [(0, 1, 0), (1, 1, 0), (2, 1, -1), (7, 3, 0), (8, 3, -1)]:
        out = np.zeros(size, np.float32)
        assert kernels.scatter_entries(empty, empty, book, -1, b, out) == want
        assert ref.scatter_entries_ref(empty, empty, book, -1, b, size)[1] == want


# ------------------------------------------------------------------------ 1-D k-means kernels


@st.composite
def points(draw: st.DrawFn) -> cluster.Points:
    """Sorted distinct values with counts, as the exact mode of LayerCodec builds them."""
    values = draw(st.lists(st.floats(-4, 4, allow_subnormal=False), min_size=1, max_size=80))
    v = np.array(values, np.float64)
    if draw(st.booleans()):
        v = np.round(v, 1)  # duplicates
    vals, counts = np.unique(v, return_counts=True)
    counts = counts.astype(np.int64) * draw(st.integers(1, 3))
    return cluster.Points(counts, vals * counts, vals * vals * counts)


@SLOW
@given(points(), st.integers(1, 16))
def test_dp_kernel_is_optimal(p: cluster.Points, k: int) -> None:
    starts = cluster.optimal_starts(p, k)
    assert starts.size == min(k, p.size)
    assert starts[0] == 0 and np.all(np.diff(starts) > 0)
    got = ref.partition_sse_ref(p.cnt, p.s1, p.s2, starts)
    best, _ = ref.optimal_partition_ref(p.cnt, p.s1, p.s2, k)
    assert got <= best * (1 + 1e-9) + 1e-9 * float(p.s2.sum())


@SLOW
@given(points(), st.integers(1, 16), st.sampled_from(["linear", "density", "random"]),
       st.integers(0, 99))
def test_lloyd_kernel(p: cluster.Points, k: int, init: str, seed: int) -> None:
    start = cluster.initial_centroids(p, k, init, seed)
    c = np.sort(np.asarray(start, np.float64))
    starts = np.zeros(c.size, np.int64)
    cluster._lloyd_kernel(p.cnt, p.s1, c, starts, cluster.LLOYD_MAX_ITER)
    rc, rstarts = ref.lloyd_ref(p.cnt, p.s1, np.sort(start), cluster.LLOYD_MAX_ITER)
    np.testing.assert_array_equal(c, rc)
    np.testing.assert_array_equal(starts, rstarts)


def test_optimal_sse_ref_small_cases() -> None:
    assert ref.optimal_sse_ref(np.array([1.0, 2.0, 3.0]), 1) == 2.0
    assert ref.optimal_sse_ref(np.array([1.0, 2.0, 3.0]), 3) == 0.0
    assert ref.optimal_sse_ref(np.array([0.0, 0.0, 10.0, 11.0]), 2) == 0.5
    assert ref.optimal_sse_ref(np.zeros(0), 4) == 0.0
