"""Method ``ternary`` (TWN): exact plans, bit-exact twins, the {-s, 0, s} levels, damage."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.core.stages.fixed import Fixed

TERNARY = registry.method("ternary")
SHAPES = [(7,), (5, 9), (4, 3, 2, 2), (1, 1), (3, 0), (6, 33), ()]


@settings(deadline=None, max_examples=40)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16),
       gran=st.sampled_from(["tensor", "channel"]), factor=st.floats(0.0, 3.0),
       dead=st.booleans(), weighted=st.booleans(), f64=st.booleans())
def test_round_trip_is_exact_and_twins_agree(round_trip, layer, shape, seed, gran, factor,
                                             dead, weighted, f64) -> None:
    w = layer(shape, seed, dead)
    w = w.astype(np.float64) * 1.7 if f64 else w
    imp = np.random.default_rng(seed).exponential(size=w.size) if weighted else None
    round_trip(TERNARY, w, {"granularity": gran, "delta": factor}, imp)


@pytest.mark.parametrize("gran", ["tensor", "channel"])
def test_levels_are_minus_s_zero_s_with_twn_threshold(round_trip, layer, gran) -> None:
    w = layer((12, 40), 1)
    plan, payload, out = round_trip(TERNARY, w, {"granularity": gran, "entropy": "fixed"})
    units = w.reshape(12, -1) if gran == "channel" else w.reshape(1, -1)
    for u, d in zip(units, out.reshape(units.shape), strict=True):
        kept = np.abs(u) > 0.7 * np.abs(u).astype(np.float64).mean()
        assert np.array_equal(d != 0, kept)
        s = np.float32(np.abs(u[kept]).astype(np.float64).mean())
        assert set(np.unique(np.abs(d[kept]))) == {np.float16(s).astype(np.float32)} or \
            set(np.unique(np.abs(d[kept]))) == {s}
        assert np.array_equal(np.sign(d[kept]), np.sign(u[kept]))
    # fixed: the scales, the width byte, 2 bits a weight
    scales = 2 if TERNARY.describe(plan.params)["scales"] == "float16" else 4
    assert len(payload) == scales * len(units) + 1 + math.ceil(w.size * 2 / 8)


def test_per_channel_scales_fit_channels_of_different_size(round_trip, layer) -> None:
    w = layer((16, 30), 2)
    tensor = round_trip(TERNARY, w, {"granularity": "tensor"})[0]
    channel = round_trip(TERNARY, w, {"granularity": "channel"})[0]
    assert channel.sse < 0.8 * tensor.sse


def test_factor_trades_zeros(round_trip, layer) -> None:
    w = layer((8, 50), 3)
    zeros = [round_trip(TERNARY, w, {"delta": f})[0].zeros for f in (0.0, 0.7, 1.5)]
    assert zeros[0] == 0 < zeros[1] < zeros[2]


def test_importance_weights_the_scale(round_trip) -> None:
    w = np.array([[1.0, 2.0, -4.0, 0.01]], dtype=np.float32)
    imp = np.array([1.0, 1.0, 6.0, 1.0])
    _, _, out = round_trip(TERNARY, w, {"granularity": "tensor"}, imp)
    # kept: |w| > 0.7 * 1.7525 = 1.23; scale = (2 + 6 * 4) / 7 (the mean of imp cancels)
    s = np.float32(26 / 7)
    assert out.tolist() in ([0, s, -s, 0], [0, np.float16(s), -np.float16(s), 0])


def test_zero_heavy_levels_cost_under_two_bits_with_an_adaptive_coder(round_trip,
                                                                     lenet5_conv2) -> None:
    adaptive = sorted(set(registry.ENTROPY) - {"fixed"})
    if not adaptive:
        pytest.skip("no adaptive entropy stage registered on this branch")
    plan = round_trip(TERNARY, lenet5_conv2, {"delta": 1.2})[0]
    assert plan.zeros > 0.6 * lenet5_conv2.size
    assert 8 * plan.payload_nbytes / lenet5_conv2.size < 1.6


def test_real_layer(round_trip, lenet5_conv2) -> None:
    plan, _, out = round_trip(TERNARY, lenet5_conv2, {})
    bits = 8 * plan.payload_nbytes / lenet5_conv2.size
    print(f"ternary LeNet-5 conv2: {plan.payload_nbytes} bytes ({bits:.3f} bits/weight), "
          f"SQNR {plan.sqnr_db:.2f} dB, zeros {plan.zeros / out.size:.1%}")
    assert 4.0 < plan.sqnr_db < 12.0  # TWN on bell-shaped weights: ~6-8 dB
    assert bits <= 2.0 + 8 * (50 * 4 + 1) / lenet5_conv2.size


def _record() -> tuple[bytes, bytes]:
    w = np.random.default_rng(0).laplace(size=(6, 10)).astype(np.float32)
    w[2] *= 1e6  # float32 scales
    plan, payload = TERNARY.bind(w.reshape(-1), w.shape).encode(
        resolve_options(TERNARY.options, {"entropy": "fixed"}))
    assert TERNARY.describe(plan.params)["scales"] == "float32"
    return plan.params, payload


PARAMS, PAYLOAD = _record()
SHAPE = (6, 10)


@pytest.mark.parametrize(("params", "payload", "match"), [
    (b"\x01", PAYLOAD, "2"),
    (PARAMS + b"\x00", PAYLOAD, "2"),
    (b"\x63" + PARAMS[1:], PAYLOAD, "entropy"),
    (PARAMS[:1] + b"\x04", PAYLOAD, "flags"),
    (PARAMS, PAYLOAD[:23], "scales"),
    (PARAMS, PAYLOAD[:-1], "bytes"),
    (PARAMS, PAYLOAD + b"\x00", "bytes"),
    (PARAMS, struct.pack("<f", np.inf) + PAYLOAD[4:], "finite"),
    (PARAMS, struct.pack("<f", -1.0) + PAYLOAD[4:], "negative"),
    (PARAMS, PAYLOAD[:24] + Fixed().encode(np.full(60, 2)), "symbol"),
], ids=["short-params", "long-params", "coder", "flags", "no-scales", "short", "long",
        "inf-scale", "negative-scale", "symbol-2"])
def test_damaged_record_is_refused(params: bytes, payload: bytes, match: str) -> None:
    for decode in (TERNARY.decode, TERNARY.decode_reference):
        with pytest.raises(ValueError, match=match):
            decode(params, payload, SHAPE)


def test_shape_must_match() -> None:
    for shape in ((6, 11), (7, 10)):
        with pytest.raises(ValueError):
            TERNARY.decode(PARAMS, PAYLOAD, shape)
