"""Entropy stage ``fixed``: exact size, bit-exact twins, one spelling per stream."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.fixed import unzigzag, zigzag, zigzag_reference

SLOW = settings(deadline=None)
FIXED = registry.entropy("fixed")


@SLOW
@given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=200))
def test_round_trip_exact_size_and_twin(values: list[int]) -> None:
    s = np.array(values, dtype=np.int64)
    data = FIXED.encode(s)
    assert len(data) == FIXED.nbytes(s)
    for decode in (FIXED.decode, FIXED.decode_reference):
        out = decode(data, s.size)
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, s)


@pytest.mark.parametrize(("values", "nbytes"), [
    ([], 1), ([0, 0, 0], 1), ([-1], 2), ([1, -1, 0, 0], 2), ([-8, 7] * 4, 1 + 4),
])
def test_width_is_the_fewest_bits(values: list[int], nbytes: int) -> None:
    assert FIXED.nbytes(np.array(values, dtype=np.int32)) == nbytes


@pytest.mark.parametrize("damage", ["short", "long", "padding", "wide"])
def test_damaged_stream_is_refused(damage: str) -> None:
    s = np.array([3, -2, 1], dtype=np.int32)  # codes 6, 3, 2: 3 bits each, 9 bits + padding
    data = bytearray(FIXED.encode(s))
    if damage == "short":
        data = data[:-1]
    elif damage == "long":
        data += b"\0"
    elif damage == "padding":
        data[-1] |= 1
    else:
        data[0] = 33
    for decode in (FIXED.decode, FIXED.decode_reference):
        with pytest.raises(ValueError):
            decode(bytes(data), 3)


def test_non_minimal_width_is_refused() -> None:
    # 3 codes of width 4 where 3 bits would do: a second spelling of [3, -2, 1].
    data = bytes([4]) + np.packbits(np.unpackbits(np.array([6, 3, 2], np.uint8)[:, None],
                                                  axis=1)[:, 4:].ravel()).tobytes()
    with pytest.raises(ValueError, match="smallest"):
        FIXED.decode(data, 3)


@SLOW
@given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=100))
def test_zigzag_kernel_matches_its_twin(values: list[int]) -> None:
    s = np.array(values, dtype=np.int32)
    codes = zigzag(s)
    np.testing.assert_array_equal(codes, zigzag_reference(s))
    np.testing.assert_array_equal(unzigzag(codes), s)
    np.testing.assert_array_equal(unzigzag(codes, reference=True), s)
