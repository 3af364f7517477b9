"""Canonical length-limited Huffman codes: lengths, codes, streams and the length table."""

from __future__ import annotations

import heapq
import itertools
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inspector.core.huffman import (
    MAX_CODE_LENGTH,
    _canonical_codes_kernel,
    _canonical_codes_ref,
    _decode_ref,
    _encode_ref,
    _huffman_lengths,
    _huffman_lengths_ref,
    _package_merge,
    _package_merge_ref,
    canonical_codes,
    code_lengths,
    decode,
    encode,
    encoded_nbits,
    entropy_nbits,
)
from inspector.core.huffman_table import (
    MAX_TABLE_ALPHABET,
    _decode_table_ref,
    _encode_table_ref,
    decode_table,
    encode_table,
    table_nbytes,
)

# The first call of a kernel may JIT-compile it, which no deadline should count.
SLOW = settings(deadline=None)


def fibonacci(n: int) -> np.ndarray:
    """Counts whose Huffman tree is a path: depth n - 1."""
    out = [1, 1]
    while len(out) < n:
        out.append(out[-1] + out[-2])
    return np.array(out[:n], dtype=np.int64)


def heapq_huffman_nbits(counts: np.ndarray) -> int:
    """Textbook Huffman total, independent of the module: sum of all merged weights."""
    heap = [int(c) for c in counts if c > 0]
    if len(heap) == 1:
        return heap[0]
    heapq.heapify(heap)
    total = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        total += merged
        heapq.heappush(heap, merged)
    return total


def kraft(lengths: np.ndarray) -> float:
    used = lengths[lengths > 0].astype(np.float64)
    return float(np.sum(2.0**-used))


@st.composite
def counts_arrays(draw: st.DrawFn, max_size: int = 300) -> np.ndarray:
    """Alphabets with unused symbols and skew from flat to geometric."""
    size = draw(st.integers(1, max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["uniform", "geometric", "sparse", "fibonacci"]))
    if kind == "uniform":
        counts = rng.integers(0, 1000, size)
    elif kind == "geometric":
        counts = (1e6 * draw(st.floats(0.3, 0.99)) ** np.arange(size)).astype(np.int64)
        rng.shuffle(counts)
    elif kind == "sparse":
        counts = np.where(rng.random(size) < 0.1, rng.integers(1, 10**5, size), 0)
    else:
        counts = np.zeros(size, dtype=np.int64)
        counts[: min(size, 45)] = fibonacci(min(size, 45))
        rng.shuffle(counts)
    return counts.astype(np.int64)


# ------------------------------------------------------------------------------- code lengths


# Small weights make ties, where the kernels and twins must still agree exactly.
WEIGHTS = st.one_of(st.integers(1, 6), st.integers(1, 10**9))


@SLOW
@given(st.lists(WEIGHTS, min_size=2, max_size=200))
def test_huffman_kernel_matches_ref(weights: list[int]) -> None:
    w = np.sort(np.array(weights, dtype=np.int64))
    np.testing.assert_array_equal(_huffman_lengths(w), _huffman_lengths_ref(w))


@SLOW
@given(st.lists(WEIGHTS, min_size=2, max_size=80), st.integers(1, 24))
def test_package_merge_kernel_matches_ref(weights: list[int], max_len: int) -> None:
    assume(len(weights) <= 2**max_len)
    w = np.sort(np.array(weights, dtype=np.int64))
    np.testing.assert_array_equal(_package_merge(w, max_len), _package_merge_ref(w, max_len))


@SLOW
@given(counts_arrays(), st.integers(1, MAX_CODE_LENGTH))
def test_code_lengths_are_valid(counts: np.ndarray, max_len: int) -> None:
    assume(np.count_nonzero(counts) <= 2**max_len)
    lengths = code_lengths(counts, max_len)
    assert lengths.dtype == np.uint8 and lengths.shape == counts.shape
    np.testing.assert_array_equal(lengths > 0, counts > 0)
    assert lengths.max(initial=0) <= max_len
    assert kraft(lengths) <= 1.0
    # Shannon bound from below; an unlimited Huffman code from below as well.
    nbits = encoded_nbits(counts, lengths)
    assert nbits >= entropy_nbits(counts) - 1e-6 * nbits
    if np.count_nonzero(counts) > 1:
        assert nbits >= heapq_huffman_nbits(counts)


