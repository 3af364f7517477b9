"""Fixed-width MSB-first bit packing and LEB128 varints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.bitpack import (
    _pack_fixed_ref,
    _unpack_fixed_ref,
    fixed_nbytes,
    pack_fixed,
    read_uvarint,
    unpack_fixed,
    uvarint,
)

# The first call of a kernel may JIT-compile it, which no deadline should count.
SLOW = settings(deadline=None)


@st.composite
def values_and_width(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    width = draw(st.integers(1, 32))
    values = draw(st.lists(st.integers(0, 2**width - 1), max_size=200))
    return np.array(values, dtype=np.uint64), width


@SLOW
@given(values_and_width())
def test_pack_round_trip_and_matches_ref(case: tuple[np.ndarray, int]) -> None:
    values, width = case
    packed = pack_fixed(values, width)
    assert packed == _pack_fixed_ref(values, width)
    assert len(packed) == fixed_nbytes(values.size, width)
    out = unpack_fixed(packed, width, values.size)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(_unpack_fixed_ref(packed, width, values.size), values)


@pytest.mark.parametrize("width", range(1, 33))
def test_every_width_extremes(width: int) -> None:
    values = np.array([0, 2**width - 1, 1, 2 ** (width - 1), 0, 2**width - 1], dtype=np.uint64)
    packed = pack_fixed(values, width)
    np.testing.assert_array_equal(unpack_fixed(packed, width, values.size), values)
    # Bytes past the stream are ignored.
    np.testing.assert_array_equal(unpack_fixed(packed + b"\xff", width, values.size), values)


def test_bit_order_is_msb_first_with_zero_padding() -> None:
    assert pack_fixed(np.array([1]), 1) == b"\x80"
    assert pack_fixed(np.array([5, 3]), 3) == bytes([0b10101100])
    assert pack_fixed(np.array([0xABC]), 12) == b"\xab\xc0"
    assert pack_fixed(np.array([0xDEADBEEF], dtype=np.uint32), 32) == b"\xde\xad\xbe\xef"


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64])
def test_any_integer_dtype(dtype: type) -> None:
    values = np.array([0, 1, 2, 3, 127], dtype=dtype)
    np.testing.assert_array_equal(unpack_fixed(pack_fixed(values, 7), 7, 5), values)


def test_empty() -> None:
    assert pack_fixed(np.array([], dtype=np.uint8), 5) == b""
    assert unpack_fixed(b"", 5, 0).size == 0
    assert fixed_nbytes(0, 17) == 0


def test_unpack_accepts_uint8_array() -> None:
    packed = np.frombuffer(pack_fixed(np.arange(10), 4), dtype=np.uint8)
    np.testing.assert_array_equal(unpack_fixed(packed, 4, 10), np.arange(10))
    with pytest.raises(ValueError, match="uint8"):
        unpack_fixed(packed.astype(np.int64), 4, 10)


def test_fixed_nbytes_python_ints() -> None:
    assert fixed_nbytes(2**40 + 1, 32) == 2**42 + 4
    assert fixed_nbytes(3, 3) == 2
    with pytest.raises(ValueError):
        fixed_nbytes(-1, 3)


@pytest.mark.parametrize(
    ("values", "width"),
    [([2], 1), ([-1], 8), ([256], 8), ([2**32], 32), ([1], 0), ([1], 33)],
)
def test_pack_rejects_bad_input(values: list[int], width: int) -> None:
    with pytest.raises(ValueError):
        pack_fixed(np.array(values, dtype=np.int64), width)


def test_pack_rejects_floats() -> None:
    with pytest.raises(ValueError, match="integers"):
        pack_fixed(np.array([1.0]), 4)


def test_unpack_truncated() -> None:
    packed = pack_fixed(np.arange(9), 4)  # 36 bits -> 5 bytes
    with pytest.raises(ValueError, match="truncated"):
        unpack_fixed(packed[:4], 4, 9)
    with pytest.raises(ValueError, match="truncated"):
        unpack_fixed(b"", 1, 1)


@SLOW
@given(st.binary(max_size=64), st.integers(-3, 40), st.integers(-3, 600))
def test_unpack_random_input_only_raises_value_error(buf: bytes, width: int, count: int) -> None:
    try:
        out = unpack_fixed(buf, width, count)
    except ValueError:
        return
    assert out.size == count
    np.testing.assert_array_equal(out, _unpack_fixed_ref(buf, width, count))


@given(st.integers(0, 2**64))
def test_uvarint_round_trip(value: int) -> None:
    data = b"\x01" + uvarint(value) + b"\xff"
    assert read_uvarint(data, 1, 2**64) == (value, 1 + len(uvarint(value)))


def test_uvarint_layout() -> None:
    assert uvarint(0) == b"\x00"
    assert uvarint(127) == b"\x7f"
    assert uvarint(128) == b"\x80\x01"
    assert uvarint(65537) == b"\x81\x80\x04"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (b"\x80", "truncated"),
        (b"\x80\x00", "non-minimal"),
        (b"\x81\x80\x80\x01", "exceeds"),  # more bytes than the limit needs
        (b"\x81\x80\x40", "exceeds"),  # 2**20 + 1
    ],
)
def test_read_uvarint_errors(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        read_uvarint(data, 0, 2**20)


def test_read_uvarint_offset_outside_buffer() -> None:
    with pytest.raises(ValueError):
        read_uvarint(b"\x01", 5, 100)
    with pytest.raises(ValueError):
        read_uvarint(b"\x01", -1, 100)
