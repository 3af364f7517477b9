"""Method ``uniform``: a uniform reconstruction grid, rate-distortion-optimised levels.

Level ``q`` decodes to ``q * step`` (symmetric; 0 is a level, so the zero cell *is* pruning:
a layer's sparsity comes out of the step and ``lam``). The levels go to an entropy stage
(``entropy``: a registered one by name, or ``"auto"``, the smallest of them, chosen exactly).

Sizing, first that is set wins: ``step`` (absolute, one step for the whole tensor whatever
the granularity), ``int_bits`` (int-N: each unit's step is its ``max|w| / (2**(N-1) - 1)``, so
its levels fit in N signed bits), ``rel_step`` (each unit's step as a fraction of its max|w|:
``int_bits`` is the special case ``1 / (2**(N-1) - 1)``). Units (``granularity``): the tensor,
each output channel (axis 0: fc rows, conv filters), or ``group`` consecutive weights of a row.
A unit's step is rounded *up* to the format's grid of steps (:mod:`.uniform_params`).

``lam`` >= 0 trades error for rate: each level minimises ``imp * (w/step - r)**2 + lam *
bits`` (error in steps squared, so ``lam`` means the same at any step; ``imp`` is the bound
importance normalised to mean 1 in the layer), with ``bits`` from a rate model re-estimated
from the levels (:func:`.uniform_kernels.empirical_rate` by default). ``lam`` = 0 is rounding.

``recon`` "mean" adds cell-mean reconstruction (entropy-constrained scalar quantization):
levels 1..K decode to the (importance-weighted) mean of the weights they hold, as an offset
of 1/128 step per level magnitude in the params.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from inspector.core.bitpack import as_uint8
from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options, Plan
from inspector.core.stages.fixed import pack_unsigned, unpack_unsigned, unsigned_nbytes
from inspector.core.stages.uniform_kernels import (
    RateModel,
    cell_sums,
    decode_levels,
    decode_levels_reference,
    empirical_rate,
    quantize,
    sq_error,
    unit_max,
)
from inspector.core.stages.uniform_params import (
    EXP_WIDTH_MAX,
    GRANULARITIES,
    LEVEL_MAX,
    MAX_TABLE,
    OFFSET_HI,
    OFFSET_LO,
    TENSOR,
    Header,
    exponents_for,
    layout,
    steps_of,
    unit_count,
    unit_of_each,
    units_geometry,
)
from inspector.errors import SettingsError

ENTROPY_CHOICES = ("auto", "fixed", "huffman", "cabac")
_STEP_LO, _STEP_HI = 2.0**-100, 2.0**100

OPTIONS: tuple[Option, ...] = (
    Option("granularity", str, "channel", "Scale per", "one step for the tensor, per output "
           "channel, or per group of consecutive weights", choices=GRANULARITIES),
    Option("group", int, 32, "Group size", "weights of a row sharing a step (granularity "
           "group)", lo=1, hi=1 << 24),
    Option("step", float, None, "Step", "absolute step for the whole tensor (overrides "
           "int_bits and rel_step)", lo=_STEP_LO, hi=_STEP_HI, nullable=True),
    # not "bits": that name is deep's cluster bits in settings files and on the command line
    Option("int_bits", int, None, "Int bits", "int-N sizing: step = max|w| / (2**(N-1) - 1) "
           "per unit (overrides rel_step)", lo=2, hi=16, nullable=True),
    Option("rel_step", float, 1 / 15, "Relative step", "step as a fraction of each unit's "
           "max|w|", lo=2.0**-19, hi=2.0, finer=-1),
    Option("lam", float, 0.0, "Lambda", "rate-distortion trade-off: squared error (in steps "
           "squared) one bit is worth; 0 is plain rounding", lo=0.0, hi=1e6),
    Option("recon", str, "grid", "Reconstruction", "the grid value q*step, or each level's "
           "cell mean (a small table in the params)", choices=("grid", "mean")),
    Option("entropy", str, "auto", "Entropy coder", "coder of the levels; auto: the smallest",
           choices=ENTROPY_CHOICES),
)


@dataclass(frozen=True, slots=True)
class Quantized:
    """A layer's levels under the options that do not name the entropy stage."""

    header: Header  # entropy_code 0: filled in by the plan
    exps: np.ndarray
    levels: np.ndarray
    decoded: np.ndarray
    sse: float
    zeros: int

    @property
    def scales_nbytes(self) -> int:
        return unsigned_nbytes(self.exps.size, self.header.exp_width) if self.exps.size > 1 \
            else 0


