"""Canonical, length-limited Huffman codes over the alphabet 0..A-1.

Lengths are optimal under the limit (Huffman, falling back to package-merge when the limit
binds), codes are canonical as in DEFLATE, and streams are MSB-first like
:mod:`inspector.core.bitpack` (first bit = top bit of byte 0, last byte zero-padded).

The code-length table the file stores lives in :mod:`inspector.core.huffman_table`.

Each kernel has a plain-Python twin (suffix ``_ref``); the tests check that the two agree.
Kernels here call only kernels in this module, because numba's cache does not notice edits
to other modules.
"""

from __future__ import annotations

import operator

import numba
import numpy as np

from inspector.core.bitpack import as_uint8

__all__ = [
    "MAX_CODE_LENGTH",
    "canonical_codes",
    "code_lengths",
    "decode",
    "encode",
    "encoded_nbits",
    "entropy_nbits",
]

MAX_CODE_LENGTH = 24
_PAIR_ALPHABET = 64  # pair table of at most 4096 entries: stays in L1
_PRIMARY_BITS = 11  # 2**11-entry decode table: stays in L1, covers all but rare symbols


# ------------------------------------------------------------------------------- code lengths


def code_lengths(counts: np.ndarray, max_len: int = MAX_CODE_LENGTH) -> np.ndarray:
    """Optimal code lengths under a length limit.

    Parameters
    ----------
    counts : numpy.ndarray
        Non-negative integer count of every symbol, shape ``(A,)``.
    max_len : int
        Longest allowed code, 1..``MAX_CODE_LENGTH``.

    Returns
    -------
    numpy.ndarray
        uint8 length per symbol, 0 for unused ones, minimising ``sum(counts * lengths)``
        subject to ``lengths <= max_len``. A lone used symbol gets length 1, so its stream
        still has one bit per symbol. Ties are broken by symbol index.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or c.dtype.kind not in "iu":
        raise ValueError("counts must be a 1-D integer array")
    if not 1 <= max_len <= MAX_CODE_LENGTH:
        raise ValueError(f"max_len must be in 1..{MAX_CODE_LENGTH}, got {max_len}")
    out = np.zeros(c.size, dtype=np.uint8)
    used = np.flatnonzero(c)
    n = used.size
    w = c[used].astype(np.int64)
    if n and int(w.min()) < 0:
        raise ValueError("counts must be non-negative")
    if n <= 1:
        out[used] = 1
        return out
    if n > 1 << max_len:
        raise ValueError(f"{n} symbols cannot be coded in at most {max_len} bits")
    # Node and package weights stay below max_len * total: keep that under 2**62.
    if int(w.max()) * n * max_len >= 1 << 62:
        raise ValueError("counts too large")
    # Ascending by (count, symbol): sorting packed keys is ~10x faster than a stable argsort.
    # They fit in int64: the check above gives max(w) < 2**62 / n <= 2**(63 - bits).
    bits = n.bit_length()
    order = np.sort((w << bits) | np.arange(n)) & ((1 << bits) - 1)
    lengths = _huffman_lengths(w[order])
    if lengths[0] > max_len:  # the smallest count has the longest code
        lengths = _package_merge(w[order], max_len)
    out[used[order]] = lengths
    return out


@numba.njit(cache=True, nogil=True)
def _huffman_lengths(weights: np.ndarray) -> np.ndarray:
    # Moffat & Katajainen's in-place Huffman on ascending weights (n >= 2), O(n): the array
    # holds parents, then internal depths; leaf depths are dealt longest-first. A leaf wins ties.
    a = weights.copy()
    n = a.size
    a[0] += a[1]
    root, leaf = 0, 2
    for nxt in range(1, n - 1):
        for child in range(2):
            if leaf >= n or ((child == 0 or root < nxt) and a[root] < a[leaf]):
                a[nxt] = a[root] if child == 0 else a[nxt] + a[root]
                a[root] = nxt
                root += 1
            else:
                a[nxt] = a[leaf] if child == 0 else a[nxt] + a[leaf]
                leaf += 1
    a[n - 2] = 0
    for nxt in range(n - 3, -1, -1):
        a[nxt] = a[a[nxt]] + 1
    lengths = np.empty(n, dtype=np.uint8)
    avail, depth, root, nxt = 1, 0, n - 2, n - 1
    while avail > 0:
        used = 0
        while root >= 0 and a[root] == depth:
            used += 1
            root -= 1
        for _ in range(avail - used):
            lengths[nxt] = depth
            nxt -= 1
        avail, depth = 2 * used, depth + 1
    return lengths


def _huffman_lengths_ref(weights: np.ndarray) -> np.ndarray:
    """Twin of :func:`_huffman_lengths`: two queues and explicit parent links."""
    w = [int(x) for x in weights]
    nodes: list[int] = []  # internal weights in creation order, which is ascending
    parent: dict[tuple[str, int], int] = {}
    leaf = root = 0
    while len(nodes) < len(w) - 1:
        kids = []
        for _ in range(2):
            if leaf < len(w) and (root >= len(nodes) or w[leaf] <= nodes[root]):
                kids.append(("leaf", leaf))
                leaf += 1
            else:
                kids.append(("node", root))
                root += 1
        parent.update({kid: len(nodes) for kid in kids})
        nodes.append(sum(w[i] if kind == "leaf" else nodes[i] for kind, i in kids))
    depth = [0] * len(nodes)
    for i in range(len(nodes) - 2, -1, -1):
        depth[i] = depth[parent["node", i]] + 1
    leaf_depths = [depth[parent["leaf", i]] + 1 for i in range(len(w))]
    return np.array(sorted(leaf_depths, reverse=True), dtype=np.uint8)


@numba.njit(cache=True, nogil=True)
def _package_merge(weights: np.ndarray, max_len: int) -> np.ndarray:
    # Package-merge on ascending weights without coin sets: record which items of each level's
    # list are leaves. The first 2n-2 items of the top list are the chosen coins; a prefix of a
    # list always holds the smallest leaves, and its packages are the next list's first 2p items.
    n = weights.size
    levels = min(max_len, n - 1)
    cap = 2 * n - 1  # n leaves and at most n - 1 packages per list
    inf = np.int64(1) << 62  # sentinels end both inputs; real weights stay below (see caller)
    leaves = np.full(n + 1, inf)
    leaves[:n] = weights
    prev = np.empty(cap + 2, dtype=np.int64)
    cur = np.empty(cap + 2, dtype=np.int64)
    is_leaf = np.zeros((levels, cap), dtype=np.uint8)
    prev[:n] = weights
    is_leaf[levels - 1, :n] = 1
    prev_n = n
    for lvl in range(levels - 2, -1, -1):
        npk = prev_n // 2
        prev[2 * npk] = inf  # a sentinel package (drops an unpaired last item)
        prev[2 * npk + 1] = 0
        row = is_leaf[lvl]
        i = k = 0
        for m in range(n + npk):  # branch-free merge, a leaf wins ties: choices are random
            leaf = leaves[i]
            pkg = prev[2 * k] + prev[2 * k + 1]
            t = np.int64(leaf <= pkg)
            cur[m] = pkg + t * (leaf - pkg)
            row[m] = t
            i += t
            k += 1 - t
        prev, cur, prev_n = cur, prev, n + npk
    lengths = np.zeros(n, dtype=np.uint8)
    take = 2 * n - 2
    for lvl in range(levels):
        k = 0
        for j in range(take):
            k += is_leaf[lvl, j]
        for j in range(k):
            lengths[j] += 1
        take = 2 * (take - k)
    return lengths


def _package_merge_ref(weights: np.ndarray, max_len: int) -> np.ndarray:
    """Twin of :func:`_package_merge`: the textbook coin collector with explicit coin sets."""
    leaves = [(int(w), (i,)) for i, w in enumerate(weights)]
    items = list(leaves)
    for _ in range(min(max_len, len(leaves) - 1) - 1):
        pkgs = [
            (items[j][0] + items[j + 1][0], items[j][1] + items[j + 1][1])
            for j in range(0, len(items) - 1, 2)
        ]
        items = sorted(leaves + pkgs, key=lambda t: t[0])  # stable, so a leaf wins ties
    lengths = np.zeros(len(leaves), dtype=np.uint8)
    for _, coins in items[: 2 * len(leaves) - 2]:
        for i in coins:
            lengths[i] += 1
    return lengths


def encoded_nbits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Exact bits of a stream with these symbol counts: ``sum(counts * lengths)``."""
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def entropy_nbits(counts: np.ndarray) -> float:
    """Shannon bound of a stream in bits: ``N * H(counts / N)``."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    return float(np.sum(c * np.log2(c.sum() / c))) if c.size else 0.0


# ------------------------------------------------------------------------------ canonical codes


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical codes for these lengths, as in DEFLATE.

    Used symbols sorted by (length, symbol) get consecutive codes from 0, shifted left each
    time the length grows. Returns uint32 codes, 0 for unused symbols.
    """
    return _canonical_codes_kernel(_check_lengths(lengths))


