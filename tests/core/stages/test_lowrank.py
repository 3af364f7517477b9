"""Method ``lowrank``: exact round trips, rank/energy semantics, the product's arithmetic,
damaged records refused."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.core.stages.lowrank_kernels import product, product_reference
from inspector.errors import SettingsError

LOWRANK = registry.method("lowrank")
SHAPES = [(7,), (5, 9), (4, 3, 2, 2), (1, 1), (6, 33), (), (12, 3, 5, 5), (3, 0)]


@settings(deadline=None, max_examples=40)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16),
       rank=st.one_of(st.none(), st.integers(1, 40)), energy=st.floats(0.05, 1.0),
       spatial=st.booleans(), values=st.sampled_from(["float", "uniform"]),
       bits=st.integers(2, 12), f64=st.booleans())
def test_round_trip_is_exact_and_twins_agree(round_trip, layer, shape, seed, rank, energy,
                                             spatial, values, bits, f64) -> None:
    w = layer(shape, seed)
    w = w.astype(np.float64) if f64 else w
    split = "spatial" if spatial and len(shape) == 4 else "channels"
    plan, payload, _ = round_trip(LOWRANK, w, {"rank": rank, "energy": energy, "split": split,
                                               "values": values, "factor_bits": bits})
    info = LOWRANK.describe(plan.params)
    assert info["split"] == split
    if values == "float" and w.size:
        m = shape[0] if shape else 1
        n = w.size // m if split == "channels" else shape[0] * shape[3]
        m = m if split == "channels" else shape[1] * shape[2]
        width = 2 if info["values"] == "float16" else 4
        assert len(payload) == info["rank"] * (m + n) * width
        if rank is not None:
            assert info["rank"] == min(rank, m, n)


def test_product_is_the_documented_sum() -> None:
    """Each element: float64 terms added k = 0, 1, ... from 0.0, rounded once to float32."""
    rng = np.random.default_rng(3)
    p = (rng.standard_normal((9, 4)) * 10.0 ** rng.integers(-6, 6, (9, 4))).astype(np.float32)
    q = (rng.standard_normal((9, 5)) * 10.0 ** rng.integers(-6, 6, (9, 5))).astype(np.float32)
    spec = np.empty((4, 5), np.float32)
    for i in range(4):
        for j in range(5):
            acc = 0.0
            for k in range(9):
                acc += float(p[k, i]) * float(q[k, j])
            spec[i, j] = np.float32(acc)
    assert product(p, q).tobytes() == product_reference(p, q).tobytes() == spec.tobytes()


def test_energy_one_is_the_layer_and_error_falls_with_rank(round_trip, layer) -> None:
    w = layer((24, 40), 5)
    full = round_trip(LOWRANK, w, {"energy": 1.0})[0]
    assert LOWRANK.describe(full.params)["rank"] == 24
    assert full.sse <= 1e-9 * full.sumsq  # float32 factors: float rounding only
    errors = [round_trip(LOWRANK, w, {"rank": r})[0].sse for r in (1, 4, 8, 16, 24)]
    assert all(a > b for a, b in itertools.pairwise(errors))


def test_energy_keeps_the_fewest_values_holding_it(layer) -> None:
    w = layer((20, 30), 8).astype(np.float64)
    s2 = np.linalg.svd(w, compute_uv=False) ** 2
    share = np.cumsum(s2) / s2.sum()
    for energy in (0.3, 0.6, 0.9, 0.99):
        opts = resolve_options(LOWRANK.options, {"energy": energy})
        plan = LOWRANK.bind(w.reshape(-1), w.shape).plan(opts)
        rank = LOWRANK.describe(plan.params)["rank"]
        assert share[rank - 1] >= energy and (rank == 1 or share[rank - 2] < energy)


def test_spatial_split_matches_vertical_then_horizontal_filters(layer) -> None:
    """The factors are kh x 1 filters to ``rank`` channels, then 1 x kw filters."""
    w = layer((6, 3, 3, 5), 2)
    opts = resolve_options(LOWRANK.options, {"split": "spatial", "rank": 4})
    plan, payload = LOWRANK.bind(w.reshape(-1), w.shape).encode(opts)
    f = LOWRANK.factors(plan.params, payload, w.shape)
    v = f.p.reshape(4, 3, 3)  # (rank, in, kh)
    h = f.q.reshape(4, 6, 5)  # (rank, out, kw)
    want = np.einsum("kcy,kox->ocyx", v.astype(np.float64), h.astype(np.float64))
    got = LOWRANK.decode(plan.params, payload, w.shape).reshape(w.shape)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7)


def test_uniform_factors_are_smaller_than_float_ones(round_trip, lenet5_conv2) -> None:
    flt = round_trip(LOWRANK, lenet5_conv2, {"rank": 12})[0]
    uni = round_trip(LOWRANK, lenet5_conv2, {"rank": 12, "values": "uniform", "factor_bits": 6})[0]
    assert uni.payload_nbytes < flt.payload_nbytes / 2
    assert uni.sqnr_db > flt.sqnr_db - 6


def test_spatial_on_an_fc_layer_is_a_settings_error(layer) -> None:
    w = layer((5, 9), 1)
    with pytest.raises(SettingsError, match="spatial"):
        LOWRANK.bind(w.reshape(-1), w.shape).plan(resolve_options(LOWRANK.options,
                                                                  {"split": "spatial"}))


def _record(values: str) -> tuple[bytes, bytes]:
    w = np.random.default_rng(1).laplace(size=(6, 10)).astype(np.float32)
    opts = resolve_options(LOWRANK.options, {"rank": 3, "values": values})
    plan, payload = LOWRANK.bind(w.reshape(-1), w.shape).encode(opts)
    return plan.params, payload


@pytest.mark.parametrize("values", ["float", "uniform"])
def test_damaged_records_are_refused(values) -> None:
    params, payload = _record(values)
    bad = [
        (struct.pack("<BBI", 0, 0, 7) + params[6:], payload),  # rank beyond min(m, n)
        (struct.pack("<BBI", 0, 0, 0) + params[6:], payload),  # rank 0
        (bytes([2]) + params[1:], payload),  # unknown split
        (params[:1] + bytes([9]) + params[2:], payload),  # unknown values
        (params + b"\0", payload),
        (params[:-1], payload),
        (params, payload[:-1]),
        (params, payload + b"\0\0"),
    ]
    for p, d in bad:
        with pytest.raises(ValueError):
            LOWRANK.decode(p, d, (6, 10))
        with pytest.raises(ValueError):
            LOWRANK.decode_reference(p, d, (6, 10))
    with pytest.raises(ValueError, match="spatial"):
        LOWRANK.check(bytes([1]) + params[1:], len(payload), (6, 10))


def _outcome(decode, params: bytes, payload: bytes) -> bytes | str:
    try:
        out = decode(params, payload, (6, 10))
    except ValueError as exc:
        assert str(exc)  # one readable line
        return "ValueError"
    assert out.dtype == np.float32 and out.size == 60
    return out.tobytes()


RECORDS = {v: _record(v) for v in ("float", "uniform")}


@pytest.mark.parametrize("values", sorted(RECORDS))
@settings(deadline=None, max_examples=60)
@given(part=st.sampled_from(["params", "payload"]), where=st.integers(0, 1 << 16),
       flip=st.integers(1, 255), cut=st.integers(-3, 3))
def test_damage_is_a_value_error_or_a_layer(values, part, where, flip, cut) -> None:
    params, payload = RECORDS[values]
    b = bytearray(params if part == "params" else payload)
    b[where % len(b)] ^= flip
    b = b[:len(b) - cut] if cut >= 0 else b + bytes(-cut)
    params, payload = (bytes(b), payload) if part == "params" else (params, bytes(b))
    assert _outcome(LOWRANK.decode, params, payload) == _outcome(LOWRANK.decode_reference,
                                                                 params, payload)
