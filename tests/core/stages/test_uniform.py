"""Method ``uniform`` (and its int8/int4 presets): exact plans, bit-exact twins, RDOQ."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.base import Options, resolve_options
from inspector.errors import SettingsError

SLOW = settings(deadline=None, max_examples=40)
UNIFORM = registry.method("uniform")
SHAPES = [(7,), (5, 9), (4, 3, 2, 2), (1, 1), (3, 0), (6, 33)]


def layer(shape: tuple[int, ...], seed: int, dead_row: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.laplace(size=shape) * rng.uniform(0.01, 1, size=(shape[0],) + (1,) * (len(shape) - 1))
    if dead_row and w.size:
        w[0] = 0
    return w.astype(np.float32)


def options(method: object = UNIFORM, **given: object) -> Options:
    return resolve_options(method.options, given)


def round_trip(method, w: np.ndarray, opts: Options, imp: np.ndarray | None = None):
    bound = method.bind(w.reshape(-1), w.shape, imp)
    plan, payload = bound.encode(opts)
    assert len(payload) == plan.payload_nbytes
    assert plan.payload_nbytes == method.bind(w.reshape(-1), w.shape, imp).plan(opts) \
        .payload_nbytes
    method.check(plan.params, len(payload), w.shape)
    fast = method.decode(plan.params, payload, w.shape)
    ref = method.decode_reference(plan.params, payload, w.shape)
    assert fast.dtype == ref.dtype == np.float32 and fast.size == w.size
    assert fast.tobytes() == ref.tobytes() == bound.decoded(opts).tobytes()
    err = fast.astype(np.float64) - w.reshape(-1).astype(np.float64)
    assert plan.sse == pytest.approx(float(np.dot(err, err)), rel=1e-9, abs=1e-300)
    assert plan.zeros == int(np.count_nonzero(fast == 0))
    return plan, payload, fast


sizing = st.one_of(
    st.builds(dict, int_bits=st.integers(2, 16)),
    st.builds(dict, rel_step=st.floats(0.002, 1.5)),
    st.builds(dict, step=st.floats(0.01, 3.0)),
)


@SLOW
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16), size=sizing,
       gran=st.sampled_from(["tensor", "channel", "group"]), group=st.integers(1, 12),
       lam=st.sampled_from([0.0, 0.05, 0.5, 3.0]), recon=st.sampled_from(["grid", "mean"]),
       dead=st.booleans(), weighted=st.booleans())
def test_round_trip_is_exact_and_twins_agree(shape, seed, size, gran, group, lam, recon,
                                             dead, weighted) -> None:
    w = layer(shape, seed, dead)
    imp = np.random.default_rng(seed).exponential(size=w.size) if weighted else None
    opts = options(granularity=gran, group=group, lam=lam, recon=recon, **size)
    plan, _, _out = round_trip(UNIFORM, w, opts, imp)
    assert plan.method == "uniform"
    if "int_bits" in size and w.size:
        # int-N sizing: every unit's levels fit in N signed bits
        assert UNIFORM.bind(w.reshape(-1), w.shape).quantized(opts).levels.__abs__().max() \
            <= 2 ** (size["int_bits"] - 1) - 1


@pytest.mark.parametrize("gran", ["tensor", "channel", "group"])
def test_granularity_counts_its_scales(gran: str) -> None:
    w = layer((16, 40), 1)
    plan, _payload, _ = round_trip(UNIFORM, w, options(granularity=gran, group=8, int_bits=6,
                                                      entropy="fixed"))
    units = {"tensor": 1, "channel": 16, "group": 16 * 5}[gran]
    width = UNIFORM.bind(w.reshape(-1), w.shape).quantized(
        options(granularity=gran, group=8, int_bits=6)).header.exp_width
    scales = 0 if units == 1 else math.ceil(units * width / 8)
    assert plan.payload_nbytes == scales + 1 + math.ceil(w.size * 6 / 8)
    assert UNIFORM.describe(plan.params)["granularity"] == gran


def test_finer_scales_lower_the_error() -> None:
    w = layer((32, 64), 2)
    sse = {g: round_trip(UNIFORM, w, options(granularity=g, group=16, int_bits=4))[0].sse
           for g in ("tensor", "channel", "group")}
    assert sse["group"] < sse["channel"] < sse["tensor"]


def test_lambda_trades_error_for_zeros() -> None:
    w = layer((20, 50), 3)
    plans = [round_trip(UNIFORM, w, options(rel_step=0.05, lam=lam))[0]
             for lam in (0.0, 0.1, 1.0)]
    assert plans[0].zeros < plans[1].zeros < plans[2].zeros
    assert plans[0].sse < plans[1].sse < plans[2].sse


def _entropy_bits(levels: np.ndarray) -> float:
    _, counts = np.unique(levels, return_counts=True)
    p = counts / levels.size
    return float(-(counts * np.log2(p)).sum())


def _rate_and_error(w, imp_bind, imp_measure, lam):
    q = UNIFORM.bind(w, w.shape, imp_bind).quantized(options(granularity="tensor",
                                                            rel_step=0.05, lam=lam))
    err = q.decoded.astype(np.float64) - w
    return _entropy_bits(q.levels), float(np.dot(imp_measure * err, err))


def test_importance_lowers_the_weighted_error_at_equal_rate() -> None:
    rng = np.random.default_rng(4)
    w = rng.laplace(size=4000)
    imp = np.where(rng.random(w.size) < 0.2, 20.0, 0.2)
    rate0, err0 = _rate_and_error(w, None, imp, 0.3)
    lo, hi = 0.0, 5.0  # the weighted lambda whose rate matches, by bisection
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        rate, err = _rate_and_error(w, imp, imp, mid)
        lo, hi = (mid, hi) if rate > rate0 else (lo, mid)
    rate, err = _rate_and_error(w, imp, imp, hi)
    assert rate <= rate0
    assert err < 0.95 * err0


def test_cell_means_lower_the_error_at_the_same_levels() -> None:
    w = layer((30, 60), 5)
    grid, _, _ = round_trip(UNIFORM, w, options(rel_step=0.2, recon="grid"))
    mean, _, _ = round_trip(UNIFORM, w, options(rel_step=0.2, recon="mean"))
    assert mean.sse < grid.sse and "offsets" in UNIFORM.describe(mean.params)


@pytest.mark.parametrize(("name", "bits"), [("int8", 8), ("int4", 4)])
@pytest.mark.parametrize("gran", ["tensor", "channel", "group"])
def test_int_presets(name: str, bits: int, gran: str) -> None:
    method = registry.method(name)
    w = layer((12, 30), 6)
    opts = options(method, granularity=gran, group=10)
    plan, _, _out = round_trip(method, w, opts)
    assert plan.method == name and method.describe(plan.params)["name"] == name
    levels = method.bind(w.reshape(-1), w.shape).quantized(opts)
    assert int(np.abs(levels.levels).max()) == 2 ** (bits - 1) - 1
    units = {"tensor": 1, "channel": 12, "group": 36}[gran]
    scales = 0 if units == 1 else math.ceil(units * levels.header.exp_width / 8)
    assert plan.payload_nbytes == scales + 1 + w.size * bits // 8
    assert registry.method_by_code(method.code) is method


def test_auto_takes_the_smallest_registered_stage() -> None:
    w = layer((8, 8), 7)
    auto = UNIFORM.bind(w.reshape(-1), w.shape).plan(options(int_bits=5))
    sizes = [UNIFORM.bind(w.reshape(-1), w.shape).plan(options(int_bits=5, entropy=e.name))
             .payload_nbytes for e in registry.ENTROPY.values()]
    assert auto.payload_nbytes == min(sizes)


def test_bad_options_are_settings_errors() -> None:
    w = layer((4, 4), 8) * 1000
    with pytest.raises(SettingsError, match="too small"):
        UNIFORM.bind(w.reshape(-1), w.shape).plan(options(step=2.0**-90))
    with pytest.raises(SettingsError, match="granularity"):
        options(granularity="row")
    with pytest.raises(SettingsError, match="importance"):
        UNIFORM.bind(w.reshape(-1), w.shape, np.full(w.size, -1.0))


def _sse_at_rate(w: np.ndarray, lam: float, recon: str, rate: float) -> float:
    """SSE of the tensor-step quantization whose level entropy is just under ``rate``."""
    bound = UNIFORM.bind(w, w.shape)
    lo, hi = 1e-3, 10.0
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        q = bound.quantized(options(granularity="tensor", step=mid, lam=lam, recon=recon))
        lo, hi = (mid, hi) if _entropy_bits(q.levels) > rate else (lo, mid)
    return bound.quantized(options(granularity="tensor", step=hi, lam=lam, recon=recon)).sse


@pytest.mark.parametrize("bits_per_weight", [0.7, 1.5])
def test_rdoq_beats_rounding_at_equal_rate(bits_per_weight: float) -> None:
    w = np.random.default_rng(9).laplace(size=20000)
    rate = bits_per_weight * w.size
    plain = _sse_at_rate(w, 0.0, "grid", rate)
    assert _sse_at_rate(w, 0.1, "grid", rate) < 0.97 * plain
    assert _sse_at_rate(w, 0.1, "mean", rate) < 0.97 * plain


def _symmetric(levels: np.ndarray, span: int) -> np.ndarray:
    """A context-free cost, the same for +m and -m (what a 3-D table can say too)."""
    m = np.minimum(np.abs(levels.astype(np.int64)), span)
    p = (np.bincount(m, minlength=span + 1) + 0.5) / (m.size + 0.5 * (span + 1))
    return -np.log2(p) + (np.arange(span + 1) > 0)


def test_a_context_table_without_context_picks_what_the_flat_table_does() -> None:
    w = layer((12, 40), 10).reshape(-1)
    flat = lambda lv, span: _symmetric(lv, span)[np.abs(np.arange(-span, span + 1))]  # noqa: E731
    ctx = lambda lv, span: np.broadcast_to(_symmetric(lv, span), (3, 3, span + 1))  # noqa: E731
    opts = options(granularity="channel", rel_step=0.1, lam=0.3)
    a = UNIFORM.bind(w, (12, 40), rate=flat).quantized(opts).levels
    b = UNIFORM.bind(w, (12, 40), rate=ctx).quantized(opts).levels
    np.testing.assert_array_equal(a, b)
    assert np.count_nonzero(a) < np.count_nonzero(
        UNIFORM.bind(w, (12, 40)).quantized(options(granularity="channel", rel_step=0.1)).levels)


def test_a_context_table_is_used_in_context() -> None:
    w = np.full(64, 0.6)  # every weight between levels 0 and 1
    # a one is cheap right after a zero and dear after a one: constant weights alternate,
    # which no context-free cost can make them do
    table = np.zeros((2, 2, 3))
    table[0, :, 0], table[0, :, 1] = 5.0, 0.0
    table[1, :, 0], table[1, :, 1] = 0.0, 5.0
    bound = UNIFORM.bind(w, (64,), rate=lambda lv, span: table)
    levels = bound.quantized(options(granularity="tensor", step=1.0, lam=1.0)).levels
    np.testing.assert_array_equal(levels, [1, 0] * 32)
    with pytest.raises(ValueError, match="rate table"):
        UNIFORM.bind(w, (64,), rate=lambda lv, span: np.zeros(3)).quantized(
            options(granularity="tensor", step=1.0, lam=1.0))