@numba.njit(cache=True, nogil=True)
def _canonical_layout(lengths: np.ndarray) -> tuple:
    # Per length n: how many codes, the first code, where its symbols start in `ordered`
    # (the used symbols sorted by (length, symbol)).
    per_len = np.zeros(MAX_CODE_LENGTH + 1, dtype=np.int64)
    for s in range(lengths.size):
        per_len[lengths[s]] += 1
    per_len[0] = 0
    first = np.zeros(MAX_CODE_LENGTH + 1, dtype=np.int64)
    start = np.zeros(MAX_CODE_LENGTH + 2, dtype=np.int64)
    for n in range(1, MAX_CODE_LENGTH + 1):
        first[n] = (first[n - 1] + per_len[n - 1]) << 1
        start[n + 1] = start[n] + per_len[n]
    ordered = np.empty(start[-1], dtype=np.uint32)
    fill = start.copy()
    for s in range(lengths.size):
        ln = lengths[s]
        if ln:
            ordered[fill[ln]] = s
            fill[ln] += 1
    return per_len, first, start, ordered


@numba.njit(cache=True, nogil=True)
def _canonical_codes_kernel(lengths: np.ndarray) -> np.ndarray:
    per_len, first, start, ordered = _canonical_layout(lengths)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    for n in range(1, MAX_CODE_LENGTH + 1):
        for k in range(per_len[n]):
            codes[ordered[start[n] + k]] = first[n] + k
    return codes