@SLOW
@given(counts_arrays())
def test_optimal_when_limit_does_not_bind(counts: np.ndarray) -> None:
    assume(np.count_nonzero(counts) > 1)
    used = np.sort(counts[counts > 0])
    unlimited = _package_merge(used, used.size)  # n - 1 levels never bind
    assert encoded_nbits(used, unlimited) == heapq_huffman_nbits(counts)
    if unlimited.max() <= MAX_CODE_LENGTH:
        assert encoded_nbits(counts, code_lengths(counts)) == heapq_huffman_nbits(counts)


def brute_force_nbits(counts: list[int], max_len: int) -> int:
    """Minimum total over all length vectors in 1..max_len with Kraft sum <= 1."""
    best = None
    for lengths in itertools.product(range(1, max_len + 1), repeat=len(counts)):
        if sum(2.0**-n for n in lengths) <= 1.0:
            total = sum(c * n for c, n in zip(counts, lengths, strict=True))
            best = total if best is None else min(best, total)
    assert best is not None
    return best


@SLOW
@given(st.lists(st.integers(1, 10**4), min_size=2, max_size=6), st.integers(1, 4))
def test_optimal_under_limit_brute_force(counts: list[int], max_len: int) -> None:
    assume(len(counts) <= 2**max_len)
    lengths = code_lengths(np.array(counts), max_len)
    assert encoded_nbits(np.array(counts), lengths) == brute_force_nbits(counts, max_len)


@pytest.mark.parametrize(("n", "max_len"), [(30, 24), (30, 5), (45, 24), (45, 12), (64, 6)])
def test_fibonacci_counts_force_the_limit(n: int, max_len: int) -> None:
    counts = fibonacci(n)
    assert code_lengths(counts, MAX_CODE_LENGTH).max() == min(n - 1, MAX_CODE_LENGTH)
    lengths = code_lengths(counts, max_len)
    assert lengths.max() == max_len
    assert kraft(lengths) <= 1.0
    assert encoded_nbits(counts, lengths) >= heapq_huffman_nbits(counts)
    w = np.sort(counts)
    if n <= 45:
        assert encoded_nbits(counts, lengths) == encoded_nbits(w, _package_merge_ref(w, max_len))


def test_special_cases() -> None:
    np.testing.assert_array_equal(code_lengths(np.zeros(5, dtype=np.int64)), np.zeros(5))
    assert code_lengths(np.array([], dtype=np.int64)).size == 0
    np.testing.assert_array_equal(code_lengths(np.array([0, 0, 7, 0])), [0, 0, 1, 0])
    np.testing.assert_array_equal(code_lengths(np.array([3, 0, 9])), [1, 0, 1])
    np.testing.assert_array_equal(code_lengths(np.ones(4, dtype=np.int64), 2), [2, 2, 2, 2])


def test_ties_are_broken_by_symbol_index() -> None:
    np.testing.assert_array_equal(code_lengths(np.array([1, 1, 1])), [2, 2, 1])
    counts = np.array([5, 5, 5, 5, 5, 0, 5])
    np.testing.assert_array_equal(code_lengths(counts), code_lengths(counts.copy()))


@SLOW
@given(st.lists(st.integers(0, 4), min_size=1, max_size=2000), st.integers(1, MAX_CODE_LENGTH))
def test_ties_match_stable_reference_pipeline(counts: list[int], max_len: int) -> None:
    c = np.array(counts, dtype=np.int64)
    used = np.flatnonzero(c)
    assume(2 <= used.size <= 2**max_len)
    order = used[np.argsort(c[used], kind="stable")]  # by (count, symbol)
    expected = np.zeros(c.size, dtype=np.uint8)
    expected[order] = _huffman_lengths_ref(c[order])
    if expected.max() > max_len:
        expected[order] = _package_merge(c[order], max_len)
    lengths = code_lengths(c, max_len)
    np.testing.assert_array_equal(lengths, expected)
    # Fewer or equal counts, or equal counts and a lower index, never get a shorter code.
    ranked = lengths[order]
    assert np.all(ranked[:-1] >= ranked[1:])


@SLOW
@given(st.lists(st.integers(1, 10**6), min_size=2, max_size=100, unique=True), st.randoms())
def test_distinct_counts_are_permutation_equivariant(counts: list[int], rnd: random.Random) -> None:
    c = np.array(counts)
    perm = np.array(rnd.sample(range(c.size), c.size))
    np.testing.assert_array_equal(code_lengths(c[perm]), code_lengths(c)[perm])


