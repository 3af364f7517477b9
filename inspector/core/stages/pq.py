"""Method ``pq``: product quantization (Jegou et al. 2011; Gong et al. 2014), issue 13.5.

Each row (axis 0: fc rows, conv filters; the row is the rest flattened; a tensor of fewer
than two axes is one row) is cut into sub-vectors of ``d`` (option ``dim``) consecutive
weights. A row whose length is not a multiple of ``d`` is padded at its end with zeros to
``ceil(rowlen / d)`` sub-vectors: the padding has weight 0 in the fit, is never stored on
its own (it is part of the last sub-vector's code) and is dropped on decode. So a layer
takes ``rows * ceil(rowlen / d)`` codes.

k-means with ``k = 2**code_bits`` runs on all the layer's sub-vectors: seeded init (``init_seed``:
``k`` distinct sub-vectors drawn by numpy's PCG64, in proportion to their weight, the sum of
their coordinates' importance, padding 0: uniform for full rows without importance), then
``iters`` rounds of assignment (numba) and update (each coordinate the importance-weighted
mean of its members: the least-squares optimum), stopping early once no code changes (the
same result). Empty clusters are dropped and the rest sorted by use, most used first, so
small codes are the common ones. One codebook per layer, float16 when exact enough
(:func:`.fitted.cheaper_floats`).

Params: u8 the entropy stage's code; u8 ``d`` (1..16); u8 flags (bit 0: float16 codebook;
other bits zero); uvarint ``K`` (1..min(65536, codes); 0 for an empty layer).
Payload: the ``K x d`` codebook, little-endian, row by row (finite values); then the entropy
stage's stream of the codes as signed symbols (:func:`.fitted.symbols_of`: the ``fixed``
stage stores ``bit_length(K - 1)`` bits a code). Decoding copies codebook values: exact.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from inspector.core.bitpack import as_uint8, read_uvarint, uvarint
from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options
from inspector.core.stages.fitted import (
    ENTROPY_CHOICES,
    Fit,
    FitLayer,
    cheaper_floats,
    codes_of,
    entropy_name,
    entropy_stage,
    float_bytes,
    read_floats,
    read_symbols,
    symbols_of,
)
from inspector.core.stages.pq_kernels import assign, decode_pq, decode_pq_reference, update
from inspector.core.stages.uniform_params import layout

F_HALF = 1
MAX_D = 16
MAX_K = 1 << 16


def geometry(shape: tuple[int, ...], d: int) -> tuple[int, int, int]:
    """``(rows, rowlen, sub-vectors per row)``."""
    rows, rowlen = layout(shape)
    return rows, rowlen, -(-rowlen // d)


def sub_vectors(layer: FitLayer, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, W)``: the padded rows as ``(n, d)`` float64 sub-vectors and their weights."""
    rows, rowlen, spr = geometry(layer.shape, d)
    x = np.zeros((rows, spr * d))
    wt = np.zeros((rows, spr * d))
    x[:, :rowlen] = layer.w.reshape(rows, rowlen)
    wt[:, :rowlen] = 1.0 if layer.imp is None else layer.imp.reshape(rows, rowlen)
    return x.reshape(-1, d), wt.reshape(-1, d)


