"""Stored codebooks: float16 only when it adds under 1% error, delta-coded keys round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from inspector.core.cluster import Points, kmeans
from inspector.core.codebook import (
    HALF_TOLERANCE,
    codebook_bytes,
    coded_codebook,
    coded_nbytes,
    half_codebook,
    ordered_keys,
    read_codebook,
)

HALVES = hnp.arrays(np.float16, st.integers(0, 256),
                    elements=st.floats(-60000, 60000, width=16, allow_subnormal=True))


@settings(deadline=None, max_examples=300)
@given(HALVES)
def test_coded_codebook_round_trips_bit_exactly(values: np.ndarray) -> None:
    cb = np.sort(values.astype(np.float32))
    coded = coded_codebook(cb)
    keys = ordered_keys(cb)
    if coded is None:
        assert coded_nbytes(cb) == -1
        assert np.any(np.diff(keys) < 0)  # only a -0.0 after a 0.0 breaks the order
        return
    assert np.all(np.diff(keys) >= 0)
    assert codebook_bytes(cb, True, True) == coded and coded_nbytes(cb) == len(coded)
    back, n = read_codebook(memoryview(coded + b"tail"), cb.size, True, True)
    assert n == len(coded)
    assert back.dtype == np.float32 and back.astype("<f2").tobytes() == cb.astype("<f2").tobytes()


def test_ordered_keys_ascend_with_the_values() -> None:
    cb = np.array([-65504, -1, -1e-7, 0.0, 1e-7, 0.5, 65504], np.float16).astype(np.float32)
    assert np.all(np.diff(ordered_keys(cb)) > 0)


@pytest.mark.parametrize("data", [b"", b"\xff\xff\x03", b"\x80", b"\x01\xff\xff\x03"])
def test_damaged_coded_codebooks_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        read_codebook(memoryview(data), 2, True, True)


def points_of(w: np.ndarray) -> Points:
    v, c = np.unique(w.astype(np.float64), return_counts=True)
    return Points(c.astype(np.int64), v * c, v * v * c)


def test_float16_only_when_the_error_allows() -> None:
    rng = np.random.default_rng(0)
    coarse = points_of(rng.normal(0, 0.05, 3000).astype(np.float32))
    cb, sse, half = half_codebook(kmeans(coarse, 16), coarse)
    assert half and cb.astype(np.float16).astype(np.float32).tobytes() == cb.tobytes()
    fine = points_of(1000 + rng.normal(0, 0.01, 3000).astype(np.float32))  # float16 step 0.5
    clustering = kmeans(fine, 64)
    cb, sse, half = half_codebook(clustering, fine)
    assert not half and sse == clustering.sse and cb is clustering.codebook
    _, sse_pruned, half_pruned = half_codebook(clustering, fine, pruned_sse=1e9)
    assert half_pruned and sse_pruned - clustering.sse <= HALF_TOLERANCE * (clustering.sse + 1e9)