def test_large_alphabet() -> None:
    rng = np.random.default_rng(1)
    for counts in (rng.integers(1, 10**6, 65537), rng.integers(10**5, 10**6, 65537)):
        lengths = code_lengths(counts)
        assert lengths.max() <= MAX_CODE_LENGTH and kraft(lengths) <= 1.0
        assert encoded_nbits(counts, lengths) >= heapq_huffman_nbits(counts)


@pytest.mark.parametrize(
    ("counts", "max_len"),
    [([1, -1], 24), ([1, 1, 1], 1), ([1, 1], 0), ([1, 1], 25), ([[1, 1]], 24), ([0.5, 1], 24)],
)
def test_code_lengths_rejects(counts: list, max_len: int) -> None:
    with pytest.raises(ValueError):
        code_lengths(np.array(counts), max_len)


def test_encoded_nbits_and_entropy() -> None:
    assert encoded_nbits(np.full(65537, 10**9), np.full(65537, 24)) == 65537 * 24 * 10**9
    assert isinstance(encoded_nbits(np.array([1]), np.array([1])), int)
    assert entropy_nbits(np.array([5] * 8)) == pytest.approx(5 * 8 * 3)
    assert entropy_nbits(np.array([0, 7])) == 0.0
    assert entropy_nbits(np.zeros(3)) == 0.0


# ------------------------------------------------------------------------------ canonical codes


def test_canonical_codes_deflate_example() -> None:
    # RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for A..H.
    codes = canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    np.testing.assert_array_equal(codes, [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111])
    assert codes.dtype == np.uint32


@SLOW
@given(counts_arrays())
def test_canonical_codes_kernel_matches_ref_and_is_canonical(counts: np.ndarray) -> None:
    lengths = code_lengths(counts)
    codes = canonical_codes(lengths)
    np.testing.assert_array_equal(codes, _canonical_codes_ref(lengths))
    np.testing.assert_array_equal(codes, _canonical_codes_kernel(lengths))
    order = [s for s in np.lexsort((np.arange(lengths.size), lengths)) if lengths[s]]
    if order:
        assert codes[order[0]] == 0
    for a, b in itertools.pairwise(order):
        assert int(codes[b]) == (int(codes[a]) + 1) << int(lengths[b] - lengths[a])
    # Prefix-free: in lexicographic order a prefix would sit right before an extension of it.
    words = sorted(format(int(codes[s]), f"0{lengths[s]}b") for s in order)
    assert not any(y.startswith(x) for x, y in itertools.pairwise(words))


@pytest.mark.parametrize("lengths", [[1, 1, 1], [25], [-1, 1], [[1, 1]], [0.0, 1.0]])
def test_invalid_lengths_rejected(lengths: list) -> None:
    with pytest.raises(ValueError):
        canonical_codes(np.array(lengths))
    with pytest.raises(ValueError):
        encode(np.array([0]), np.array(lengths))
    with pytest.raises(ValueError):
        decode(b"\x00", 1, np.array(lengths))


# --------------------------------------------------------------------------------- streams


@st.composite
def streams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    counts = draw(counts_arrays(max_size=200))
    assume(counts.any())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 3000))
    symbols = rng.choice(counts.size, n, p=counts / counts.sum()).astype(np.uint32)
    # Lengths built from other counts than the stream's put long codes on common symbols too.
    lengths = code_lengths(np.where(counts > 0, rng.integers(1, 1000, counts.size), 0))
    return symbols, lengths


@SLOW
@given(streams())
def test_stream_round_trip_matches_ref(case: tuple[np.ndarray, np.ndarray]) -> None:
    symbols, lengths = case
    buf, nbits = encode(symbols, lengths)
    assert (buf, nbits) == _encode_ref(symbols, lengths)
    assert nbits == encoded_nbits(np.bincount(symbols, minlength=lengths.size), lengths)
    assert len(buf) == (nbits + 7) // 8
    out = decode(buf, symbols.size, lengths)
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, symbols)
    np.testing.assert_array_equal(_decode_ref(buf, symbols.size, lengths), symbols)
    # Bytes past the stream are ignored; a missing last byte is caught.
    np.testing.assert_array_equal(decode(buf + b"\xff" * 9, symbols.size, lengths), symbols)
    if buf:
        with pytest.raises(ValueError, match="truncated"):
            decode(buf[:-1], symbols.size, lengths)


