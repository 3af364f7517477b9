"""Pruning policies resolve to exact masks: counts, ties by position, int64 throughout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.core import prune
from inspector.core.decode import decode_kept
from inspector.core.layer import LayerCodec
from inspector.core.settings import LayerSettings
from inspector.errors import SettingsError

SLOW = settings(deadline=None, max_examples=60)


def survivor_positions(codec: LayerCodec, s: LayerSettings) -> np.ndarray:
    """Positions of the kept weights, read back from the encoded streams."""
    plan, payload = codec.encode(s)
    _, pos, _ = decode_kept(payload, plan.layout)
    assert pos.size == plan.survivors
    return pos


def expected_sparsity_survivors(w: np.ndarray, fraction: float) -> np.ndarray:
    """The positions kept when the round(f n) smallest |w| go, earlier positions first."""
    k = round(fraction * w.size)
    order = np.argsort(np.abs(w.astype(np.float64)), kind="stable")
    return np.sort(order[k:])


@st.composite
def tied_weights(draw: st.DrawFn) -> np.ndarray:
    """Weights drawn from a few distinct values (both signs): ties everywhere."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    pool = draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0]), min_size=1, max_size=4))
    values = sorted({v * s for v in pool for s in (1, -1)})
    n = draw(st.integers(0, 400))
    return draw(hnp.arrays(dtype, n, elements=st.sampled_from(values)))


@SLOW
@given(tied_weights(), st.floats(0, 1))
def test_sparsity_prunes_exact_count_ties_by_position(w: np.ndarray, f: float) -> None:
    codec = LayerCodec(w)
    s = LayerSettings(policy="sparsity", value=f, bits=2, index_bits=4)
    plan = codec.plan(s)
    assert plan.survivors == w.size - round(f * w.size)
    np.testing.assert_array_equal(survivor_positions(codec, s), expected_sparsity_survivors(w, f))
    assert prune.count_pruned(codec.weights, plan.mask) == round(f * w.size)


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 30000), st.floats(0, 1))
def test_sparsity_exact_on_large_gaussian(seed: int, n: int, f: float) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, n).astype(np.float32)
    w[rng.random(n) < 0.2] = 0.0  # many exact-zero ties
    codec = LayerCodec(w)
    s = LayerSettings(policy="sparsity", value=f)
    assert codec.plan(s).survivors == n - round(f * n)
    np.testing.assert_array_equal(survivor_positions(codec, s), expected_sparsity_survivors(w, f))


def test_sparsity_ties_prune_lower_positions_first() -> None:
    w = np.array([0.5, -0.5, 2.0, 0.5, 0.5, -1.0], np.float32)
    codec = LayerCodec(w)
    for f, kept in [(0.0, [0, 1, 2, 3, 4, 5]), (1 / 6, [1, 2, 3, 4, 5]), (0.5, [2, 4, 5]),
                    (4 / 6, [2, 5]), (5 / 6, [2]), (1.0, [])]:
        s = LayerSettings(policy="sparsity", value=f)
        np.testing.assert_array_equal(survivor_positions(codec, s), kept)


@pytest.mark.parametrize("std_of", ["all", "nonzero"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_std_policy(std_of: str, dtype: type) -> None:
    rng = np.random.default_rng(7)
    w = rng.normal(0.01, 0.1, 5000).astype(dtype)
    w[rng.random(w.size) < 0.3] = 0.0
    x = w.astype(np.float64)
    std = np.std(x) if std_of == "all" else np.std(x[x != 0])
    codec = LayerCodec(w)
    for q in (0.0, 0.5, 1.0, 2.5):
        s = LayerSettings(policy="std", value=q, std_of=std_of)
        plan = codec.plan(s)
        assert plan.mask.threshold == pytest.approx(q * std, rel=1e-9, abs=0)
        keep = np.flatnonzero(np.abs(x) > plan.mask.threshold)
        assert plan.survivors == keep.size
        np.testing.assert_array_equal(survivor_positions(codec, s), keep)


def test_std_of_nonzero_differs_from_all_when_pruned_before() -> None:
    w = np.zeros(1000, np.float32)
    w[::10] = np.linspace(-1, 1, 100)
    codec = LayerCodec(w)
    t_all = codec.mask(LayerSettings(policy="std", value=1.0)).threshold
    t_nz = codec.mask(LayerSettings(policy="std", value=1.0, std_of="nonzero")).threshold
    assert t_nz > 2 * t_all


@SLOW
@given(tied_weights(), st.data())
def test_threshold_policy_prunes_at_or_below(w: np.ndarray, data: st.DataObject) -> None:
    mags = sorted(set(np.abs(w.astype(np.float64)).tolist())) or [0.0]
    t = data.draw(st.one_of(st.sampled_from(mags), st.floats(0, 3)))
    codec = LayerCodec(w)
    s = LayerSettings(policy="threshold", value=t)
    keep = np.flatnonzero(np.abs(w.astype(np.float64)) > t)
    assert codec.plan(s).survivors == keep.size
    np.testing.assert_array_equal(survivor_positions(codec, s), keep)


def test_threshold_zero_prunes_exact_zeros_only() -> None:
    w = np.array([0.0, -0.0, 1e-30, -1e-38, 0.0, 3.0], np.float32)
    codec = LayerCodec(w)
    s = LayerSettings(policy="threshold", value=0.0)
    np.testing.assert_array_equal(survivor_positions(codec, s), [2, 3, 5])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("policy", ["std", "sparsity", "threshold"])
def test_nonfinite_layer_raises_settings_error(bad: float, policy: str) -> None:
    w = np.linspace(-1, 1, 100).astype(np.float32)
    w[17] = bad
    codec = LayerCodec(w)
    with pytest.raises(SettingsError, match="NaN or infinite"):
        codec.plan(LayerSettings(policy=policy, value=0.5))


def test_counts_are_int64_on_a_37m_weight_layer() -> None:
    """AlexNet fc6 size: a float32 counter would stall at 2**24; ours must count exactly."""
    rows, cols = 9216, 4096
    n = rows * cols
    rng = np.random.default_rng(0)
    w = rng.standard_normal((rows, cols), dtype=np.float32)
    codec = LayerCodec(w)
    assert codec.profile.abs_cum.dtype == np.int64
    assert int(codec.profile.abs_cum[-1]) == n
    plan = codec.plan(LayerSettings(policy="sparsity", value=0.9, bits=5))
    pruned = n - plan.survivors
    assert type(plan.survivors) is int and type(plan.fillers) is int
    assert pruned == round(0.9 * n) == 33_973_862
    assert abs(pruned / n - 0.9) <= 0.5 / n
    assert plan.weights.count == plan.gaps.count == plan.survivors + plan.fillers
    del codec, w


def test_profile_counts_are_int64_on_a_small_layer() -> None:
    w = np.array([0.0, 1.0, -2.0, 0.0], np.float32)
    p = prune.profile(w)
    assert (p.size, p.nonzero, p.nonfinite) == (4, 2, 0)
    assert all(type(v) is int for v in (p.size, p.nonzero, p.nonfinite))
    assert p.abs_cum.dtype == np.int64
    mask = prune.sparsity_mask(w, p, 3)
    assert type(mask.ties) is int
    assert prune.count_pruned(w, mask) == 3


@pytest.mark.parametrize(("size", "f", "want"), [(0, 0.5, 0), (1, 0.5, 0), (3, 0.5, 2),
                                                 (10, 0.25, 2), (10, 1.0, 10), (10, 0.0, 0)])
def test_pruned_count_rounds_half_to_even(size: int, f: float, want: int) -> None:
    assert prune.pruned_count(size, f) == want
