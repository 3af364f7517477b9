"""Method ``hashed`` (HashedNets): the portable hash, bucket means, no per-weight data."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.bitpack import uvarint
from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.core.stages.hashed import positions, positions_reference

HASHED = registry.method("hashed")
SHAPES = [(7,), (5, 9), (4, 3, 2, 2), (1, 1), (3, 0), (6, 33), (), (40, 24)]


def spec_hash(i: int, seed: int, b: int) -> tuple[int, bool]:
    """The module docstring's hash in plain Python integers (what a C decoder does)."""
    def fmix32(h: int) -> int:
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & 0xFFFFFFFF
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & 0xFFFFFFFF
        return h ^ (h >> 16)

    x = (i + seed * 0x9E3779B9) & 0xFFFFFFFF
    return (fmix32(x) * b) >> 32, bool(fmix32(x ^ 0x5BD1E995) >> 31)


@settings(deadline=None, max_examples=40)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**32 - 1),
       factor=st.floats(1.0, 20.0), buckets=st.one_of(st.none(), st.integers(1, 2000)),
       sign=st.sampled_from(["auto", "on", "off"]), weighted=st.booleans(),
       f64=st.booleans())
def test_round_trip_is_exact_and_twins_agree(round_trip, layer, shape, seed, factor,
                                             buckets, sign, weighted, f64) -> None:
    w = layer(shape, seed % 2**16)
    w = w.astype(np.float64) if f64 else w
    imp = np.random.default_rng(seed).exponential(size=w.size) if weighted else None
    plan, payload, _ = round_trip(HASHED, w, {"per_bucket": factor, "buckets": buckets,
                                              "hash_seed": seed, "sign": sign}, imp)
    info = HASHED.describe(plan.params)
    want = buckets if buckets is not None else math.ceil(w.size / factor)
    assert info["buckets"] == min(max(want, 1), w.size)
    assert len(payload) == info["buckets"] * (2 if info["dtype"] == "float16" else 4)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**32 - 1])
def test_hash_is_the_documented_one(seed: int) -> None:
    for b in (1, 7, 1000, 2**31 + 5):
        fast, neg = positions(300, seed, b)
        ref, ref_neg = positions_reference(300, seed, b)
        spec = [spec_hash(i, seed, b) for i in range(300)]
        assert fast.tolist() == ref.tolist() == [s[0] for s in spec]
        assert neg.tolist() == ref_neg.tolist() == [s[1] for s in spec]
    buckets, neg = positions(20000, seed, 10)
    assert np.bincount(buckets).min() > 1800 and 0.45 < neg.mean() < 0.55  # spread evenly


def test_payload_does_not_grow_with_the_layer(round_trip, layer) -> None:
    sizes = {round_trip(HASHED, layer(shape, 1), {"buckets": 64, "sign": "off"})[0]
             .payload_nbytes for shape in ((10, 10), (100, 100), (30, 3, 5, 5))}
    assert sizes == {128} or sizes == {256}  # the 64 buckets, float16 or float32


@pytest.mark.parametrize("sign", ["on", "off"])
def test_buckets_hold_their_members_mean(round_trip, layer, sign) -> None:
    w = layer((30, 20), 2).reshape(-1).astype(np.float64)
    imp = np.random.default_rng(2).exponential(size=w.size)
    plan, payload, out = round_trip(HASHED, w, {"buckets": 50, "hash_seed": 9, "sign": sign}, imp)
    buckets, neg = positions_reference(w.size, 9, 50)
    s = np.where(neg & (sign == "on"), -1.0, 1.0)
    means = np.bincount(buckets, imp * s * w, 50) / np.bincount(buckets, imp, 50)
    dtype = "<f2" if HASHED.describe(plan.params)["dtype"] == "float16" else "<f4"
    assert np.array_equal(np.frombuffer(payload, dtype), means.astype(np.float32)
                          .astype(dtype))
    assert np.array_equal(out, (s * np.frombuffer(payload, dtype)[buckets]).astype(np.float32))