def test_long_codes_round_trip() -> None:
    counts = fibonacci(40)  # lengths up to 24: most symbols miss the 11-bit primary table
    lengths = code_lengths(counts)
    assert lengths.max() == MAX_CODE_LENGTH
    symbols = np.tile(np.arange(40, dtype=np.uint32), 50)
    buf, nbits = encode(symbols, lengths)
    assert (buf, nbits) == _encode_ref(symbols, lengths)
    np.testing.assert_array_equal(decode(buf, symbols.size, lengths), symbols)


def test_single_symbol_stream() -> None:
    lengths = code_lengths(np.array([0, 0, 5]))
    buf, nbits = encode(np.full(10, 2), lengths)
    assert (buf, nbits) == (b"\x00\x00", 10)
    np.testing.assert_array_equal(decode(buf, 10, lengths), np.full(10, 2))
    with pytest.raises(ValueError, match="invalid"):
        decode(b"\x80", 1, lengths)  # "1" is no code


def test_empty_stream() -> None:
    lengths = np.array([1, 1], dtype=np.uint8)
    assert encode(np.array([], dtype=np.uint32), lengths) == (b"", 0)
    assert decode(b"", 0, lengths).size == 0
    assert decode(b"", 0, np.zeros(3, dtype=np.uint8)).size == 0
    with pytest.raises(ValueError):
        decode(b"\x00", 1, np.zeros(3, dtype=np.uint8))


def test_golden_stream() -> None:
    # Lengths (1, 2, 2) give codes 0, 10, 11: symbols 1 0 2 2 -> 10 0 11 11 -> 1001 1110.
    assert encode(np.array([1, 0, 2, 2]), np.array([1, 2, 2])) == (b"\x9e", 7)
    np.testing.assert_array_equal(decode(b"\x9e", 4, np.array([1, 2, 2])), [1, 0, 2, 2])


