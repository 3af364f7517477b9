"""Method ``pq``: exact plans with the codebook, padding, bit-exact twins, k-means, damage."""

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
from inspector.core.stages.fitted import symbols_of
from inspector.core.stages.fixed import Fixed

PQ = registry.method("pq")
SHAPES = [(7,), (5, 9), (4, 3, 2, 2), (1, 1), (3, 0), (6, 33), (), (40, 24)]


@settings(deadline=None, max_examples=40)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16), d=st.integers(1, 9),
       bits=st.integers(1, 6), iters=st.integers(1, 8), dead=st.booleans(),
       weighted=st.booleans(), f64=st.booleans())
def test_round_trip_is_exact_and_twins_agree(round_trip, layer, shape, seed, d, bits, iters,
                                             dead, weighted, f64) -> None:
    w = layer(shape, seed, dead)
    w = w.astype(np.float64) if f64 else w
    imp = np.random.default_rng(seed).exponential(size=w.size) if weighted else None
    plan, _, _ = round_trip(PQ, w, {"dim": d, "code_bits": bits, "iters": iters,
                                    "init_seed": seed}, imp)
    assert PQ.describe(plan.params)["codebook"] <= 2**bits


@pytest.mark.parametrize(("shape", "d"), [((30, 10), 4), ((30, 12), 4), ((9, 7), 8),
                                          ((100,), 3)])
