"""The huffman entropy stage: signed levels through the canonical Huffman streams."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.huffman import HuffmanStage

SLOW = settings(deadline=None, max_examples=60)
HUFF = HuffmanStage()
I32 = (-(1 << 31), (1 << 31) - 1)

level = st.one_of(st.just(0), st.integers(-3, 3), st.integers(-300, 300), st.integers(*I32))
streams = st.lists(level, min_size=0, max_size=300).map(lambda v: np.array(v, dtype=np.int32))

# A fixed stream and its exact bytes: the format cannot drift silently.
GOLDEN_LEVELS = [0, 0, 1, -1, 0, 3, 0, 0, -2, 1, 0, 0, 0, 2, 0, -1, 0, 1, 0, 0]
GOLDEN = {  # levels x repeats: hex (20 levels code fixed width, 60 Huffman)
    1: "0003054995520d25114d20",
    3: "0103050620c2320c2c63a8f450b18ea3d142c63a8f4500",
}


def test_registered() -> None:
    assert registry.entropy("huffman").code == 2
    assert registry.entropy_by_code(2).name == "huffman"


@SLOW
@given(streams)
def test_round_trip_and_twin(levels: np.ndarray) -> None:
    data = HUFF.encode(levels)
    assert len(data) == HUFF.nbytes(levels)
    np.testing.assert_array_equal(HUFF.decode(data, levels.size), levels)
    np.testing.assert_array_equal(HUFF.decode_reference(data, levels.size), levels)


def test_modes() -> None:
    rng = np.random.default_rng(0)
    skewed = np.round(rng.laplace(0, 0.7, 5000)).astype(np.int32)
    assert HUFF.encode(skewed)[0] == 1  # Huffman
    flat = rng.integers(-8, 8, 5000).astype(np.int32)
    assert HUFF.encode(flat)[0] == 0  # uniform: fixed width is smaller
    const = np.full(1000, -7, dtype=np.int32)
    assert len(HUFF.encode(const)) == 3  # mode, min, span 0: no code bits
    wide = np.array([I32[0], 0, I32[1]] * 10, dtype=np.int32)  # beyond the table: fixed
    data = HUFF.encode(wide)
    assert data[0] == 0 and len(data) == HUFF.nbytes(wide)
    np.testing.assert_array_equal(HUFF.decode(data, wide.size), wide)
    for n in (0, 1):
        lv = np.arange(n, dtype=np.int32) - 5
        assert HUFF.decode(HUFF.encode(lv), n).tolist() == lv.tolist()
    with pytest.raises(ValueError, match="int32"):
        HUFF.encode(np.array([1 << 31]))


def _accepts_only_its_own(data: bytes, count: int) -> None:
    try:
        got = HUFF.decode(data, count)
    except ValueError as err:
        assert "damaged" in str(err)
        with pytest.raises(ValueError, match="damaged"):
            HUFF.decode_reference(data, count)
        return
    np.testing.assert_array_equal(HUFF.decode_reference(data, count), got)
    assert HUFF.encode(got) == bytes(data)


@SLOW
@given(streams.filter(len), st.data())
def test_damaged_streams(levels: np.ndarray, draw: st.DataObject) -> None:
    data = HUFF.encode(levels)
    n = levels.size
    _accepts_only_its_own(data[: draw.draw(st.integers(0, len(data) - 1))], n)
    for extra in (b"\x00", b"\x01", b"\xff"):
        _accepts_only_its_own(data + extra, n)
    flipped = bytearray(data)
    flipped[draw.draw(st.integers(0, len(data) - 1))] ^= 1 << draw.draw(st.integers(0, 7))
    _accepts_only_its_own(bytes(flipped), n)
    _accepts_only_its_own(data, n + 1)
    with pytest.raises(ValueError, match="damaged"):
        HUFF.decode(data, 0)


@SLOW
@given(st.binary(max_size=30), st.integers(1, 100))
def test_garbage_never_crashes(data: bytes, count: int) -> None:
    _accepts_only_its_own(data, count)


def test_golden_vectors() -> None:
    for repeats, hexed in GOLDEN.items():
        levels = GOLDEN_LEVELS * repeats
        assert HUFF.encode(np.array(levels, dtype=np.int32)).hex() == hexed
        assert HUFF.decode(bytes.fromhex(hexed), len(levels)).tolist() == levels
