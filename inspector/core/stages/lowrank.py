"""Method ``lowrank``: a layer as the product of two thin factors (truncated SVD).

The layer is factorised as :mod:`.lowrank_kernels` describes (``split`` "channels": out x
in*kh*kw, the only choice for fc layers; "spatial": a kh x 1 conv to ``rank`` channels then
a 1 x kw conv, for 4-D conv weights). ``rank`` fixes the number of singular values kept;
without it, ``energy`` keeps the fewest whose squares hold that fraction of the total (1.0:
all of them, the layer up to float rounding). ``energy`` is the knob a fidelity floor moves.
The SVD ignores the importance (weighted low-rank has no closed form): the plan's error is
the plain one of the decoded product.

The factors are then value-coded (``values``): "float" stores them as float16 when that adds
at most the deep codebook's tolerance to the layer's error, else float32
(:func:`.fitted.cheaper_floats`); "uniform" hands each factor, as a ``rank x m`` / ``rank x
n`` tensor, to the registered ``uniform`` method (int-N with ``factor_bits`` per row of the
factor, levels through ``entropy``), so the later stages quantize and entropy-code the
factors. (``factor_bits``, not ``bits``: in a settings file that name is deep's setting.)
The decoded layer is always the float32 product of the decoded factors, computed as
:mod:`.lowrank_kernels` specifies bit for bit.

Record (params, little-endian): ``u8 split, u8 values (0 float32, 1 float16, 2 uniform),
u32 rank``; for uniform then ``u32 P's payload bytes, u16 len + P's uniform params, u16 len
+ Q's uniform params``. Payload: ``P`` then ``Q`` (row-major floats, or uniform payloads).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from inspector.core.bitpack import as_uint8
from inspector.core.stages import registry
from inspector.core.stages.base import Method, Option, Options, Plan, resolve_options
from inspector.core.stages.fitted import ENTROPY_CHOICES, cheaper_floats, float_bytes, read_floats
from inspector.core.stages.lowrank_kernels import (
    SPLITS,
    as_matrix,
    factors,
    from_matrix,
    matrix_shape,
    product,
    product_reference,
    rank_for,
    svd,
)
from inspector.core.stages.uniform_kernels import sq_error
from inspector.errors import SettingsError

FLOAT32, FLOAT16, UNIFORM = 0, 1, 2
VALUE_NAMES = ("float32", "float16", "uniform")
_HEAD = struct.Struct("<BBI")
_SPLIT = struct.Struct("<I")
_LEN = struct.Struct("<H")

OPTIONS: tuple[Option, ...] = (
    Option("energy", float, 0.9, "Energy kept", "fraction of the squared singular values "
           "kept (the rank is the fewest that hold it); 1.0 keeps the layer", lo=1e-6,
           hi=1.0, finer=1),
    Option("rank", int, None, "Rank", "singular values kept (overrides energy)", lo=1,
           hi=1 << 30, nullable=True),
    Option("split", str, "channels", "Split", "channels: out x in*kh*kw (fc and conv); "
           "spatial: a kh x 1 conv to rank channels, then a 1 x kw conv", choices=SPLITS),
    Option("values", str, "float", "Factor values", "float: float16 or float32 by the "
           "error; uniform: int-N per factor row with an entropy coder",
           choices=("float", "uniform")),
    Option("factor_bits", int, 8, "Factor bits", "int-N of the factors (values uniform)", lo=2,
           hi=16),
    Option("entropy", str, "auto", "Entropy coder", "coder of the factors' levels (values "
           "uniform); auto: the smallest", choices=ENTROPY_CHOICES),
)


@dataclass(frozen=True, slots=True)
class Factors:
    """A decoded record: ``layer ~ from_matrix(P^T Q)`` (float32, ``rank x m``/``rank x n``)."""

    split: str
    p: np.ndarray
    q: np.ndarray


@dataclass(frozen=True, slots=True)
class _Fit:
    params: bytes
    payload: bytes
    decoded: np.ndarray


class LowRankLayer:
    """:class:`LowRank` bound to one layer: the SVD once per split, the last fit cached."""

    def __init__(self, method: LowRank, weights: np.ndarray, shape: tuple[int, ...]) -> None:
        self.method = method
        self.w = np.ascontiguousarray(np.asarray(weights).reshape(-1))
        self.shape = tuple(int(d) for d in shape)
        if int(np.prod(self.shape, dtype=np.int64)) != self.w.size:
            raise SettingsError(f"{self.w.size} weights do not fill the shape {self.shape}")
        self.sumsq = float(sq_error(self.w, self.w[:0]))
        self._svd: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._fit: tuple[Options, _Fit] | None = None

    def plan(self, options: Options) -> Plan:
        f = self.fitted(options)
        return Plan(self.method.name, options, f.params, len(f.payload),
                    float(sq_error(f.decoded, self.w)), self.sumsq,
                    int(np.count_nonzero(f.decoded == 0)), state=f)

    def encode(self, options: Options) -> tuple[Plan, bytes]:
        plan = self.plan(options)
        return plan, plan.state.payload

    def decoded(self, options: Options) -> np.ndarray:
        return self.fitted(options).decoded

    def fitted(self, options: Options) -> _Fit:
        if self._fit is None or self._fit[0] != options:
            self._fit = (options, self._make(options))
        return self._fit[1]

    def _make(self, o: Options) -> _Fit:
        split = SPLITS.index(str(o["split"]))
        try:
            matrix_shape(split, self.shape)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if split not in self._svd:
            self._svd[split] = svd(as_matrix(self.w, split, self.shape))
        u, s, vt = self._svd[split]
        rank = rank_for(s, None if o["rank"] is None else int(o["rank"]), float(o["energy"]))
        p, q = factors(u, s, vt, rank)
        if o["values"] == "uniform":
            return self._uniform(split, rank, p, q, o)
        m, n = p.shape[1], q.shape[1]

        def render(table: np.ndarray) -> np.ndarray:
            return from_matrix(product(table[:rank * m].reshape(rank, m),
                                       table[rank * m:].reshape(rank, n)), split, self.shape)

        table, half, decoded = cheaper_floats(np.concatenate((p.ravel(), q.ravel())), render,
                                              self.w, "a low-rank factor")
        params = _HEAD.pack(split, FLOAT16 if half else FLOAT32, rank)
        return _Fit(params, float_bytes(table, half), decoded)

    def _uniform(self, split: int, rank: int, p: np.ndarray, q: np.ndarray,
                 o: Options) -> _Fit:
        uni = registry.method("uniform")
        opts = resolve_options(uni.options, {"granularity": "channel",
                                             "int_bits": int(o["factor_bits"]),
                                             "entropy": str(o["entropy"])})
        coded = []
        for f in (p, q):
            bound = uni.bind(f.astype(np.float32).ravel(), f.shape)
            plan, payload = bound.encode(opts)
            coded.append((plan.params, payload, bound.decoded(opts)))
        (pp, pay_p, dec_p), (qp, pay_q, dec_q) = coded
        params = (_HEAD.pack(split, UNIFORM, rank) + _SPLIT.pack(len(pay_p))
                  + _LEN.pack(len(pp)) + pp + _LEN.pack(len(qp)) + qp)
        decoded = from_matrix(product(dec_p.reshape(p.shape), dec_q.reshape(q.shape)), split,
                              self.shape)
        return _Fit(params, pay_p + pay_q, decoded)


@dataclass(frozen=True, slots=True)
class _Record:
    split: int
    values: int
    rank: int
    m: int
    n: int
    p_nbytes: int = 0
    p_params: bytes = b""
    q_params: bytes = b""


class LowRank:
    """The ``lowrank`` method (see the module docstring)."""

    name: ClassVar[str] = "lowrank"
    code: ClassVar[int] = 19
    options: ClassVar[tuple[Option, ...]] = OPTIONS

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> LowRankLayer:
        return LowRankLayer(self, weights, shape)

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        r = _parse(params, shape)
        if r.values == UNIFORM:
            if r.p_nbytes > payload_nbytes:
                raise ValueError(f"lowrank payload: {payload_nbytes} bytes, its first factor "
                                 f"alone takes {r.p_nbytes}")
            uni = _uniform()
            uni.check(r.p_params, r.p_nbytes, (r.rank, r.m))
            uni.check(r.q_params, payload_nbytes - r.p_nbytes, (r.rank, r.n))
            return
        need = r.rank * (r.m + r.n) * (2 if r.values == FLOAT16 else 4)
        if payload_nbytes != need:
            raise ValueError(f"lowrank payload: {payload_nbytes} bytes, its factors take {need}")

    def factors(self, params: bytes, payload: bytes | memoryview, shape: tuple[int, ...],
                reference: bool = False) -> Factors:
        """The decoded factors of a record (what a factorised write-back stores)."""
        data = as_uint8(payload)
        self.check(params, data.size, shape)
        r = _parse(params, shape)
        if r.values == UNIFORM:
            uni = _uniform()
            dec = uni.decode_reference if reference else uni.decode
            p = dec(r.p_params, data[:r.p_nbytes], (r.rank, r.m))
            q = dec(r.q_params, data[r.p_nbytes:], (r.rank, r.n))
        else:
            table = read_floats(data, r.rank * (r.m + r.n), r.values == FLOAT16,
                                "lowrank payload")
            p, q = table[:r.rank * r.m], table[r.rank * r.m:]
        return Factors(SPLITS[r.split], p.reshape(r.rank, r.m), q.reshape(r.rank, r.n))

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        f = self.factors(params, payload, shape)
        return from_matrix(product(f.p, f.q), SPLITS.index(f.split), tuple(shape))

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        f = self.factors(params, payload, shape, reference=True)
        return from_matrix(product_reference(f.p, f.q), SPLITS.index(f.split), tuple(shape))

    def describe(self, params: bytes) -> dict[str, Any]:
        if len(params) < _HEAD.size:
            raise ValueError("lowrank params: too short")
        split, values, rank = _HEAD.unpack_from(params)
        out: dict[str, Any] = {"name": self.name, "split": _word(SPLITS, split, "split"),
                               "rank": rank, "values": _word(VALUE_NAMES, values, "values")}
        if values == UNIFORM:
            r = _parse(params, None)
            uni = _uniform()
            out["factors"] = [uni.describe(r.p_params), uni.describe(r.q_params)]
        return out


def _uniform() -> Method:
    return registry.method("uniform")


def _word(words: tuple[str, ...], i: int, what: str) -> str:
    if i >= len(words):
        raise ValueError(f"lowrank params: unknown {what} {i}")
    return words[i]


def _parse(params: bytes, shape: tuple[int, ...] | None) -> _Record:
    """The record, checked against ``shape`` (None: the layout alone, for describe)."""
    if len(params) < _HEAD.size:
        raise ValueError(f"lowrank params: {len(params)} bytes, at least {_HEAD.size} needed")
    split, values, rank = _HEAD.unpack_from(params)
    _word(SPLITS, split, "split")
    _word(VALUE_NAMES, values, "values")
    m = n = 0
    if shape is not None:
        m, n = matrix_shape(split, tuple(shape))
        full = min(m, n)
        if rank > full or (rank == 0 and full > 0):
            raise ValueError(f"lowrank params: rank {rank} for a {m} x {n} layer")
    at = _HEAD.size
    if values != UNIFORM:
        if len(params) != at:
            raise ValueError(f"lowrank params: {len(params)} bytes, {at} expected")
        return _Record(split, values, rank, m, n)
    if len(params) < at + _SPLIT.size:
        raise ValueError("lowrank params: the uniform factors' lengths are cut")
    (p_nbytes,) = _SPLIT.unpack_from(params, at)
    at += _SPLIT.size
    parts = []
    for _ in range(2):
        if len(params) < at + _LEN.size:
            raise ValueError("lowrank params: a factor's uniform params are cut")
        (k,) = _LEN.unpack_from(params, at)
        at += _LEN.size
        if len(params) < at + k:
            raise ValueError("lowrank params: a factor's uniform params are cut")
        parts.append(bytes(params[at:at + k]))
        at += k
    if at != len(params):
        raise ValueError(f"lowrank params: {len(params) - at} bytes too many")
    return _Record(split, values, rank, m, n, p_nbytes, parts[0], parts[1])


registry.register_method(LowRank())