@pytest.mark.parametrize(
    "symbols", [np.array([3]), np.array([1]), np.array([-1]), np.array([2**32 + 1]), [0.0]]
)
def test_encode_rejects_symbols_without_code(symbols: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode(np.asarray(symbols), np.array([1, 0, 1]))


def test_decode_rejects_non_codes_and_absurd_counts() -> None:
    incomplete = np.arange(1, 21)  # Kraft sum 1 - 2**-20: twenty ones is no code
    with pytest.raises(ValueError, match="invalid"):
        decode(b"\xff\xff\xff", 1, incomplete)
    with pytest.raises(ValueError, match="invalid"):
        decode(b"\xc0", 1, np.array([1, 2]))
    with pytest.raises(ValueError, match="truncated"):
        decode(b"\x00", 10**12, np.array([1, 1]))  # must fail before allocating
    with pytest.raises(ValueError):
        decode(b"\x00", -1, np.array([1, 1]))


@SLOW
@given(st.binary(max_size=40), st.integers(0, 400), counts_arrays(max_size=60))
def test_decode_random_bytes_only_raises_value_error(
    buf: bytes, count: int, counts: np.ndarray
) -> None:
    lengths = code_lengths(counts)
    try:
        out = decode(buf, count, lengths)
    except ValueError:
        with pytest.raises(ValueError):
            _decode_ref(buf, count, lengths)
        return
    np.testing.assert_array_equal(out, _decode_ref(buf, count, lengths))


# ---------------------------------------------------------------------------------- tables


@st.composite
def length_tables(draw: st.DrawFn) -> np.ndarray:
    if draw(st.booleans()):
        counts = draw(counts_arrays(max_size=400))
    else:  # a sparse 16-bit alphabet
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        counts = np.zeros(65537, dtype=np.int64)
        used = rng.choice(65537, draw(st.integers(0, 400)), replace=False)
        counts[used] = rng.integers(1, 10**6, used.size)
    return code_lengths(counts)


@SLOW
@given(length_tables(), st.binary(max_size=3), st.binary(max_size=3))
def test_table_round_trip_matches_ref(lengths: np.ndarray, head: bytes, tail: bytes) -> None:
    table = encode_table(lengths)
    assert table == _encode_table_ref(lengths)
    assert table_nbytes(lengths) == len(table)
    data = head + table + tail
    out, end = decode_table(data, len(head), alphabet_size=lengths.size)
    np.testing.assert_array_equal(out, lengths)
    assert end == len(head) + len(table)
    trimmed, end_ref = _decode_table_ref(data, len(head))
    assert end_ref == end
    np.testing.assert_array_equal(trimmed, decode_table(memoryview(data), len(head))[0])
    np.testing.assert_array_equal(trimmed, lengths[: trimmed.size])
    assert not lengths[trimmed.size :].any()


def test_table_golden_bytes() -> None:
    # A = 6; fields 1 | run of 3 (31, n=1, v=0) | 2 | 2; then zero padding.
    bits = "00001" + "11111" + "00001" + "0" + "00010" + "00010"
    bits += "0" * (-len(bits) % 8)
    expected = b"\x06" + int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert encode_table(np.array([1, 0, 0, 0, 2, 2, 0, 0])) == expected
    assert encode_table(np.zeros(4, dtype=np.uint8)) == b"\x00"
    assert encode_table(np.array([1, 0, 0, 1])) == b"\x04\x08\x00\x10"  # a run of 2 is 2 zeros


def test_table_sizes_for_typical_alphabets() -> None:
    rng = np.random.default_rng(2)
    dense = code_lengths(rng.integers(1, 10**4, 257))
    assert table_nbytes(dense) == 2 + (5 * 257 + 7) // 8
    counts = np.zeros(65537, dtype=np.int64)
    counts[rng.choice(65537, 300, replace=False)] = rng.integers(1, 10**4, 300)
    assert table_nbytes(code_lengths(counts)) < 1100  # ~29 bits per used symbol


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (b"\x02", "truncated"),
        (b"\x02\x08", "truncated"),  # one field of two
        (b"\x01\xc8", "out of range"),  # field 25 is reserved
        (b"\x03\x0f\xc2", "passes the end"),  # 1, then a run of 3 in an alphabet of 3
        (b"\x01" + bytes([0b11111101, 0b00000000]), "width"),  # run width 20
        (b"\x01\x09", "padding"),
        (b"\x03\x08\x42", "over-subscribed"),  # lengths 1, 1, 1
        (b"\x81\x80\x40", "exceeds"),  # A = 2**20 + 1
        (b"\x80\x00", "non-minimal"),
    ],
)
def test_table_errors(data: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_table(data)


def test_table_error_cases_are_well_formed() -> None:
    # The run case above is legal in a bigger alphabet: only the end of the alphabet breaks it.
    np.testing.assert_array_equal(decode_table(b"\x04\x0f\xc2")[0], [1, 0, 0, 0])
    with pytest.raises(ValueError, match="exceeds expected"):
        decode_table(encode_table(np.array([1, 1])), alphabet_size=1)
    with pytest.raises(ValueError):
        decode_table(b"\x00", 2)
    with pytest.raises(ValueError):
        encode_table(np.ones(MAX_TABLE_ALPHABET + 1, dtype=np.uint8) * 24)


def test_every_table_prefix_is_truncated() -> None:
    lengths = code_lengths(np.arange(300) % 7 * (np.arange(300) % 3))
    table = encode_table(lengths)
    for cut in range(len(table)):
        with pytest.raises(ValueError):
            decode_table(table[:cut])


@SLOW
@given(st.binary(max_size=64))
def test_decode_table_random_bytes_only_raises_value_error(data: bytes) -> None:
    try:
        lengths, end = decode_table(data)
    except ValueError:
        with pytest.raises(ValueError):
            _decode_table_ref(data)
        return
    ref, end_ref = _decode_table_ref(data)
    np.testing.assert_array_equal(lengths, ref)
    assert end == end_ref <= len(data)


@pytest.mark.parametrize("alphabet", [2, 33, 64])
@pytest.mark.parametrize("count", [20_000, 20_001])
def test_pair_table_encoder_matches_reference(alphabet: int, count: int) -> None:
    # Long streams over small alphabets take the two-symbols-per-step pair path.
    rng = np.random.default_rng(alphabet + count)
    counts = rng.integers(1, 1000, alphabet)
    lengths = code_lengths(counts)
    symbols = rng.choice(alphabet, size=count, p=counts / counts.sum()).astype(np.uint32)
    assert encode(symbols, lengths) == _encode_ref(symbols, lengths)
    np.testing.assert_array_equal(decode(encode(symbols, lengths)[0], count, lengths), symbols)


@pytest.mark.parametrize("position", [0, 9_999, 10_000, 19_999, 20_000])
def test_pair_table_encoder_reports_a_symbol_without_code(position: int) -> None:
    lengths = code_lengths(np.array([5, 3, 0, 2]))
    symbols = np.zeros(20_001, dtype=np.uint32)
    symbols[position] = 2
    with pytest.raises(ValueError, match=f"position {position} "):
        encode(symbols, lengths)