def test_auto_sign_keeps_the_smaller_error(round_trip, layer) -> None:
    w = layer((20, 30), 3) + 0.3  # a mean the sign hash cannot share
    sse = {s: round_trip(HASHED, w, {"per_bucket": 4, "sign": s})[0].sse for s in
           ("on", "off", "auto")}
    assert sse["auto"] == min(sse["on"], sse["off"]) and sse["off"] < sse["on"]
    imp = np.random.default_rng(3).exponential(size=w.size) ** 3  # weighted: its own choice
    err = {}
    for s in ("on", "off", "auto"):
        out = round_trip(HASHED, w, {"per_bucket": 4, "sign": s}, imp)[2]
        err[s] = float(np.sum(imp * (out - w.reshape(-1).astype(np.float64)) ** 2))
    assert err["auto"] == min(err["on"], err["off"])


def test_more_buckets_lower_the_error(round_trip, layer) -> None:
    w = layer((50, 40), 4)
    plans = [round_trip(HASHED, w, {"per_bucket": f})[0] for f in (64, 8, 2, 1)]
    sse = [p.sse for p in plans]
    assert sse == sorted(sse, reverse=True)
    # one bucket a weight still collides (a random map leaves ~1/e of the buckets empty)
    assert 0.2 * plans[-1].sumsq < sse[-1] < 0.6 * plans[-1].sumsq


def test_real_layer(round_trip, lenet5_conv2) -> None:
    for factor in (4, 16):
        plan, _, _ = round_trip(HASHED, lenet5_conv2, {"per_bucket": factor})
        print(f"hashed LeNet-5 conv2 factor {factor}: {plan.payload_nbytes} bytes, SQNR "
              f"{plan.sqnr_db:.2f} dB, {HASHED.describe(plan.params)}")
        # without retraining a bucket shares unrelated weights: SQNR ~ -10 log10(1 - 1/f)
        assert plan.payload_nbytes <= 4 * math.ceil(lenet5_conv2.size / factor)
        assert 0.0 < plan.sqnr_db < 10 * math.log10(factor / (factor - 1)) + 1.0


def _record() -> tuple[bytes, bytes]:
    w = np.random.default_rng(0).laplace(size=(6, 10)).astype(np.float32)
    plan, payload = HASHED.bind(w.reshape(-1), w.shape).encode(
        resolve_options(HASHED.options, {"buckets": 8, "hash_seed": 3}))
    return plan.params, payload


PARAMS, PAYLOAD = _record()
SHAPE = (6, 10)
BAD = struct.pack("<e" if PARAMS[0] & 1 else "<f", np.nan)


@pytest.mark.parametrize(("params", "payload", "match"), [
    (PARAMS[:5], PAYLOAD, "at least 6"),
    (b"\x04" + PARAMS[1:], PAYLOAD, "flags"),
    (PARAMS[:5] + uvarint(61), PAYLOAD, "buckets for"),
    (PARAMS[:5] + uvarint(0), PAYLOAD, "buckets for"),
    (PARAMS[:5] + b"\x88\x00", PAYLOAD, "bucket count"),
    (PARAMS[:5] + b"\xff\xff\xff\xff\x7f", PAYLOAD, "bucket count"),
    (PARAMS + b"\x00", PAYLOAD, "trailing"),
    (PARAMS, PAYLOAD[:-1], "take"),
    (PARAMS, PAYLOAD + b"\x00", "take"),
    (PARAMS, BAD + PAYLOAD[len(BAD):], "finite"),
], ids=["short-params", "flags", "too-many", "zero", "not-minimal", "past-2**32",
        "trailing", "short", "long", "nan"])
def test_damaged_record_is_refused(params: bytes, payload: bytes, match: str) -> None:
    for decode in (HASHED.decode, HASHED.decode_reference):
        with pytest.raises(ValueError, match=match):
            decode(params, payload, SHAPE)


def test_check_refuses_past_the_hash_and_wrong_shapes_before_allocating() -> None:
    with pytest.raises(ValueError, match="2\\*\\*32"):
        HASHED.check(PARAMS, len(PAYLOAD), (1 << 16, 1 << 16))
    with pytest.raises(ValueError, match="buckets for"):
        HASHED.decode(PARAMS, PAYLOAD, (7,))  # 8 buckets for 7 weights
