"""The cabac entropy stage: round trips, numba against its twin, exact size, damage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import cabac_ref, registry
from inspector.core.stages.cabac import (
    MAX_LEVEL,
    SYMBOLS_PER_BYTE,
    Cabac,
    as_levels,
    cost_table,
    encode_with,
    level_bits,
)

SLOW = settings(deadline=None, max_examples=60)
CABAC = Cabac()

# Mostly zeros and small levels, sometimes a large one: the shape of quantized weights.
level = st.one_of(
    st.just(0), st.just(0), st.integers(-3, 3), st.integers(-300, 300),
    st.integers(-MAX_LEVEL, MAX_LEVEL),
)
streams = st.lists(level, min_size=0, max_size=200).map(lambda v: np.array(v, dtype=np.int32))
params = st.tuples(st.integers(0, 15), st.integers(0, 15))

# A fixed stream and its exact bytes: the format cannot drift silently.
GOLDEN_LEVELS = [0, 0, 1, -1, 0, 3, 0, 0, -12, 40, 0, 0, 0, 2, 1000, -70000, 0, 1, 0, 0]
GOLDEN_HEX = "8051bac57ed687d123c199f7da7ff50c6b0f"


def laplace(n: int, scale: float, seed: int = 0) -> np.ndarray:
    return np.round(np.random.default_rng(seed).laplace(0, scale, n)).astype(np.int32)


def test_registered() -> None:
    assert registry.entropy("cabac").code == 3
    assert registry.entropy_by_code(3).name == "cabac"


@SLOW
@given(streams)
def test_round_trip_and_twin(levels: np.ndarray) -> None:
    data = CABAC.encode(levels)
    assert len(data) == CABAC.nbytes(levels)
    np.testing.assert_array_equal(CABAC.decode(data, levels.size), levels)
    np.testing.assert_array_equal(CABAC.decode_reference(data, levels.size), levels)
    if levels.size:
        assert cabac_ref.encode(levels, data[0] >> 4, data[0] & 15) == data[1:]


@SLOW
@given(streams.filter(len), params)
def test_every_parameter_pair(levels: np.ndarray, gk: tuple[int, int]) -> None:
    data = encode_with(levels, *gk)
    assert data[0] == gk[0] << 4 | gk[1]
    assert cabac_ref.encode(levels, *gk) == data[1:]
    np.testing.assert_array_equal(CABAC.decode(data, levels.size), levels)
    np.testing.assert_array_equal(cabac_ref.decode(data[1:], *gk, levels.size), levels)


def test_empty_and_single() -> None:
    assert CABAC.encode(np.array([], dtype=np.int32)) == b""
    assert CABAC.nbytes(np.array([], dtype=np.int64)) == 0
    assert CABAC.decode(b"", 0).size == 0
    with pytest.raises(ValueError, match="damaged"):
        CABAC.decode(b"\x80", 0)
    with pytest.raises(ValueError, match="damaged"):
        CABAC.decode(b"", 1)
    for v in (0, 1, -1, 2, -9, 1 << 20, -(1 << 20), MAX_LEVEL, -MAX_LEVEL):
        lv = np.array([v], dtype=np.int32)
        data = CABAC.encode(lv)
        assert len(data) == CABAC.nbytes(lv)
        assert CABAC.decode(data, 1).tolist() == [v]
        assert CABAC.decode_reference(data, 1).tolist() == [v]


def test_extreme_levels_every_parameter() -> None:
    lv = np.array([MAX_LEVEL, -MAX_LEVEL, 0, MAX_LEVEL - 1, 1 << 20, -(1 << 29)], np.int32)
    for g in (0, 1, 8, 15):
        for k in (0, 1, 7, 15):
            data = encode_with(lv, g, k)
            np.testing.assert_array_equal(CABAC.decode(data, lv.size), lv)
            assert cabac_ref.encode(lv, g, k) == data[1:]


def test_levels_beyond_the_limit_are_refused() -> None:
    for bad in (np.array([MAX_LEVEL + 1]), np.array([-(1 << 31)], np.int32),
                np.array([1 << 40])):
        with pytest.raises(ValueError, match="up to"):
            CABAC.encode(bad)
        with pytest.raises(ValueError, match="up to"):
            CABAC.nbytes(bad)
    with pytest.raises(ValueError, match="integers"):
        as_levels(np.array([0.5]))


def _accepts_only_its_own(data: bytes, count: int) -> None:
    """``data`` is refused, or it is exactly the code of what it decodes to (both decoders)."""
    try:
        got = CABAC.decode(data, count)
    except ValueError as err:
        assert "damaged" in str(err)
        with pytest.raises(ValueError, match="damaged"):
            CABAC.decode_reference(data, count)
        return
    np.testing.assert_array_equal(CABAC.decode_reference(data, count), got)
    assert encode_with(got, data[0] >> 4, data[0] & 15) == bytes(data)


@SLOW
@given(streams.filter(len), st.data())
def test_damaged_streams(levels: np.ndarray, draw: st.DataObject) -> None:
    data = CABAC.encode(levels)
    n = levels.size
    cut = draw.draw(st.integers(0, len(data) - 1))
    _accepts_only_its_own(data[:cut], n)  # truncated
    for extra in (b"\x00", b"\x01", b"\xff", b"\x80\x00"):  # extended
        # May be another stream's code (then it decodes to other levels), never this one's.
        _accepts_only_its_own(data + extra, n)
    with pytest.raises(ValueError, match="damaged"):
        CABAC.decode(data + b"\x00", n)  # a zero byte more is never a code: tails end nonzero
    at = draw.draw(st.integers(0, len(data) - 1))
    flipped = bytearray(data)
    flipped[at] ^= 1 << draw.draw(st.integers(0, 7))
    _accepts_only_its_own(bytes(flipped), n)
    _accepts_only_its_own(data, n + draw.draw(st.integers(1, 3)))  # more symbols asked for
    if n > 1:
        _accepts_only_its_own(data, n - 1)


@SLOW
@given(st.binary(min_size=0, max_size=40), st.integers(0, 200))
def test_garbage_never_crashes(data: bytes, count: int) -> None:
    if count == 0:
        return
    _accepts_only_its_own(data, count)


def test_count_beyond_what_the_bytes_can_hold() -> None:
    data = CABAC.encode(np.zeros(100_000, dtype=np.int32))
    assert len(data) * SYMBOLS_PER_BYTE >= 100_000
    with pytest.raises(ValueError, match="cannot hold"):
        CABAC.decode(data, len(data) * SYMBOLS_PER_BYTE + 1)
    with pytest.raises(ValueError, match="cannot hold"):
        CABAC.decode(b"\x80", 10**12)  # refused before anything is allocated


def test_all_zero_stream_costs_the_state_floor() -> None:
    # The probability states saturate at 32606/32768: 0.00715 bit a level, not 0.
    n = 1_000_000
    nbytes = CABAC.nbytes(np.zeros(n, dtype=np.int32))
    assert n * 0.0071 / 8 < nbytes < n * 0.0072 / 8 + 64


def test_state_limits_give_the_symbols_per_byte_bound() -> None:
    # An update is monotone in the state, so all-zeros and all-ones bins reach the extremes.
    for bit, fast, slow in ((0, 32705, 32507), (1, 63, 261)):
        model = cabac_ref._Model()
        for _ in range(3000):
            model.update(0, bit)
        assert (model.fast[0], model.slow[0]) == (fast, slow)
    pmax, pmin = (32705 + 32507) // 2, (63 + 261) // 2
    least = min(-np.log2(pmax / 32768), -np.log2(1 - pmin * (2.0**-15 - 2.0**-24)))
    assert 8 / least <= SYMBOLS_PER_BYTE < 8 / least + 1


def _order0_bits(lv: np.ndarray) -> float:
    _, counts = np.unique(lv, return_counts=True)
    return float(-(counts * np.log2(counts / lv.size)).sum())


def test_beats_huffman_and_nears_order0_on_iid_streams() -> None:
    # Independent levels: no context helps; learning and the states' noise cost < 1%.
    huff = registry.entropy("huffman")
    for scale in (0.2, 1.0, 8.0, 40.0, 200.0):  # (near-empty streams: the floor test below)
        lv = laplace(200_000, scale, seed=1)
        bits = 8 * CABAC.nbytes(lv)
        assert bits <= _order0_bits(lv) * 1.01
        assert bits < 8 * huff.nbytes(lv)
    sparse = laplace(200_000, 0.2, seed=1)
    assert 8 * CABAC.nbytes(sparse) < 0.5 * 8 * huff.nbytes(sparse)  # Huffman: >= 1 bit


def test_beats_order0_when_rows_differ() -> None:
    # Rows of different scales (as output channels have): the contexts and the adaptation
    # follow them, a single order-0 code cannot.
    rows = [laplace(2000, s, seed=i) for i, s in enumerate(np.geomspace(0.05, 4.0, 40))]
    lv = np.concatenate(rows)
    assert 8 * CABAC.nbytes(lv) < 0.95 * _order0_bits(lv)


def test_level_bits_is_the_rate() -> None:
    for scale in (0.1, 1.0, 20.0):
        lv = laplace(20_000, scale, seed=2)
        bits = level_bits(lv)
        assert bits.shape == lv.shape and (bits > 0).all()
        assert abs(bits.sum() - 8 * (CABAC.nbytes(lv) - 1)) <= 1e-3 * bits.sum() + 40
    assert level_bits(np.array([], dtype=np.int32)).size == 0


def test_golden_vector() -> None:
    data = CABAC.encode(np.array(GOLDEN_LEVELS, dtype=np.int32))
    assert data.hex() == GOLDEN_HEX
    assert CABAC.decode(bytes.fromhex(GOLDEN_HEX), len(GOLDEN_LEVELS)).tolist() == GOLDEN_LEVELS


def test_cost_table_prices_levels_like_the_coder() -> None:
    lv = laplace(100_000, 1.5, seed=3)
    g = 8
    table = cost_table(lv, 40)
    assert table.shape == (g + 2, g + 2, 41)
    a = np.abs(lv).astype(np.int64)
    a1 = np.minimum(np.concatenate([[0], a[:-1]]), g + 1)
    a2 = np.minimum(np.concatenate([[0, 0], a[:-2]]), g + 1)
    priced = table[a1, a2, np.minimum(a, 40)].sum()
    assert abs(priced - 8 * CABAC.nbytes(lv)) < 0.02 * priced  # a stationary stream
    steps = np.diff(table[0, 0, 1:])
    assert (steps >= 0).all() and (steps[:g] > 0).all()  # past zero, bigger levels cost more
    with pytest.raises(ValueError, match="max_abs"):
        cost_table(lv, -1)
