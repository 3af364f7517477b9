"""The arithmetic of method ``lowrank``: factor geometry, the truncated SVD, and the product.

A layer is a matrix ``W`` (``m x n``) and its factors are stored as two float32 matrices of
``rank`` rows each, ``P`` (``rank x m``) and ``Q`` (``rank x n``), with ``W ~ P^T Q``:

* split ``channels``: ``m`` = out, ``n`` = the rest of the shape (``in*kh*kw`` for a conv,
  ``in`` for an fc layer); ``W[o, j] = sum_k P[k, o] Q[k, j]``.
* split ``spatial`` (Tai et al. 2016, "Convolutional neural networks with low-rank
  regularization", the closed-form version of Jaderberg et al.'s scheme 2): a conv weight
  ``(out, in, kh, kw)`` as ``W'[(c, y), (o, x)] = W[o, c, y, x]`` (``m = in*kh``,
  ``n = out*kw``). ``P`` is ``rank`` vertical filters ``(rank, in, kh, 1)`` and ``Q`` the
  horizontal ones ``(out, rank, 1, kw)`` after a transpose: a ``kh x 1`` conv to ``rank``
  channels, then a ``1 x kw`` conv to ``out``.

The SVD ``W = U S V^T`` (float64) gives ``P = sqrt(S) U^T`` and ``Q = sqrt(S) V^T`` for the
first ``rank`` singular values: each stored row ``k`` carries ``sqrt(s_k)`` on both sides,
so both factors have rows of like scale (a per-row quantizer suits them).

The product (the decoded layer), to the bit: each element is accumulated in float64 starting
from 0.0, adding ``float64(P[k, i]) * float64(Q[k, j])`` for ``k = 0, 1, ..., rank-1`` in this
order (plain IEEE multiply and add, no fused multiply-add), and rounded once to float32
(round to nearest even). A C decoder does exactly that with ``double``; the numba kernel
and the numpy twin both do it (one row at a time / one outer product at a time).
"""

from __future__ import annotations

import numba
import numpy as np

CHANNELS, SPATIAL = 0, 1
SPLITS = ("channels", "spatial")


def matrix_shape(split: int, shape: tuple[int, ...]) -> tuple[int, int]:
    """``(m, n)``: the matrix the layer is factorised as (see the module docstring)."""
    if split == SPATIAL:
        if len(shape) != 4:
            raise ValueError(f"split spatial needs a 4-D conv weight, not shape {shape}")
        o, c, kh, kw = shape
        return c * kh, o * kw
    if not shape:
        return 1, 1
    return int(shape[0]), int(np.prod(shape[1:], dtype=np.int64))

def as_matrix(w: np.ndarray, split: int, shape: tuple[int, ...]) -> np.ndarray:
    """The layer ``w`` (flat) as its ``m x n`` matrix (a view where the layout allows)."""
    m, n = matrix_shape(split, shape)
    if split == SPATIAL:
        o, c, kh, kw = shape
        return w.reshape(o, c, kh, kw).transpose(1, 2, 0, 3).reshape(m, n)
    return w.reshape(m, n)


def from_matrix(mat: np.ndarray, split: int, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`as_matrix`: the layer, flat and contiguous."""
    if split == SPATIAL:
        o, c, kh, kw = shape
        mat = mat.reshape(c, kh, o, kw).transpose(2, 0, 1, 3)
    return np.ascontiguousarray(mat).reshape(-1)


def svd(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(U, s, Vt)`` of ``mat`` in float64, economy size."""
    a = np.asarray(mat, dtype=np.float64)
    if a.size == 0:
        k = min(a.shape)
        return np.zeros((a.shape[0], k)), np.zeros(k), np.zeros((k, a.shape[1]))
    return np.linalg.svd(a, full_matrices=False)


def rank_for(s: np.ndarray, rank: int | None, energy: float) -> int:
    """``rank`` (at most the full rank), else the fewest singular values whose squares hold
    ``energy`` of the total (all of them at 1.0; at least one)."""
    full = int(s.size)
    if full == 0:
        return 0
    if rank is not None:
        return max(1, min(int(rank), full))
    if energy >= 1.0:
        return full
    e = np.cumsum(s.astype(np.float64) ** 2)
    if e[-1] <= 0:
        return 1
    return int(min(full, np.searchsorted(e, energy * e[-1], side="left") + 1))


def factors(u: np.ndarray, s: np.ndarray, vt: np.ndarray, r: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(P, Q)`` (float64, ``r x m`` and ``r x n``): the balanced truncated SVD."""
    root = np.sqrt(s[:r])[:, None]
    return root * u[:, :r].T, root * vt[:r]


@numba.njit(cache=True, nogil=True)
def _product(p: np.ndarray, q: np.ndarray, out: np.ndarray) -> None:
    r, m = p.shape
    n = q.shape[1]
    acc = np.empty(n, dtype=np.float64)
    for i in range(m):
        acc[:] = 0.0
        for k in range(r):
            a = np.float64(p[k, i])
            row = q[k]
            for j in range(n):
                acc[j] += a * np.float64(row[j])
        for j in range(n):
            out[i, j] = np.float32(acc[j])


def product(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``P^T Q`` as float32 ``m x n``, to the bit as the module docstring says (numba)."""
    p32 = np.ascontiguousarray(p, dtype=np.float32)
    q32 = np.ascontiguousarray(q, dtype=np.float32)
    out = np.empty((p32.shape[1], q32.shape[1]), dtype=np.float32)
    if out.size:
        _product(p32, q32, out)
    return out


def product_reference(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The numpy twin of :func:`product`: one float64 outer product added per ``k``."""
    p64 = np.asarray(p, dtype=np.float32).astype(np.float64)
    q64 = np.asarray(q, dtype=np.float32).astype(np.float64)
    acc = np.zeros((p64.shape[1], q64.shape[1]), dtype=np.float64)
    for k in range(p64.shape[0]):
        acc += np.multiply.outer(p64[k], q64[k])
    return acc.astype(np.float32)
