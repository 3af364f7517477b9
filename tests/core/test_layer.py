"""One layer end to end: the plan's sizes are the payload's, the payload decodes bit-exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.core import reference as ref
from inspector.core.decode import decode_kept
from inspector.core.layer import (
    EXACT_SURVIVORS,
    LayerCodec,
    LayerPlan,
    decode_payload,
)
from inspector.core.positions import GAPS
from inspector.core.settings import (
    INITS,
    MAX_BITS,
    MAX_INDEX_BITS,
    MIN_BITS,
    MIN_INDEX_BITS,
    POLICIES,
    STD_OF,
    LayerSettings,
)

PROPERTY = settings(deadline=None, max_examples=250, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def layer_weights(draw: st.DrawFn) -> np.ndarray:
    """Tensors of any rank: empty, one weight, all zero, few values, Gaussian, one-signed, big."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kinds = ["empty", "scalar", "one", "zeros", "few", "gauss", "signed", "big"]
    kind = draw(st.sampled_from(kinds))
    if kind == "empty":
        return np.zeros(draw(st.sampled_from([(0,), (3, 0), (0, 4, 2)])), dtype)
    if kind == "scalar":
        return np.array(draw(st.floats(-4, 4, width=32)), dtype)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=9))
    if kind == "one":
        return np.full((1,) * len(shape), draw(st.floats(-4, 4, width=32)), dtype)
    if kind == "zeros":
        return np.zeros(shape, dtype)
    if kind == "few":
        pool = draw(st.lists(st.sampled_from([0.0, 0.25, -0.25, 1.0, -2.0, 3.0]), min_size=1))
        return draw(hnp.arrays(dtype, shape, elements=st.sampled_from(pool)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "big" or draw(st.booleans()):  # past EXACT_SURVIVORS: k-means on the fine grid
        shape = (draw(st.integers(EXACT_SURVIVORS + 1, 3 * EXACT_SURVIVORS)),)
    w = rng.normal(0, draw(st.sampled_from([1e-4, 0.05, 2.0])), shape)
    if kind == "signed" or (kind == "big" and draw(st.booleans())):
        w = np.abs(w) + draw(st.sampled_from([0.0, 1.0])) if rng.random() < 0.5 else -np.abs(w)
    w[rng.random(shape) < draw(st.sampled_from([0.0, 0.5, 0.95]))] = 0.0
    return w.astype(dtype)


@st.composite
def layer_settings(draw: st.DrawFn, w: np.ndarray) -> LayerSettings:
    policy = draw(st.sampled_from(POLICIES))
    mags = np.unique(np.abs(w.astype(np.float64)))
    if policy == "sparsity":
        value = draw(st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.5, 0.9, 1.0])))
    elif policy == "std":
        value = draw(st.floats(0, 4))
    else:
        choices = [st.floats(0, 5), st.just(0.0)]
        if mags.size:
            choices.append(st.sampled_from(mags.tolist()))
        value = draw(st.one_of(choices))
    return LayerSettings(
        policy=policy,
        value=value,
        bits=draw(st.integers(MIN_BITS, MAX_BITS)),
        init=draw(st.sampled_from(INITS)),
        index_bits=draw(st.integers(MIN_INDEX_BITS, MAX_INDEX_BITS)),
        huffman=draw(st.booleans()),
        std_of=draw(st.sampled_from(STD_OF)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.ascontiguousarray(a, np.float32).reshape(-1)
    b = np.ascontiguousarray(b, np.float32).reshape(-1)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def plan_key(plan: LayerPlan) -> tuple:
    """Everything a plan says, in a form ``==`` can compare."""
    streams = [
        (p.alphabet, p.count, p.width, None if p.lengths is None else p.lengths.tobytes(),
         p.nbits, p.table_nbytes, p.huffman_nbits)
        for p in (plan.weights, plan.gaps)
    ]
    return (plan.settings, plan.size, plan.mask, plan.survivors, plan.fillers,
            plan.codebook.tobytes(), *streams, plan.sse, plan.layout)


def entry_positions(payload: bytes, plan: LayerPlan) -> tuple[np.ndarray, np.ndarray]:
    """(positions of stored survivors, their weight symbols) read back from the streams."""
    _, pos, wsym = decode_kept(payload, plan.layout)
    return pos, wsym


def check_round_trip(codec: LayerCodec, s: LayerSettings) -> LayerPlan:
    """Every promise of encode/plan/quantized for one layer and one setting."""
    plan, payload = codec.encode(s)
    assert len(payload) == plan.payload_nbytes
    assert plan.size == codec.weights.size
    entries = plan.survivors + plan.fillers
    assert plan.weights.count == entries == plan.layout.entries
    assert plan.gaps.count == entries or plan.positions != GAPS
    assert plan.fillers == 0 or plan.positions == GAPS
    assert np.all(np.isfinite(plan.codebook)) and plan.codebook.dtype == np.float32
    assert np.all(np.diff(plan.codebook.astype(np.float64)) >= 0)
    assert plan.codebook.size <= max(1, s.clusters - (plan.fillers > 0))
    decoded = decode_payload(payload, plan.layout)
    quantized = codec.quantized(s)
    assert quantized.shape == codec.shape and quantized.dtype == np.float32
    assert same_bits(decoded, quantized)
    pos, sym = entry_positions(payload, plan)
    assert pos.size == plan.survivors
    pruned = np.ones(decoded.size, bool)
    pruned[pos] = False
    assert np.all(decoded[pruned].view(np.uint32) == 0)  # +0.0 exactly
    assert np.all(sym < plan.codebook.size)
    assert same_bits(decoded[pos], plan.codebook[sym])
    assert np.count_nonzero(decoded) <= plan.survivors
    return plan


@PROPERTY
@given(st.data())
def test_round_trip(data: st.DataObject) -> None:
    w = data.draw(layer_weights())
    s = data.draw(layer_settings(w))
    codec = LayerCodec(w)
    plan = check_round_trip(codec, s)
    fresh = LayerCodec(w).plan(s)  # caches never change a result
    assert plan_key(fresh) == plan_key(plan)


@PROPERTY
@given(st.data())
def test_settings_back_and_forth_give_identical_plans(data: st.DataObject) -> None:
    w = data.draw(layer_weights())
    a, b = data.draw(layer_settings(w)), data.draw(layer_settings(w))
    codec = LayerCodec(w)
    first = plan_key(codec.plan(a))
    _, payload = codec.encode(a)
    for s in (b, a, b, b, a):
        codec.plan(s)
    assert plan_key(codec.plan(a)) == first
    assert codec.encode(a)[1] == payload


def test_empty_and_single_weight_layers() -> None:
    for w in (np.zeros(0, np.float32), np.zeros((0, 5)), np.float32(1.5), np.array([[-2.0]])):
        codec = LayerCodec(w)
        for s in (LayerSettings(), LayerSettings(policy="threshold", value=0.0, bits=1),
                  LayerSettings(policy="sparsity", value=1.0)):
            check_round_trip(codec, s)


def test_all_zero_layer_is_all_fillers() -> None:
    codec = LayerCodec(np.zeros(1000, np.float32))
    plan = check_round_trip(codec, LayerSettings(policy="threshold", value=0.0, index_bits=3))
    assert plan.survivors == 0
    assert plan.fillers == 1000 >> 3
    assert plan.codebook.size == 0


# ----------------------------------------------------------------------- filler edge cases


def sparse_layer(size: int, positions: list[int]) -> np.ndarray:
    """Zeros with distinct nonzero weights at ``positions``; threshold 0 keeps exactly them."""
    w = np.zeros(size, np.float32)
    w[positions] = np.arange(1, len(positions) + 1, dtype=np.float32) * np.float32(0.5)
    return w


def filler_rule(size: int, positions: list[int], b: int) -> int:
    """(g - 1) >> b per gap, plus tail >> b for the positions after the last survivor."""
    gaps = np.diff(np.array(positions, np.int64), prepend=-1)
    tail = size - (positions[-1] + 1 if positions else 0)
    return int(sum((int(g) - 1) >> b for g in gaps)) + (tail >> b)


B = 3
STEP = 1 << B
FILLER_CASES = {
    "gap 2**b": [0, STEP],
    "gap 2**b + 1": [0, STEP + 1],
    "gap 2**b - 1": [0, STEP - 1],
    "gaps 2 * 2**b, 2 * 2**b + 1": [1, 2 * STEP + 1, 4 * STEP + 2],
    "first at 0": [0, 1, 2],
    "first at 2**b - 1": [STEP - 1, STEP],
    "first at 2**b": [STEP, STEP + 3],
    "first at 2**b + 1": [STEP + 1],
    "huge gap": [3, 3 + 10 * STEP + 5],
}


@pytest.mark.parametrize("tail", [0, 1, STEP - 1, STEP, STEP + 1, 3 * STEP + 2])
@pytest.mark.parametrize("positions", list(FILLER_CASES.values()), ids=list(FILLER_CASES))
@pytest.mark.parametrize("huffman", [False, True])
def test_filler_edge_cases(positions: list[int], tail: int, huffman: bool) -> None:
    size = positions[-1] + 1 + tail
    codec = LayerCodec(sparse_layer(size, positions))
    codec.position_codes = (GAPS,)  # the relative index itself, even where another is smaller
    s = LayerSettings(policy="threshold", value=0.0, bits=4, index_bits=B, huffman=huffman)
    plan = check_round_trip(codec, s)
    assert plan.survivors == len(positions)
    assert plan.fillers == filler_rule(size, positions, B)
    gaps = np.diff(np.array(positions), prepend=-1)
    _, fillers = ref.gap_code_counts_ref(gaps, tail, B)
    assert plan.fillers == fillers
    np.testing.assert_array_equal(np.flatnonzero(codec.quantized(s)), positions)


@pytest.mark.parametrize("size", [0, 1, STEP - 1, STEP, STEP + 1, 5 * STEP])
def test_no_survivors_trailing_fillers(size: int) -> None:
    codec = LayerCodec(np.zeros(size, np.float32))
    codec.position_codes = (GAPS,)
    plan = check_round_trip(codec, LayerSettings(policy="threshold", value=0.0, index_bits=B))
    assert plan.fillers == size >> B


def test_fillers_take_a_weight_code() -> None:
    """With fillers k-means gets 2**bits - 1 clusters, so weight codes stay ``bits`` wide."""
    rng = np.random.default_rng(3)
    w = np.zeros(4000, np.float32)
    w[::40] = rng.normal(size=100)
    codec = LayerCodec(w)
    codec.position_codes = (GAPS,)  # a bitmap is smaller here, and has no fillers
    s = LayerSettings(policy="threshold", value=0.0, bits=3, index_bits=2, huffman=False)
    plan = check_round_trip(codec, s)
    assert plan.fillers > 0
    assert plan.codebook.size == 7
    assert plan.weights.width == 3
    without = check_round_trip(codec, LayerSettings(policy="threshold", value=0.0, bits=3,
                                                    index_bits=8, huffman=False))
    assert without.fillers == 0 and without.codebook.size == 8


# ----------------------------------------------------------------- thresholds off the grid


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("t", [0.0, 0.5, 3.0])
def test_one_signed_grid_layer_keeps_every_survivor(sign: float, t: float) -> None:
    """A threshold outside the weights' range clips to an end bin full of survivors."""
    w = (sign * np.random.default_rng(0).uniform(1, 2, 3 * EXACT_SURVIVORS)).astype(np.float32)
    codec = LayerCodec(w)
    for huffman in (False, True):
        plan = check_round_trip(codec, LayerSettings(policy="threshold", value=t, bits=3,
                                                     huffman=huffman))
        assert plan.survivors == np.count_nonzero(np.abs(w) > t)


def test_float64_layer_with_a_tiny_span() -> None:
    """(t - lo) / bin width can pass the int64 range: the bin must clip, not wrap."""
    eps = np.finfo(np.float64).eps
    w = -1.0 - np.random.default_rng(0).integers(0, 8, 2 * EXACT_SURVIVORS) * eps
    codec = LayerCodec(w)
    for t in (0.5, 1.0, 1.0 + 4 * eps, 5.0):
        for huffman in (False, True):
            check_round_trip(codec, LayerSettings(policy="threshold", value=t, bits=3,
                                                  huffman=huffman))


def test_layout_decodes_without_the_codec() -> None:
    w = np.random.default_rng(2).normal(0, 0.05, (30, 40)).astype(np.float32)
    s = LayerSettings(policy="sparsity", value=0.8, bits=4, index_bits=4)
    plan, payload = LayerCodec(w).encode(s)
    assert same_bits(decode_payload(bytes(payload), plan.layout), LayerCodec(w).quantized(s))
    with pytest.raises(ValueError):
        decode_payload(payload[: len(payload) // 2], plan.layout)


@pytest.mark.parametrize("n", [100, 2 * EXACT_SURVIVORS])
def test_float64_layer_with_a_subnormal_span(n: int) -> None:
    """The grid's 1 / width overflows to inf: values at the low end give 0 * inf = NaN."""
    w = np.zeros(n)
    w[1::3] = np.finfo(np.float64).tiny
    w[2::7] = 2 * np.finfo(np.float64).tiny
    codec = LayerCodec(w)
    for s in (LayerSettings(), LayerSettings(policy="threshold", value=0.0, bits=2),
              LayerSettings(policy="sparsity", value=0.1, huffman=False)):
        check_round_trip(codec, s)


@pytest.mark.parametrize("parallel", [False, True])
def test_a_drag_reusing_candidates_gives_the_plans_of_a_fresh_codec(
    parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A drag's moves reuse one candidate list of a lower floor (CANDIDATE_MARGIN); every
    # plan and payload must be what a codec that never saw the earlier moves makes. With
    # ``parallel`` the candidates are found on two threads, as for layers of 2M+ weights.
    from inspector.core import candidates

    if parallel:
        monkeypatch.setattr(candidates, "PARALLEL_SIZE", 1000)
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.05, 60_000).astype(np.float32)
    w[rng.choice(w.size, 60, replace=False)] *= 40  # outliers stretch the grids
    w[:500] = w[500:1000]  # ties
    dragged = LayerCodec(w)
    values = [0.5, 0.52, 0.55, 0.6, 0.58, 0.4, 0.41, 0.9, 0.3, 0.95, 0.0, 1.0, 0.7]
    policies = [("sparsity", v) for v in values] + [("std", 0.5), ("std", 0.6), ("std", 0.2)]
    for policy, value in policies:
        s = LayerSettings(policy=policy, value=value, bits=5, index_bits=5)
        plan, payload = dragged.encode(s)
        fresh_plan, fresh_payload = LayerCodec(w).encode(s)
        assert payload == fresh_payload, (policy, value)
        assert plan.mask == fresh_plan.mask and plan.survivors == fresh_plan.survivors
        np.testing.assert_array_equal(decode_payload(payload, plan.layout), dragged.quantized(s))