class UniformLayer:
    """:class:`Uniform` bound to one layer (caches the last levels; not thread-safe)."""

    def __init__(self, method: Uniform, weights: np.ndarray, shape: tuple[int, ...],
                 importance: np.ndarray | None, rate: RateModel) -> None:
        self.method = method
        # float32 stays float32 (the kernels widen each weight): no copy of a big layer
        w = np.asarray(weights).reshape(-1)
        self.w = np.ascontiguousarray(w if w.dtype in (np.float32, np.float64)
                                      else w.astype(np.float64))
        self.shape = tuple(int(d) for d in shape)
        self.imp = None if importance is None else _normalised(importance, self.w.size)
        self.rate = rate
        self.sumsq = float(sq_error(self.w, self.w[:0]))
        self._cache: tuple[Options, Quantized] | None = None
        self._choice: tuple[Options, Plan] | None = None

    def plan(self, options: Options) -> Plan:
        if self._choice is not None and self._choice[0] == options:
            return self._choice[1]
        q = self.quantized(options)
        name = str(options["entropy"])
        stages = (sorted(registry.ENTROPY.values(), key=lambda e: e.code) if name == "auto"
                  else [registry.entropy(name)])
        sizes = [(e.nbytes(q.levels), e.code, e) for e in stages]
        nbytes, _, stage = min(sizes, key=lambda t: t[:2])
        header = Header(q.header.granularity, stage.code, q.header.base, q.header.exp_width,
                        q.header.group, q.header.offsets)
        plan = Plan(self.method.name, options, header.to_bytes(), q.scales_nbytes + nbytes,
                    q.sse, self.sumsq, q.zeros, state=(q, stage))
        self._choice = (options, plan)
        return plan

    def encode(self, options: Options) -> tuple[Plan, bytes]:
        plan = self.plan(options)
        q, stage = plan.state
        scales = pack_unsigned(q.exps, q.header.exp_width) if q.exps.size > 1 else b""
        payload = scales + stage.encode(q.levels)
        if len(payload) != plan.payload_nbytes:
            raise AssertionError(f"uniform: planned {plan.payload_nbytes} bytes, wrote "
                                 f"{len(payload)}")
        return plan, payload

    def decoded(self, options: Options) -> np.ndarray:
        return self.quantized(options).decoded

    def quantized(self, options: Options) -> Quantized:
        """The levels under ``options`` (the entropy option aside)."""
        key = options.replace(entropy="auto")
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.method.quantize(self, options))
        return self._cache[1]


