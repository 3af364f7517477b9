"""Method ``binary``: exact plans, bit-exact twins, the {-s, s} levels, 1 bit a weight."""

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

BINARY = registry.method("binary")
SHAPES = [(7,), (5, 9), (4, 3, 2, 2), (1, 1), (3, 0), (6, 33), ()]


@settings(deadline=None, max_examples=40)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16),
       gran=st.sampled_from(["tensor", "channel"]), dead=st.booleans(),
       weighted=st.booleans(), f64=st.booleans())
def test_round_trip_is_exact_and_twins_agree(round_trip, layer, shape, seed, gran, dead,
                                             weighted, f64) -> None:
    w = layer(shape, seed, dead)
    w = w.astype(np.float64) * 3.1 if f64 else w
    imp = np.random.default_rng(seed).exponential(size=w.size) if weighted else None
    round_trip(BINARY, w, {"granularity": gran}, imp)


@pytest.mark.parametrize("gran", ["tensor", "channel"])
def test_levels_are_sign_times_mean_magnitude_one_bit_each(round_trip, layer, gran) -> None:
    w = layer((12, 37), 1)
    w[3, 5] = 0.0  # zero takes +s
    plan, payload, out = round_trip(BINARY, w, {"granularity": gran, "entropy": "fixed"})
    units = w.reshape(12, -1) if gran == "channel" else w.reshape(1, -1)
    for u, d in zip(units, out.reshape(units.shape), strict=True):
        s = np.float32(np.abs(u).astype(np.float64).mean())
        assert np.unique(np.abs(d)).tolist() in ([s], [np.float16(s)])
        assert np.array_equal(d < 0, u < 0)
    assert plan.zeros == 0
    scales = 2 if BINARY.describe(plan.params)["scales"] == "float16" else 4
    assert len(payload) == scales * len(units) + 1 + math.ceil(w.size / 8)


def test_auto_is_never_larger_than_one_bit_a_weight(round_trip, layer) -> None:
    w = layer((10, 64), 2)
    fixed = round_trip(BINARY, w, {"entropy": "fixed"})[0]
    auto = round_trip(BINARY, w, {"entropy": "auto"})[0]
    assert auto.payload_nbytes <= fixed.payload_nbytes


def test_importance_weights_the_scale(round_trip) -> None:
    w = np.array([1.0, -2.0, 4.0, -8.0], dtype=np.float32)
    _, _, out = round_trip(BINARY, w, {}, np.array([0.0, 0.0, 1.0, 1.0]))
    assert out.tolist() == [6.0, -6.0, 6.0, -6.0]


def test_real_layer(round_trip, lenet5_conv2) -> None:
    plan, _, _ = round_trip(BINARY, lenet5_conv2, {})
    bits = 8 * plan.payload_nbytes / lenet5_conv2.size
    print(f"binary LeNet-5 conv2: {plan.payload_nbytes} bytes ({bits:.3f} bits/weight), "
          f"SQNR {plan.sqnr_db:.2f} dB")
    # sign x mean|w|: 3 dB on Laplace weights, 4.4 dB on Gaussian ones
    assert 2.0 < plan.sqnr_db < 6.0
    assert bits <= 1.0 + 8 * (50 * 4 + 1) / lenet5_conv2.size


def _record() -> tuple[bytes, bytes]:
    w = np.random.default_rng(0).laplace(size=(6, 10)).astype(np.float32)
    plan, payload = BINARY.bind(w.reshape(-1), w.shape).encode(
        resolve_options(BINARY.options, {"entropy": "fixed"}))
    assert BINARY.describe(plan.params) == {"name": "binary", "granularity": "channel",
                                            "scales": "float16", "entropy": "fixed"}
    return plan.params, payload


PARAMS, PAYLOAD = _record()
SHAPE = (6, 10)


@pytest.mark.parametrize(("params", "payload", "match"), [
    (b"\x01", PAYLOAD, "2"),
    (b"\x63" + PARAMS[1:], PAYLOAD, "entropy"),
    (PARAMS[:1] + b"\x83", PAYLOAD, "flags"),
    (PARAMS, PAYLOAD[:11], "scales"),
    (PARAMS, PAYLOAD[:-1], "bytes"),
    (PARAMS, PAYLOAD + b"\x00", "bytes"),
    (PARAMS, struct.pack("<e", np.nan) + PAYLOAD[2:], "finite"),
    (PARAMS, struct.pack("<e", -0.0) + PAYLOAD[2:], "negative"),
    (PARAMS, PAYLOAD[:12] + Fixed().encode(np.full(60, 1)), "symbol"),
], ids=["short-params", "coder", "flags", "no-scales", "short", "long", "nan-scale",
        "negative-zero-scale", "symbol-1"])
def test_damaged_record_is_refused(params: bytes, payload: bytes, match: str) -> None:
    for decode in (BINARY.decode, BINARY.decode_reference):
        with pytest.raises(ValueError, match=match):
            decode(params, payload, SHAPE)


def test_check_refuses_a_short_payload_before_reading() -> None:
    with pytest.raises(ValueError, match="scales"):
        BINARY.check(PARAMS, 3, (1 << 20, 4))