def test_size_counts_padding_codes_and_codebook(round_trip, layer, shape, d) -> None:
    w = layer(shape, 1)
    plan, payload, _ = round_trip(PQ, w, {"dim": d, "code_bits": 3, "entropy": "fixed"})
    info = PQ.describe(plan.params)
    rows = shape[0] if len(shape) > 1 else 1
    codes = rows * math.ceil(w.size // rows / d)  # a padded tail is one more code per row
    book = info["codebook"] * d * (2 if info["codebook_dtype"] == "float16" else 4)
    assert len(payload) == book + 1 + math.ceil(codes * (info["codebook"] - 1)
                                                .bit_length() / 8)


def test_error_falls_as_bits_rise(round_trip, layer) -> None:
    w = layer((64, 40), 2)
    plans = [round_trip(PQ, w, {"dim": 4, "code_bits": b})[0] for b in (1, 3, 5, 7)]
    sse = [p.sse for p in plans]
    nbytes = [p.payload_nbytes for p in plans]
    assert sse == sorted(sse, reverse=True) and len(set(sse)) == 4
    assert nbytes == sorted(nbytes)


def test_kmeans_beats_its_init_and_is_deterministic(round_trip, layer) -> None:
    w = layer((32, 32), 3)
    one = round_trip(PQ, w, {"code_bits": 5, "iters": 1})
    many = round_trip(PQ, w, {"code_bits": 5, "iters": 30})
    again = round_trip(PQ, w, {"code_bits": 5, "iters": 30})
    other = round_trip(PQ, w, {"code_bits": 5, "iters": 30, "init_seed": 7})
    assert many[0].sse < 0.9 * one[0].sse
    assert many[1] == again[1] and other[1] != many[1]


def test_few_sub_vectors_are_exact(round_trip, layer) -> None:
    w = layer((4, 8), 4)  # 8 sub-vectors of 4, k = 256: each is its own centroid
    plan, _, out = round_trip(PQ, w, {"dim": 4, "code_bits": 8})
    assert PQ.describe(plan.params)["codebook"] == 8
    assert np.array_equal(out, w.reshape(-1)) or PQ.describe(plan.params)[
        "codebook_dtype"] == "float16"


def test_importance_steers_the_fit(round_trip, layer) -> None:
    w = layer((40, 16), 5).astype(np.float64)
    imp = np.where(np.arange(w.size) % 16 < 4, 50.0, 0.1)  # the first sub-vector of each row

    def weighted_error(importance):
        _, _, out = round_trip(PQ, w, {"dim": 4, "code_bits": 3}, importance)
        return float(np.sum(imp * (out - w.reshape(-1)) ** 2))

    assert weighted_error(imp) < 0.7 * weighted_error(None)


def test_real_layer(round_trip, lenet5_conv2) -> None:
    rows = []
    for d, bits in ((2, 4), (4, 8), (8, 8)):
        plan, _, _ = round_trip(PQ, lenet5_conv2, {"dim": d, "code_bits": bits})
        rows.append((d, bits, plan.payload_nbytes, plan.sqnr_db))
        print(f"pq LeNet-5 conv2 d={d} bits={bits}: {plan.payload_nbytes} bytes "
              f"({8 * plan.payload_nbytes / lenet5_conv2.size:.3f} bits/weight), "
              f"SQNR {plan.sqnr_db:.2f} dB")
    # d=2 at 2 bits a weight is about 2-bit scalar k-means (~9-10 dB), d=8 at 1 bit less
    assert 7.0 < rows[0][3] < 14.0 and 3.0 < rows[2][3] < rows[1][3]
    assert rows[2][2] < rows[1][2] < rows[0][2] * 1.5


def _record() -> tuple[bytes, bytes]:
    w = np.random.default_rng(0).laplace(size=(6, 10)).astype(np.float32)
    plan, payload = PQ.bind(w.reshape(-1), w.shape).encode(
        resolve_options(PQ.options, {"dim": 4, "code_bits": 2, "entropy": "fixed"}))
    return plan.params, payload


PARAMS, PAYLOAD = _record()
SHAPE = (6, 10)  # 6 rows of 3 sub-vectors
BOOK = 4 * 4 * (2 if PARAMS[2] & 1 else 4)
BAD_BOOK = struct.pack("<e" if PARAMS[2] & 1 else "<f", np.inf)


@pytest.mark.parametrize(("params", "payload", "match"), [
    (PARAMS[:3], PAYLOAD, "at least 4"),
    (b"\x63" + PARAMS[1:], PAYLOAD, "entropy"),
    (PARAMS[:1] + b"\x00" + PARAMS[2:], PAYLOAD, "sub-vector"),
    (PARAMS[:1] + b"\x11" + PARAMS[2:], PAYLOAD, "sub-vector"),
    (PARAMS[:2] + b"\x02" + PARAMS[3:], PAYLOAD, "flags"),
    (PARAMS[:3] + uvarint(19), PAYLOAD, "codebook size"),
    (PARAMS[:3] + uvarint(0), PAYLOAD, "codebook size"),
    (PARAMS[:3] + uvarint(1 << 17), PAYLOAD, "codebook size"),
    (PARAMS[:3] + b"\x84\x00", PAYLOAD, "codebook size"),
    (PARAMS + b"\x00", PAYLOAD, "trailing"),
    (PARAMS, PAYLOAD[:BOOK - 1], "codebook alone"),
    (PARAMS, PAYLOAD[:-1], "bytes"),
    (PARAMS, PAYLOAD + b"\x00", "bytes"),
    (PARAMS, BAD_BOOK + PAYLOAD[len(BAD_BOOK):], "finite"),
    (PARAMS, PAYLOAD[:BOOK] + Fixed().encode(symbols_of(np.full(18, 4))), "past the"),
], ids=["short-params", "coder", "d0", "d17", "flags", "k-too-big", "k0", "k-past-max",
        "k-not-minimal", "trailing", "no-codebook", "short", "long", "inf-centroid",
        "code-past-k"])
def test_damaged_record_is_refused(params: bytes, payload: bytes, match: str) -> None:
    for decode in (PQ.decode, PQ.decode_reference):
        with pytest.raises(ValueError, match=match):
            decode(params, payload, SHAPE)


def test_check_refuses_before_allocating() -> None:
    # a codebook of 65536 x 16 float32 claimed by a 10-byte payload: refused up front
    params = bytes([PARAMS[0], 16, 0]) + uvarint(1 << 16)
    with pytest.raises(ValueError, match="codebook alone"):
        PQ.check(params, 10, (1 << 20, 1 << 10))
    with pytest.raises(ValueError):
        PQ.decode(PARAMS, PAYLOAD, (6, 13))  # 4 sub-vectors a row: another stream length