class Uniform:
    """The ``uniform`` method (see the module docstring)."""

    name: ClassVar[str] = "uniform"
    code: ClassVar[int] = 16
    options: ClassVar[tuple[Option, ...]] = OPTIONS

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None, rate: RateModel = empirical_rate
             ) -> UniformLayer:
        return UniformLayer(self, weights, shape, importance, rate)

    def sizing(self, options: Options) -> dict[str, Any]:
        """The uniform options these resolve to (presets such as int8 override this)."""
        return dict(options)

    def quantize(self, layer: UniformLayer, options: Options) -> Quantized:
        o = self.sizing(options)
        gran = TENSOR if o["step"] is not None else GRANULARITIES.index(o["granularity"])
        # a group longer than the row is the row (the record's group is at most its length)
        group = min(int(o["group"]), max(1, layout(layer.shape)[1])) if gran == 2 else 0
        geo = units_geometry(gran, layer.shape, group)
        units = unit_count(gran, layer.shape, group)
        header, exps, steps = _steps(layer, o, gran, group, geo, units)
        inv = 1.0 / steps.astype(np.float64)
        offsets: tuple[int, ...] = ()
        levels = quantize(layer.w, layer.imp, inv, geo, np.zeros(1), o["lam"], layer.rate)
        if o["recon"] == "mean":
            for _ in range(2):
                offsets = _cell_means(layer, levels, inv, geo)
                recon = np.concatenate(([0.0], np.arange(1, len(offsets) + 1)
                                        + np.asarray(offsets, dtype=np.float64) / 128))
                levels = quantize(layer.w, layer.imp, inv, geo, recon, o["lam"], layer.rate)
            if not any(offsets):
                offsets = ()
        header = Header(gran, 0, header.base, header.exp_width, group, offsets)
        decoded = decode_levels(levels, steps, _table(offsets), geo)
        return Quantized(header, exps, levels, decoded, float(sq_error(decoded, layer.w)),
                         int(np.count_nonzero(levels == 0)))

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        h = Header.parse(params, shape)
        if registry.entropy_by_code(h.entropy_code) is None:
            raise ValueError(f"uniform params: unknown entropy coder code {h.entropy_code}")
        need = _scales_nbytes(h, shape)
        if payload_nbytes < need:
            raise ValueError(f"uniform payload: {payload_nbytes} bytes, its step exponents "
                             f"alone take {need}")

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        h, steps, levels = self._parts(params, payload, shape, reference=False)
        geo = units_geometry(h.granularity, shape, h.group)
        return _finite(decode_levels(levels, steps, _table(h.offsets), geo))

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        h, steps, levels = self._parts(params, payload, shape, reference=True)
        unit = unit_of_each(units_geometry(h.granularity, shape, h.group))
        with np.errstate(over="ignore"):
            return _finite(decode_levels_reference(levels, steps, _table(h.offsets), unit))

    def describe(self, params: bytes) -> dict[str, Any]:
        h = Header.parse(params, (1 << 30, 1 << 30))  # the group bound needs a row length
        stage = registry.entropy_by_code(h.entropy_code)
        out: dict[str, Any] = {"name": self.name, "granularity": GRANULARITIES[h.granularity],
                               "step": h.base, "entropy": stage.name if stage else h.entropy_code}
        if h.group:
            out["group"] = h.group
        if h.offsets:
            out["recon"] = "mean"
            out["offsets"] = [d / 128 for d in h.offsets]
        return out

    def _parts(self, params: bytes, payload: bytes | memoryview, shape: tuple[int, ...],
               reference: bool) -> tuple[Header, np.ndarray, np.ndarray]:
        data = as_uint8(payload)
        self.check(params, data.size, shape)
        h = Header.parse(params, shape)
        stage = registry.entropy_by_code(h.entropy_code)
        units = unit_count(h.granularity, shape, h.group)
        split = _scales_nbytes(h, shape)
        if units > 1:
            exps = unpack_unsigned(data[:split], h.exp_width, units, reference)
        else:
            exps = np.zeros(units, dtype=np.uint32)
        steps = steps_of(h.base, exps)
        n = units_geometry(h.granularity, shape, h.group)
        count = n[0] * n[1]
        code = data[split:]
        levels = stage.decode_reference(code, count) if reference else stage.decode(code, count)
        if levels.size and int(np.abs(levels.astype(np.int64)).max()) > LEVEL_MAX:
            raise ValueError(f"uniform payload: a level beyond +-{LEVEL_MAX}")
        return h, steps, levels