def kmeans(X: np.ndarray, W: np.ndarray, k: int, iters: int, seed: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """``(codebook (K, d) float64, codes int64)``, used clusters only, most used first."""
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    # Draw the init where the weight is (sub-vectors in proportion to it): important ones
    # get centroids of their own, and a padded tail counts for its real coordinates only.
    weight = W.sum(axis=1)
    p = weight / weight.sum() if np.count_nonzero(weight) >= min(k, n) and np.ptp(weight) \
        else None
    C = X[np.sort(rng.choice(n, size=min(k, n), replace=False, p=p))].copy()
    codes = np.full(n, -1, dtype=np.int64)
    for _ in range(iters):
        if assign(X, W, C, codes) == 0:
            break
        update(X, W, codes, C)
    counts = np.bincount(codes, minlength=C.shape[0])
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    remap = np.zeros(C.shape[0], dtype=np.int64)
    remap[order] = np.arange(order.size)
    return C[order], remap[codes]


class PQ:
    """The ``pq`` method (see the module docstring)."""

    name: ClassVar[str] = "pq"
    code: ClassVar[int] = 26
    options: ClassVar[tuple[Option, ...]] = (
        Option("dim", int, 4, "Sub-vector size", "consecutive weights of a row coded together "
               "(2, 4 or 8 are usual; rows are zero-padded to a multiple)", lo=1, hi=MAX_D),
        Option("code_bits", int, 8, "Bits per code", "codebook of 2**code_bits sub-vectors: "
               "code_bits / dim bits a weight before entropy coding", lo=1, hi=12, finer=1),
        Option("iters", int, 16, "Iterations", "k-means rounds (fewer if it converges)",
               lo=1, hi=200),
        Option("init_seed", int, 0, "Seed", "seed of the k-means init", lo=0, hi=2**31 - 1),
        Option("entropy", str, "auto", "Entropy coder", "coder of the codes; auto: the "
               "smallest", choices=ENTROPY_CHOICES),
    )

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> FitLayer:
        return FitLayer(self, weights, shape, importance)

    def fit(self, layer: FitLayer, options: Options) -> Fit:
        d = int(options["dim"])
        rows, rowlen, _ = geometry(layer.shape, d)
        X, W = sub_vectors(layer, d)
        if X.shape[0]:
            C, codes = kmeans(X, W, 1 << int(options["code_bits"]), int(options["iters"]),
                              int(options["init_seed"]))
        else:
            C, codes = np.zeros((0, d)), np.zeros(0, dtype=np.int64)
        table, half, decoded = cheaper_floats(
            C, lambda c: decode_pq(codes, c, rows, rowlen), layer.w, "pq: a centroid")
        params = bytes([d, F_HALF if half else 0]) + uvarint(C.shape[0])
        return Fit(params, float_bytes(table, half), symbols_of(codes), decoded)

    def _parse(self, params: bytes, shape: tuple[int, ...] | None
               ) -> tuple[int, int, bool, int]:
        p = bytes(params)
        if len(p) < 4:
            raise ValueError(f"pq params: {len(p)} bytes, need at least 4")
        entropy_stage(p[0], "pq")
        d = p[1]
        if not 1 <= d <= MAX_D:
            raise ValueError(f"pq params: sub-vector size {d} outside 1..{MAX_D}")
        if p[2] & ~F_HALF:
            raise ValueError(f"pq params: bad flags byte {p[2]:#04x}")
        try:
            k, pos = read_uvarint(p, 3, MAX_K)
        except ValueError as exc:
            raise ValueError(f"pq params: codebook size: {exc}") from None
        if pos != len(p):
            raise ValueError(f"pq params: {len(p) - pos} trailing bytes")
        if shape is not None:
            rows, _, spr = geometry(shape, d)
            n = rows * spr
            if (k == 0) != (n == 0) or k > n:
                raise ValueError(f"pq params: codebook size {k} for {n} sub-vectors")
        return p[0], d, bool(p[2] & F_HALF), k

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        _, d, half, k = self._parse(params, tuple(shape))
        need = k * d * (2 if half else 4)
        if payload_nbytes < need:
            raise ValueError(f"pq payload: {payload_nbytes} bytes, its codebook alone takes "
                             f"{need}")

    def _parts(self, params: bytes, payload: bytes | memoryview, shape: tuple[int, ...],
               reference: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
        data = as_uint8(payload)
        self.check(params, data.size, shape)
        code, d, half, k = self._parse(params, tuple(shape))
        rows, rowlen, spr = geometry(shape, d)
        book = read_floats(data, k * d, half, "pq codebook").reshape(k, d)
        split = k * d * (2 if half else 4)
        symbols = read_symbols(entropy_stage(code, "pq"), data[split:], rows * spr, reference)
        codes = codes_of(symbols)
        if codes.size and int(codes.max()) >= k:
            raise ValueError(f"pq payload: a code past the codebook's {k} entries")
        return codes, book, rows, rowlen

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        return decode_pq(*self._parts(params, payload, shape, False))

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        return decode_pq_reference(*self._parts(params, payload, shape, True))

    def describe(self, params: bytes) -> dict[str, Any]:
        code, d, half, k = self._parse(params, None)
        return {"name": self.name, "d": d, "codebook": k,
                "codebook_dtype": "float16" if half else "float32",
                "entropy": entropy_name(code)}


registry.register_method(PQ())
