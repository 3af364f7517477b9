"""Method ``hashed``: HashedNets (Chen et al. 2015), issue 13.6.

Every weight takes the value of one of ``B`` buckets, chosen by a seeded hash of its
position; only the bucket values and the seed (``hash_seed``) are stored, nothing per
weight. ``B`` is ``buckets`` if set, else ``ceil(n / per_bucket)`` (``per_bucket`` weights
share a bucket on average: the compression factor over one value a weight). A bucket's value
is the (importance-weighted) mean of its members, the least-squares optimum. With a sign
hash (the paper's ``xi``), weight ``i`` is ``sigma_i * v[bucket_i]`` and the bucket value
the mean of ``sigma_i * w_i``; ``sign`` "auto" keeps whichever of the two has the smaller
exact (importance-weighted) error.

The hash, all arithmetic modulo 2**32 (a C decoder reproduces it with ``uint32_t``), of the
flat C-order position ``i`` (a layer has fewer than 2**32 weights)::

    fmix32(h):  h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35; h ^= h >> 16
    x_i      = i + seed * 0x9E3779B9
    bucket_i = (fmix32(x_i) * B) >> 32            (a 64-bit product: multiply-shift range)
    sigma_i  = -1 if fmix32(x_i ^ 0x5BD1E995) >> 31 else +1

(``fmix32`` is MurmurHash3's finaliser.) Decoded weight: ``v[bucket_i]``, negated when
``sigma_i`` is -1: exact.

Params: u8 flags (bit 0: float16 buckets, bit 1: sign hash; other bits zero); u32 seed
(little-endian); uvarint ``B`` (1..n; 0 for an empty layer). Payload: exactly the ``B``
bucket values, little-endian float16 or float32, finite (float16 when exact enough:
:func:`.fitted.cheaper_floats`).
"""

from __future__ import annotations

import math
import struct
from typing import Any, ClassVar

import numba
import numpy as np

from inspector.core.bitpack import as_uint8, read_uvarint, uvarint
from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options
from inspector.core.stages.fitted import Fit, FitLayer, cheaper_floats, float_bytes, read_floats
from inspector.core.stages.uniform_kernels import sq_error
from inspector.errors import SettingsError

F_HALF, F_SIGN = 1, 2
MAX_WEIGHTS = 1 << 32
_M32 = 0xFFFFFFFF
_GOLDEN, _SIGN_SALT = 0x9E3779B9, 0x5BD1E995


@numba.njit(cache=True, nogil=True, inline="always")
def _fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


@numba.njit(cache=True, nogil=True)
def _positions(n, seed, b, buckets, negative):
    s0 = (np.uint64(seed) * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF)
    for i in range(n):
        x = (np.uint64(i) + s0) & np.uint64(0xFFFFFFFF)
        buckets[i] = (_fmix32(x) * np.uint64(b)) >> np.uint64(32)
        negative[i] = (_fmix32(x ^ np.uint64(0x5BD1E995)) >> np.uint64(31)) == 1


@numba.njit(cache=True, nogil=True)
def _decode(seed, b, signed, values, out):
    s0 = (np.uint64(seed) * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF)
    for i in range(out.size):
        x = (np.uint64(i) + s0) & np.uint64(0xFFFFFFFF)
        v = values[(_fmix32(x) * np.uint64(b)) >> np.uint64(32)]
        if signed and (_fmix32(x ^ np.uint64(0x5BD1E995)) >> np.uint64(31)) == 1:
            v = -v
        out[i] = v