def _canonical_codes_ref(lengths: np.ndarray) -> np.ndarray:
    """Twin of :func:`_canonical_codes_kernel`: walk the (length, symbol) order."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint32)
    code, prev = -1, 0
    for s in np.lexsort((np.arange(lengths.size), lengths)):
        if lengths[s]:
            code = (code + 1) << (lengths[s] - prev)
            codes[s], prev = code, lengths[s]
    return codes


def _check_lengths(lengths: np.ndarray) -> np.ndarray:
    """Validate lengths (1-D, 0..MAX_CODE_LENGTH, Kraft sum <= 1); return them as uint8."""
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError("code lengths must be a 1-D integer array")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > MAX_CODE_LENGTH):
        raise ValueError(f"code lengths must be in 0..{MAX_CODE_LENGTH}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    used = arr[arr > 0].astype(np.int64)
    if int(np.sum(np.int64(1) << (MAX_CODE_LENGTH - used))) > 1 << MAX_CODE_LENGTH:
        raise ValueError("code lengths are over-subscribed (Kraft sum > 1)")
    return arr


# --------------------------------------------------------------------------------- streams


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Huffman-code a symbol stream.

    Parameters
    ----------
    symbols : numpy.ndarray
        Non-negative integer symbols (flattened), each with a non-zero length.
    lengths : numpy.ndarray
        Code length per symbol, e.g. from :func:`code_lengths`.

    Returns
    -------
    tuple of (bytes, int)
        The MSB-first stream (last byte zero-padded) and its exact length in bits.

    Raises
    ------
    ValueError
        If a symbol is outside the alphabet or has no code, or the lengths are invalid.
    """
    lens = _check_lengths(lengths)
    raw = np.asarray(symbols).reshape(-1)
    if raw.dtype.kind not in "iu":
        raise ValueError(f"symbols must be integers, got dtype {raw.dtype}")
    # A wide symbol could wrap into the alphabet when cast; narrower ones can only wrap out.
    if raw.dtype.itemsize > 4 and raw.size and not 0 <= int(raw.min()) <= int(raw.max()) < 2**32:
        raise ValueError("symbols outside the alphabet")
    syms = np.ascontiguousarray(raw, dtype=np.uint32)
    # One table of (code << 6 | length): a single load per symbol in the hot loop. Small
    # alphabets code symbol pairs from a pair table, halving the loop's dependency chain.
    codes = _canonical_codes_kernel(lens).astype(np.int64)
    widths = lens.astype(np.int64)
    table = (codes << 6) | widths
    words = np.empty(syms.size * int(lens.max(initial=0)) // 64 + 2, dtype=np.int64)
    if lens.size <= _PAIR_ALPHABET and syms.size >= 2 * lens.size * lens.size:
        pair_codes = (codes[:, None] << widths[None, :]) | codes[None, :]
        pair_widths = widths[:, None] + widths[None, :]
        pair_widths[(widths == 0)[:, None] | (widths == 0)[None, :]] = 0
        pairs = ((pair_codes << 6) | pair_widths).reshape(-1)
        nbits, acc = _encode_pairs_kernel(syms, pairs, table, lens.size, words)
    else:
        nbits, acc = _encode_kernel(syms, table, words)
    if nbits < 0:
        i = -1 - nbits
        raise ValueError(f"symbol {raw[i]} at position {i} has no code (alphabet {lens.size})")
    full, rest = divmod(nbits, 64)
    tail = (acc << (64 - rest)).to_bytes(8, "big")[: (rest + 7) // 8] if rest else b""
    return words[:full].astype(">i8").tobytes() + tail, nbits


@numba.njit(cache=True, nogil=True)
def _put(words: np.ndarray, k: int, acc: int, nacc: int, e: int) -> tuple[int, int, int]:
    """Append the code of table entry ``e`` (code << 6 | length, length <= 48)."""
    n = e & 63
    c = e >> 6
    nacc += n
    if nacc < 64:
        return k, (acc << n) | c, nacc
    nacc -= 64  # bits of c that spill into the next word
    words[k] = (acc << (n - nacc)) | (c >> nacc)
    return k + 1, c & ((1 << nacc) - 1), nacc


@numba.njit(cache=True, nogil=True)
def _encode_kernel(symbols: np.ndarray, table: np.ndarray, words: np.ndarray) -> tuple[int, int]:
    # Fills 64-bit words (host order, caller makes them big-endian) and returns (bits, the
    # last partial word), or (-1 - i, 0) for a symbol at i outside the table or without a
    # code (a predictable branch, cheaper than a separate range pass). A flush per 64 bits
    # rather than per byte keeps the loop nearly branch-free; acc never holds more than 63.
    acc = nacc = k = 0
    size = table.size
    for i in range(symbols.size):
        s = symbols[i]
        if s >= size:
            return -1 - i, 0
        e = table[s]
        if e & 63 == 0:
            return -1 - i, 0
        k, acc, nacc = _put(words, k, acc, nacc, e)
    return 64 * k + nacc, acc


@numba.njit(cache=True, nogil=True)
def _encode_pairs_kernel(
    symbols: np.ndarray, pairs: np.ndarray, table: np.ndarray, size: int, words: np.ndarray
) -> tuple[int, int]:
    # As _encode_kernel, two symbols per step through the pair table.
    acc = nacc = k = 0
    half = symbols.size // 2
    for j in range(half):
        a = symbols[2 * j]
        b = symbols[2 * j + 1]
        if (a >= size) | (b >= size):  # rare: outside the alphabet
            return -1 - (2 * j if a >= size else 2 * j + 1), 0
        e = pairs[a * size + b]
        if e & 63 == 0:
            bad = 2 * j if table[a] & 63 == 0 else 2 * j + 1
            return -1 - bad, 0
        k, acc, nacc = _put(words, k, acc, nacc, e)
    if symbols.size % 2:
        last = symbols[symbols.size - 1]
        if last >= size or table[last] & 63 == 0:
            return -symbols.size, 0
        e = table[last]
        k, acc, nacc = _put(words, k, acc, nacc, e)
    return 64 * k + nacc, acc


def _encode_ref(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Twin of :func:`encode`: concatenate code strings."""
    codes = _canonical_codes_ref(lengths)
    bits = "".join(format(int(codes[s]), f"0{int(lengths[s])}b") for s in symbols)
    return _bits_to_bytes(bits), len(bits)


def decode(buf: bytes | np.ndarray, count: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``count`` symbols from a stream written by :func:`encode`.

    Parameters
    ----------
    buf : bytes or numpy.ndarray
        The stream (uint8 if an array); bytes past its end are ignored.
    count : int
        Number of symbols to decode.
    lengths : numpy.ndarray
        The code lengths the stream was encoded with.

    Returns
    -------
    numpy.ndarray
        uint32 symbols, shape ``(count,)``.

    Raises
    ------
    ValueError
        If the stream is truncated or holds a bit pattern that is no code.
    """
    lens = _check_lengths(lengths)
    data = as_uint8(buf)
    count = operator.index(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count == 0:
        return np.empty(0, dtype=np.uint32)
    if not lens.any():
        raise ValueError("cannot decode symbols with an empty code")
    # Also bounds the allocation by the input size, whatever count a file claims.
    if count * int(lens[lens > 0].min()) > 8 * data.size:
        raise ValueError(f"truncated Huffman stream ({data.size} bytes for {count} symbols)")
    out = np.empty(count, dtype=np.uint32)
    status, i = _decode_kernel(data, lens, out)
    if status:
        problem = "truncated Huffman stream" if status == 1 else "invalid code in Huffman stream"
        raise ValueError(f"{problem} (at symbol {i} of {count})")
    return out


@numba.njit(cache=True, nogil=True)
def _decode_kernel(buf: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> tuple[int, int]:
    # Returns (0, count), or (1, i) if the data end inside symbol i, (2, i) if its bits are no
    # code. Codes of up to p bits come from a 2**p table; longer ones from the canonical
    # first-code-per-length walk (puff.c), which starts past all short codes, so d >= 0 there.
    per_len, first, start, ordered = _canonical_layout(lengths)
    max_len = 0
    for n in range(1, MAX_CODE_LENGTH + 1):
        if per_len[n]:
            max_len = n
    p = min(max_len, _PRIMARY_BITS)
    tsym = np.zeros(1 << p, dtype=np.uint32)
    tlen = np.zeros(1 << p, dtype=np.uint8)  # 0: no code of <= p bits starts here
    for n in range(1, p + 1):
        for k in range(per_len[n]):
            lo = (first[n] + k) << (p - n)
            tsym[lo : lo + (1 << (p - n))] = ordered[start[n] + k]
            tlen[lo : lo + (1 << (p - n))] = n
    acc = nacc = pos = 0
    for i in range(out.size):
        if nacc <= 48:
            acc &= (1 << nacc) - 1  # keeps acc below 2**56: no int64 overflow
            while nacc <= 48 and pos < buf.size:
                acc = (acc << 8) | np.int64(buf[pos])
                pos += 1
                nacc += 8
        # Near the end, peek with zero padding; the length check below catches overruns.
        idx = (acc >> (nacc - p) if nacc >= p else acc << (p - nacc)) & ((1 << p) - 1)
        ln = tlen[idx]
        if ln:
            if ln > nacc:
                return 1, i
            out[i] = tsym[idx]
            nacc -= ln
            continue
        for n in range(p + 1, max_len + 2):
            if n > max_len:
                return 2, i
            if n > nacc:
                return 1, i
            d = ((acc >> (nacc - n)) & ((1 << n) - 1)) - first[n]
            if d < per_len[n]:
                out[i] = ordered[start[n] + d]
                nacc -= n
                break
    return 0, out.size


def _decode_ref(buf: bytes | np.ndarray, count: int, lengths: np.ndarray) -> np.ndarray:
    """Twin of :func:`_decode_kernel`: bit by bit against a dict of (length, code)."""
    codes = _canonical_codes_ref(lengths)
    table = {(int(n), int(c)): s for s, (n, c) in enumerate(zip(lengths, codes, strict=True)) if n}
    max_len = max((int(n) for n in lengths), default=0)
    bits = "".join(f"{b:08b}" for b in as_uint8(buf).tolist())
    out, pos = [], 0
    for _ in range(count):
        code = n = 0
        while (n, code) not in table:
            if n >= max_len:
                raise ValueError("invalid code in Huffman stream")
            if pos >= len(bits):
                raise ValueError("truncated Huffman stream")
            code, n, pos = 2 * code + int(bits[pos]), n + 1, pos + 1
        out.append(table[n, code])
    return np.array(out, dtype=np.uint32)


def _bits_to_bytes(bits: str) -> bytes:
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
