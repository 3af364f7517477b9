"""A layer's codebook as stored: float32, or float16 when the rounding adds next to no error,
and then, where smaller, delta-coded.

A float16 codebook is ascending, so its values' *ordered keys* (the 16-bit pattern with the
sign bit set for a positive value, all bits inverted for a negative one: keys ascend with the
values) ascend too. The coded form is the first key and each next key's increase, as varints:
a 256-entry codebook of weights takes about 260 bytes instead of 512.
"""

from __future__ import annotations

import numpy as np

from inspector.core.bitpack import read_uvarint, uvarint
from inspector.core.cluster import Clustering, Points

# float16 is used when it adds at most this fraction to the layer's error (the energy of the
# pruned weights plus the quantization SSE): 1% more noise is 0.04 dB of SQNR, far below what a
# cluster bit more or less changes.
HALF_TOLERANCE = 0.01


def half_codebook(
    clustering: Clustering, points: Points, pruned_sse: float = 0.0
) -> tuple[np.ndarray, float, bool]:
    """The codebook to store (float32 values), its exact SSE, and whether it is float16.

    ``pruned_sse`` is the energy of the pruned weights, the rest of the layer's error. The
    SSE of centroids ``c`` over the clusters is ``sum(s2 - 2 c s1 + c^2 n)``, the formula the
    clustering used, so the errors compare exactly.
    """
    c = clustering.codebook
    if c.size == 0:
        return c, clustering.sse, False
    with np.errstate(over="ignore"):
        h = c.astype(np.float16).astype(np.float32)
    if not np.all(np.isfinite(h)):
        return c, clustering.sse, False
    if np.array_equal(h, c):
        return h, clustering.sse, True
    starts = clustering.starts
    n = np.add.reduceat(points.cnt, starts).astype(np.float64)
    s1 = np.add.reduceat(points.s1, starts)
    s2 = np.add.reduceat(points.s2, starts)
    x = h.astype(np.float64)
    sse = float(np.maximum(s2 - 2.0 * x * s1 + x * x * n, 0.0).sum())
    if sse - clustering.sse <= HALF_TOLERANCE * (clustering.sse + max(pruned_sse, 0.0)):
        return h, sse, True
    return c, clustering.sse, False


def ordered_keys(codebook: np.ndarray) -> np.ndarray:
    """The ordered keys (int64) of a codebook's float16 values."""
    bits = np.asarray(codebook, dtype="<f2").view("<u2").astype(np.int64)
    return np.where(bits & 0x8000, bits ^ 0xFFFF, bits | 0x8000)


def coded_codebook(codebook: np.ndarray) -> bytes | None:
    """The delta-coded form of a float16 codebook, or None when its keys do not ascend (a
    -0.0 after a 0.0)."""
    keys = ordered_keys(codebook)
    if keys.size == 0:
        return b""
    steps = np.diff(keys)
    if steps.size and steps.min() < 0:
        return None
    return uvarint(int(keys[0])) + b"".join(uvarint(int(d)) for d in steps)


def coded_nbytes(codebook: np.ndarray) -> int:
    """``len(coded_codebook(codebook))`` without building it (-1 where it is None)."""
    keys = ordered_keys(codebook)
    if keys.size == 0:
        return 0
    steps = np.diff(keys)
    if steps.size and steps.min() < 0:
        return -1
    values = np.concatenate([keys[:1], steps])
    # a varint of a value below 2**16 takes 1, 2 or 3 bytes
    return int(values.size + np.count_nonzero(values >= 1 << 7)
               + np.count_nonzero(values >= 1 << 14))


def codebook_bytes(codebook: np.ndarray, half: bool, coded: bool = False) -> bytes:
    """The stored codebook: delta-coded float16, little-endian float16, or float32."""
    if coded:
        out = coded_codebook(codebook)
        assert out is not None
        return out
    return codebook.astype("<f2" if half else "<f4").tobytes()


def read_codebook(
    buf: memoryview, k: int, half: bool, coded: bool = False
) -> tuple[np.ndarray, int]:
    """The float32 codebook of ``k`` entries at the start of ``buf``, and its byte count."""
    if coded:
        data = np.frombuffer(buf, np.uint8)
        keys = np.zeros(k, dtype=np.int64)
        key, offset = 0, 0
        for i in range(k):
            step, offset = read_uvarint(data, offset, 0xFFFF - (key if i else 0))
            key = step if i == 0 else key + step
            keys[i] = key
        bits = np.where(keys & 0x8000, keys ^ 0x8000, keys ^ 0xFFFF).astype("<u2")
        return bits.view("<f2").astype(np.float32), offset
    nbytes = (2 if half else 4) * k
    if nbytes > len(buf):
        raise ValueError("codebook runs past the end of the layer")
    return np.frombuffer(buf[:nbytes], dtype="<f2" if half else "<f4").astype(np.float32), nbytes
