"""bfloat16 storage: nearest-even rounding as ml_dtypes does it, NaNs kept NaN, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.format.dtypes import bfloat16_bits, cast, from_bytes, to_bytes


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 64), elements=st.floats(width=32)))
def test_bfloat16_rounding_matches_ml_dtypes(values: np.ndarray) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    got = bfloat16_bits(values)
    nan = np.isnan(values)
    want = values[~nan].astype(ml_dtypes.bfloat16).view(np.uint16)  # NaN casts warn
    np.testing.assert_array_equal(got[~nan], want)
    assert np.isnan(got[nan].view(ml_dtypes.bfloat16).astype(np.float32)).all()


def test_bfloat16_rounding_edges() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bits = np.array(
        [0x3F808000, 0x3F818000, 0x3F807FFF, 0x7F7FFFFF, 0x00000001, 0x80000000, 0x7F800000,
         0xFF800000, 0x7FC00001, 0xFFFFFFFF, 0x7F800001],
        dtype=np.uint32,
    )  # ties to even (down, up), below a tie, overflow to inf, subnormal, -0, inf, NaNs
    values = bits.view(np.float32)
    got = bfloat16_bits(values)
    nan = np.isnan(values)
    want = values[~nan].astype(ml_dtypes.bfloat16).view(np.uint16)
    np.testing.assert_array_equal(got[~nan], want)
    assert np.isnan(got[nan].view(ml_dtypes.bfloat16).astype(np.float32)).all()
    assert got.dtype == np.dtype("<u2")


def test_nans_survive_storage_and_casting() -> None:
    """0x7F800001 (payload only in the low bits) once became +inf, 0xFFFFFFFF became 0.0."""
    values = np.array([0x7F800001, 0xFFFFFFFF, 0x7FC00000], np.uint32).view(np.float32)
    stored = from_bytes(to_bytes(values, "bfloat16"), "bfloat16", (3,))
    assert np.isnan(stored).all() and np.isnan(cast(values, "bfloat16")).all()
    assert np.signbit(stored).tolist() == [False, True, False]
