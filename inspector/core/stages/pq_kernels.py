"""Per-sub-vector loops of the ``pq`` method: k-means assignment and update, and decoding.

Kernels here call only kernels in this module (numba's cache does not see edits elsewhere).
``X`` is ``(n, d)`` sub-vectors, ``W`` their per-coordinate weights (importance; 0 on the
padding past a row's end), ``C`` the ``(k, d)`` centroids.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def assign(X, W, C, codes):
    """Each sub-vector's nearest centroid in the weighted distance (ties: the lowest index);
    returns how many codes changed."""
    n, d = X.shape
    k = C.shape[0]
    changed = 0
    for i in range(n):
        x, c = X[i], W[i]
        best, bj = np.inf, 0
        for m in range(k):
            y = C[m]
            s = 0.0
            for j in range(d):
                t = x[j] - y[j]
                s += c[j] * t * t
            if s < best:
                best, bj = s, m
        if codes[i] != bj:
            changed += 1
            codes[i] = bj
    return changed


@numba.njit(cache=True, nogil=True)
def update(X, W, codes, C):
    """Each centroid coordinate becomes the weighted mean of its members' (the least-squares
    optimum for the codes); a coordinate with no weight keeps its value."""
    n, d = X.shape
    k = C.shape[0]
    num = np.zeros((k, d))
    den = np.zeros((k, d))
    for i in range(n):
        m = codes[i]
        for j in range(d):
            num[m, j] += W[i, j] * X[i, j]
            den[m, j] += W[i, j]
    for m in range(k):
        for j in range(d):
            if den[m, j] > 0:
                C[m, j] = num[m, j] / den[m, j]


@numba.njit(cache=True, nogil=True)
def _decode(codes, C, rows, rowlen, spr, out):
    d = C.shape[1]
    for r in range(rows):
        o, q = out[r * rowlen:(r + 1) * rowlen], codes[r * spr:(r + 1) * spr]
        for s in range(q.size):
            y = C[q[s]]
            for j in range(min(d, rowlen - s * d)):
                o[s * d + j] = y[j]


def decode_pq(codes: np.ndarray, codebook: np.ndarray, rows: int, rowlen: int
              ) -> np.ndarray:
    """float32 layer of ``codes`` (int64, ``rows * ceil(rowlen / d)``) over the float32
    ``(K, d)`` codebook: each row's sub-vectors in order, the padding dropped."""
    out = np.empty(rows * rowlen, dtype=np.float32)
    if out.size:
        d = codebook.shape[1]
        _decode(codes, codebook, rows, rowlen, -(-rowlen // d), out)
    return out


def decode_pq_reference(codes: np.ndarray, codebook: np.ndarray, rows: int, rowlen: int
                        ) -> np.ndarray:
    """The numpy twin of :func:`decode_pq`."""
    d = codebook.shape[1]
    spr = -(-rowlen // d)
    full = codebook[codes].reshape(rows, spr * d)
    return np.ascontiguousarray(full[:, :rowlen], dtype=np.float32).reshape(-1)