def positions(n: int, seed: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Every weight's bucket (int64) and whether its sign hash is -1 (bool)."""
    buckets = np.empty(n, dtype=np.int64)
    negative = np.empty(n, dtype=np.bool_)
    if n:
        _positions(n, seed, b, buckets, negative)
    return buckets, negative


def _fmix32_reference(h: np.ndarray) -> np.ndarray:
    m = np.uint64(_M32)
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & m
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & m
    return h ^ (h >> np.uint64(16))


def positions_reference(n: int, seed: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy twin of :func:`positions`."""
    m = np.uint64(_M32)
    x = (np.arange(n, dtype=np.uint64) + np.uint64((seed * _GOLDEN) & _M32)) & m
    buckets = ((_fmix32_reference(x) * np.uint64(b)) >> np.uint64(32)).astype(np.int64)
    negative = (_fmix32_reference(x ^ np.uint64(_SIGN_SALT)) >> np.uint64(31)) == 1
    return buckets, negative


def decode_hashed(n: int, seed: int, b: int, signed: bool, values: np.ndarray) -> np.ndarray:
    out = np.empty(n, dtype=np.float32)
    if n:
        _decode(seed, b, signed, values, out)
    return out


def decode_hashed_reference(n: int, seed: int, b: int, signed: bool, values: np.ndarray
                            ) -> np.ndarray:
    buckets, negative = positions_reference(n, seed, b)
    v = values[buckets]
    return np.where(negative & signed, -v, v).astype(np.float32)


def _error(decoded: np.ndarray, layer: FitLayer) -> float:
    """The squared error the fit minimises: importance-weighted when there is one."""
    if layer.imp is None:
        return float(sq_error(decoded, layer.w))
    d = decoded.astype(np.float64) - layer.w
    return float(np.dot(layer.imp * d, d))


class Hashed:
    """The ``hashed`` method (see the module docstring)."""

    name: ClassVar[str] = "hashed"
    code: ClassVar[int] = 27
    options: ClassVar[tuple[Option, ...]] = (
        Option("buckets", int, None, "Buckets", "number of shared values B (overrides the "
               "factor; at most the layer's size)", lo=1, hi=MAX_WEIGHTS - 1, nullable=True),
        Option("per_bucket", float, 8.0, "Weights per bucket", "B = ceil(weights / "
               "per_bucket): the compression factor over one value a weight",
               lo=1.0, hi=1e12, finer=-1),
        Option("hash_seed", int, 0, "Seed", "seed of the position hash", lo=0, hi=MAX_WEIGHTS - 1),
        Option("sign", str, "auto", "Sign hash", "also flip each weight's sign by a second "
               "hash (HashedNets' xi); auto: whichever errs less", choices=("auto", "on",
                                                                            "off")),
    )

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> FitLayer:
        if np.asarray(weights).size >= MAX_WEIGHTS:
            raise SettingsError("hashed: a layer of 2**32 weights or more is past the hash")
        return FitLayer(self, weights, shape, importance)

    def fit(self, layer: FitLayer, options: Options) -> Fit:
        n = layer.w.size
        b = (int(options["buckets"]) if options["buckets"] is not None
             else math.ceil(n / float(options["per_bucket"])))
        b = min(max(b, 1), n)
        seed = int(options["hash_seed"])
        buckets, negative = positions(n, seed, b)
        imp = np.ones(n) if layer.imp is None else layer.imp
        den = np.bincount(buckets, weights=imp, minlength=b)
        best: tuple[float, Fit] | None = None
        for signed in {"off": (False,), "on": (True,), "auto": (False, True)}[
                str(options["sign"])]:
            x = np.where(negative, -layer.w, layer.w) if signed else layer.w
            num = np.bincount(buckets, weights=imp * x, minlength=b)
            means = np.divide(num, den, out=np.zeros(b), where=den > 0)
            table, half, decoded = cheaper_floats(
                means, lambda v, s=signed: decode_hashed(n, seed, b, s, v), layer.w,
                "hashed: a bucket value")
            params = bytes([(F_HALF if half else 0) | (F_SIGN if signed else 0)]) \
                + struct.pack("<I", seed) + uvarint(b)
            fit = Fit(params, float_bytes(table, half), None, decoded)
            sse = _error(decoded, layer)
            if best is None or sse < best[0]:
                best = (sse, fit)
        assert best is not None
        return best[1]

    def _parse(self, params: bytes, shape: tuple[int, ...] | None
               ) -> tuple[bool, bool, int, int]:
        p = bytes(params)
        if len(p) < 6:
            raise ValueError(f"hashed params: {len(p)} bytes, need at least 6")
        if p[0] & ~(F_HALF | F_SIGN):
            raise ValueError(f"hashed params: bad flags byte {p[0]:#04x}")
        (seed,) = struct.unpack_from("<I", p, 1)
        try:
            b, pos = read_uvarint(p, 5, MAX_WEIGHTS - 1)
        except ValueError as exc:
            raise ValueError(f"hashed params: bucket count: {exc}") from None
        if pos != len(p):
            raise ValueError(f"hashed params: {len(p) - pos} trailing bytes")
        if shape is not None:
            n = math.prod(int(d) for d in shape)
            if n >= MAX_WEIGHTS:
                raise ValueError(f"hashed: {n} weights, the hash covers fewer than 2**32")
            if (b == 0) != (n == 0) or b > n:
                raise ValueError(f"hashed params: {b} buckets for {n} weights")
        return bool(p[0] & F_HALF), bool(p[0] & F_SIGN), seed, b

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        half, _, _, b = self._parse(params, tuple(shape))
        need = b * (2 if half else 4)
        if payload_nbytes != need:
            raise ValueError(f"hashed payload: {payload_nbytes} bytes, its {b} buckets take "
                             f"{need}")

    def _parts(self, params: bytes, payload: bytes | memoryview, shape: tuple[int, ...]
               ) -> tuple[int, int, int, bool, np.ndarray]:
        data = as_uint8(payload)
        self.check(params, data.size, shape)
        half, signed, seed, b = self._parse(params, tuple(shape))
        values = read_floats(data, b, half, "hashed buckets")
        return math.prod(int(d) for d in shape), seed, b, signed, values

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        return decode_hashed(*self._parts(params, payload, shape))

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        return decode_hashed_reference(*self._parts(params, payload, shape))

    def describe(self, params: bytes) -> dict[str, Any]:
        half, signed, seed, b = self._parse(params, None)
        return {"name": self.name, "buckets": b, "seed": seed, "sign": signed,
                "dtype": "float16" if half else "float32"}


registry.register_method(Hashed())
