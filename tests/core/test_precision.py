"""fp16 / bf16 methods: bit-exact decode against the numpy twin, rounding as the formats
define it, exact sizes, saturation instead of infinity, clear errors on bad records."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.core.stages import registry
from inspector.core.stages.base import Options
from inspector.core.stages.precision import reference_values

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=32)
WEIGHTS = hnp.arrays(np.float32, st.integers(1, 300), elements=FINITE)
PATTERNS = hnp.arrays(np.uint16, st.integers(1, 300))


@pytest.mark.parametrize("name", ["fp16", "bf16"])
@settings(max_examples=60, deadline=None)
@given(w=WEIGHTS)
def test_round_trip_matches_the_twin_bit_for_bit(name: str, w: np.ndarray) -> None:
    m = registry.method(name)
    layer = m.bind(w, w.shape)
    plan, payload = layer.encode(Options())
    assert len(payload) == plan.payload_nbytes == 2 * w.size and plan.params == b""
    fast = m.decode(plan.params, payload, w.shape)
    twin = m.decode_reference(plan.params, payload, w.shape)
    assert fast.dtype == twin.dtype == np.float32
    assert np.array_equal(fast.view(np.uint32), twin.view(np.uint32))
    assert np.array_equal(fast.view(np.uint32), layer.decoded(plan.options).view(np.uint32))
    assert np.isfinite(fast).all()  # finite weights never decode to infinity (saturation)
    err = w.astype(np.float64) - fast
    assert plan.sse == pytest.approx(float(np.dot(err, err)), rel=1e-12, abs=0)
    assert plan.zeros == int(np.count_nonzero(fast == 0))


@pytest.mark.parametrize("name", ["fp16", "bf16"])
@settings(max_examples=60, deadline=None)
@given(bits=PATTERNS)
def test_any_stored_pattern_decodes_like_the_twin(name: str, bits: np.ndarray) -> None:
    m = registry.method(name)
    payload = bits.astype("<u2").tobytes()
    fast = m.decode(b"", payload, bits.shape)
    twin = m.decode_reference(b"", payload, bits.shape)
    same = (fast.view(np.uint32) == twin.view(np.uint32)) | (np.isnan(fast) & np.isnan(twin))
    assert same.all()


def test_rounding_is_the_formats_nearest_even() -> None:
    w = np.array([1.0, 1 + 2**-11, 1 + 3 * 2**-11, 1e-8, -2.5e-5, 0.1], np.float32)
    fp16 = registry.method("fp16")
    _, payload = fp16.bind(w, w.shape).encode(Options())
    assert np.array_equal(np.frombuffer(payload, "<f2"), w.astype(np.float16))
    bf16 = registry.method("bf16")
    _, payload = bf16.bind(w, w.shape).encode(Options())
    # bfloat16 is float32's upper half, rounded to nearest even (0x3F80 + half an ulp ties down)
    got = np.frombuffer(payload, "<u2")
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8], np.float32)
    _, p2 = bf16.bind(x, x.shape).encode(Options())
    assert list(np.frombuffer(p2, "<u2")) == [0x3F80, 0x3F82]
    assert got[0] == 0x3F80


def test_values_past_the_range_saturate_and_the_sqnr_counts_it() -> None:
    w = np.array([1e5, -7e4, 1.0], np.float32)
    plan, payload = registry.method("fp16").bind(w, w.shape).encode(Options())
    assert list(np.frombuffer(payload, "<f2")) == [65504.0, -65504.0, 1.0]
    assert plan.sse == pytest.approx((1e5 - 65504) ** 2 + (7e4 - 65504) ** 2)
    big = np.array([3.4e38, -3.4e38], np.float32)
    _, payload = registry.method("bf16").bind(big, big.shape).encode(Options())
    assert list(np.frombuffer(payload, "<u2")) == [0x7F7F, 0xFF7F]


def test_twin_follows_the_definition_of_the_format() -> None:
    bits = np.array([0x0001, 0x03FF, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x8000], np.uint16)
    got = reference_values(bits, 5, 10)
    assert list(got[:4]) == [2.0**-24, 1023 * 2.0**-24, 1.0, 65504.0]
    assert got[4] == np.inf and got[5] == -np.inf and np.signbit(got[6]) and got[6] == 0


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_a_record_that_disagrees_is_one_clear_error(name: str) -> None:
    m = registry.method(name)
    with pytest.raises(ValueError, match="6 expected"):
        m.check(b"", 5, (3,))
    with pytest.raises(ValueError, match="parameter bytes"):
        m.check(b"\x01", 6, (3,))
    with pytest.raises(ValueError):
        m.decode(b"", b"\x00" * 5, (3,))
    assert m.describe(b"")["name"] == name