def _finite(values: np.ndarray) -> np.ndarray:
    """``values`` if every one is finite (a damaged record can multiply past float32)."""
    if not np.isfinite(values).all():
        raise ValueError("uniform payload: a decoded value overflows float32")
    return values


def _normalised(importance: np.ndarray, n: int) -> np.ndarray:
    imp = np.ascontiguousarray(importance, dtype=np.float64).reshape(-1)
    if imp.size != n or not np.all(np.isfinite(imp)) or (imp.size and imp.min() < 0):
        raise SettingsError(f"importance must be {n} finite values >= 0")
    mean = float(imp.mean()) if imp.size else 0.0
    return imp / mean if mean > 0 else np.ones(n)


def _scales_nbytes(h: Header, shape: tuple[int, ...]) -> int:
    units = unit_count(h.granularity, shape, h.group)
    return unsigned_nbytes(units, h.exp_width) if units > 1 else 0


def _table(offsets: tuple[int, ...]) -> np.ndarray:
    """``128 * m + d_m`` for magnitudes 0..K (the decoder's reconstruction table)."""
    m = np.arange(len(offsets) + 1, dtype=np.int64)
    return 128 * m + np.concatenate(([0], np.asarray(offsets, dtype=np.int64)))


def _steps(layer: UniformLayer, o: dict[str, Any], gran: int, group: int,
           geo: tuple[int, int, int, int], units: int
           ) -> tuple[Header, np.ndarray, np.ndarray]:
    """The header's base and exponent width, the exponents and the float32 steps."""
    if o["step"] is not None:
        wanted = np.array([float(o["step"])])
    else:
        rel = (1.0 / ((1 << (int(o["int_bits"]) - 1)) - 1) if o["int_bits"] is not None
               else float(o["rel_step"]))
        top = unit_max(layer.w, geo, units)
        # A unit of zeros has every level 0 at any step: let it take the smallest one.
        wanted = np.where(top > 0, top * rel, np.inf)
        if not np.isfinite(wanted).any():
            wanted = np.ones(max(units, 1))
        wanted = np.clip(np.where(np.isfinite(wanted), wanted, wanted[np.isfinite(wanted)]
                                  .min()), _STEP_LO, _STEP_HI)
    base = float(np.float32(wanted.min()))
    if base < wanted.min():
        base = float(np.nextafter(np.float32(base), np.float32(np.inf)))
    exps = exponents_for(base, wanted) if units > 1 else np.zeros(max(units, 1), np.int64)
    width = int(exps.max()).bit_length() if exps.size else 0
    if width > EXP_WIDTH_MAX:
        raise SettingsError("the layer's units' steps span more than 2**255: use "
                            "granularity tensor")
    steps = steps_of(base, exps)
    top = unit_max(layer.w, units_geometry(TENSOR, layer.shape, 0), 1) if o["step"] is not None \
        else top
    if np.any(top / steps.astype(np.float64)[: top.size] > LEVEL_MAX):
        what = f"step {o['step']}" if o["step"] is not None else "the step"
        raise SettingsError(f"{what} is too small for this layer's weights: levels would pass "
                            f"+-{LEVEL_MAX}")
    return Header(gran, 0, base, width if units > 1 else 0, group), exps[:units], steps[:units]


def _cell_means(layer: UniformLayer, levels: np.ndarray, inv: np.ndarray,
                geo: tuple[int, int, int, int]) -> tuple[int, ...]:
    """Offsets (1/128 step) of each level magnitude's weighted mean from the grid."""
    k = int(min(MAX_TABLE, np.abs(levels).max())) if levels.size else 0
    if k == 0:
        return ()
    num, den = cell_sums(layer.w, layer.imp, inv, levels, geo, k)
    d = np.divide(num[1:], den[1:], out=np.zeros(k), where=den[1:] > 0)
    return tuple(int(v) for v in np.clip(np.rint(d * 128), OFFSET_LO, OFFSET_HI))

registry.register_method(Uniform())
