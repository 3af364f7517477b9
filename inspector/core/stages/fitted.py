"""What the fitted methods (``ternary``, ``binary``, ``pq``, ``hashed``) share.

Each of them *fits* a layer once per option set (:class:`Fit`: the decoded layer, the float
tables its payload starts with, and the integer symbols, if any, that go to an entropy stage),
and :class:`FitLayer` turns a fit into an exact :class:`~.base.Plan` and bytes: the entropy
stage is the one the ``entropy`` option names, or with ``"auto"`` the smallest registered one
for these symbols, chosen exactly (ties: the lowest code). A method whose record has a symbol
stream writes that stage's code as its first params byte.

Symbols are *signed* levels (the entropy contract). A method whose values are codes
``0..K-1`` sends them as :func:`symbols_of`'s signed form, the inverse of zig-zag, so the
``fixed`` stage stores exactly ``bit_length(K - 1)`` bits a code (zig-zag of non-negative
numbers would spend one bit more) and small codes stay cheap for an adaptive coder.

Float tables (per-channel scales, codebooks, bucket values) are stored as float16 when that
adds at most :data:`inspector.core.codebook.HALF_TOLERANCE` to the layer's exact squared
error (the deep codebook's rule), else float32: :func:`cheaper_floats`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from inspector.core.codebook import HALF_TOLERANCE
from inspector.core.stages import registry
from inspector.core.stages.base import Entropy, Options, Plan
from inspector.core.stages.fixed import unzigzag, zigzag_reference
from inspector.core.stages.uniform_kernels import sq_error
from inspector.errors import SettingsError

ENTROPY_CHOICES = ("auto", "fixed", "huffman", "cabac")


@dataclass(frozen=True, slots=True)
class Fit:
    """One layer fitted under the options that do not name the entropy stage.

    ``params`` are the record's parameters after the entropy code byte (all of them when
    ``symbols`` is None); ``tables`` the payload's bytes before the symbol stream.
    """

    params: bytes
    tables: bytes
    symbols: np.ndarray | None
    decoded: np.ndarray


class Fitter(Protocol):
    name: str

    def fit(self, layer: FitLayer, options: Options) -> Fit: ...


class FitLayer:
    """A fitted method bound to one layer; caches the last fit and plan (not thread-safe)."""

    def __init__(self, method: Fitter, weights: np.ndarray, shape: tuple[int, ...],
                 importance: np.ndarray | None) -> None:
        self.method = method
        w = np.asarray(weights).reshape(-1)
        self.w = np.ascontiguousarray(w if w.dtype in (np.float32, np.float64)
                                      else w.astype(np.float64))
        self.shape = tuple(int(d) for d in shape)
        if int(np.prod(self.shape, dtype=np.int64)) != self.w.size:
            raise SettingsError(f"{self.w.size} weights do not fill the shape {self.shape}")
        self.imp = None if importance is None else normalised(importance, self.w.size)
        self.sumsq = float(sq_error(self.w, self.w[:0]))
        self._fit: tuple[Options, Fit] | None = None
        self._plan: tuple[Options, Plan] | None = None

    def fitted(self, options: Options) -> Fit:
        key = options.replace(entropy="auto") if "entropy" in options else options
        if self._fit is None or self._fit[0] != key:
            self._fit = (key, self.method.fit(self, options))
        return self._fit[1]

    def plan(self, options: Options) -> Plan:
        if self._plan is not None and self._plan[0] == options:
            return self._plan[1]
        f = self.fitted(options)
        stage, nbytes, params = None, 0, f.params
        if f.symbols is not None:
            stage, nbytes = pick_entropy(str(options["entropy"]), f.symbols)
            params = bytes([stage.code]) + f.params
        d = f.decoded
        plan = Plan(self.method.name, options, params, len(f.tables) + nbytes,
                    float(sq_error(d, self.w)), self.sumsq, int(np.count_nonzero(d == 0)),
                    state=(f, stage))
        self._plan = (options, plan)
        return plan

    def encode(self, options: Options) -> tuple[Plan, bytes]:
        plan = self.plan(options)
        f, stage = plan.state
        payload = f.tables + (stage.encode(f.symbols) if stage is not None else b"")
        if len(payload) != plan.payload_nbytes:
            raise AssertionError(f"{self.method.name}: planned {plan.payload_nbytes} bytes, "
                                 f"wrote {len(payload)}")
        return plan, payload

    def decoded(self, options: Options) -> np.ndarray:
        return self.fitted(options).decoded


def pick_entropy(name: str, symbols: np.ndarray) -> tuple[Entropy, int]:
    """The stage ``name`` (or the smallest registered one for "auto") and its exact bytes."""
    stages = (sorted(registry.ENTROPY.values(), key=lambda e: e.code) if name == "auto"
              else [registry.entropy(name)])
    nbytes, _, stage = min(((e.nbytes(symbols), e.code, e) for e in stages),
                           key=lambda t: t[:2])
    return stage, nbytes


def entropy_stage(code: int, what: str) -> Entropy:
    stage = registry.entropy_by_code(code)
    if stage is None:
        raise ValueError(f"{what} params: unknown entropy coder code {code}")
    return stage


def entropy_name(code: int) -> str | int:
    stage = registry.entropy_by_code(code)
    return stage.name if stage is not None else code


def read_symbols(stage: Entropy, data: np.ndarray, count: int, reference: bool
                 ) -> np.ndarray:
    return stage.decode_reference(data, count) if reference else stage.decode(data, count)


def symbols_of(codes: np.ndarray) -> np.ndarray:
    """The signed symbols (int32) whose zig-zag codes are ``codes`` (non-negative)."""
    return unzigzag(np.ascontiguousarray(codes, dtype=np.uint32))


def codes_of(symbols: np.ndarray) -> np.ndarray:
    """The inverse of :func:`symbols_of` (int64)."""
    return zigzag_reference(symbols).astype(np.int64)


def normalised(importance: np.ndarray, n: int) -> np.ndarray:
    """Importance as float64 of mean 1 (all ones when it sums to 0); SettingsError if it is
    not ``n`` finite values >= 0."""
    imp = np.ascontiguousarray(importance, dtype=np.float64).reshape(-1)
    if imp.size != n or not np.all(np.isfinite(imp)) or (imp.size and imp.min() < 0):
        raise SettingsError(f"importance must be {n} finite values >= 0")
    mean = float(imp.mean()) if imp.size else 0.0
    return imp / mean if mean > 0 else np.ones(n)


def cheaper_floats(values: np.ndarray, render: Callable[[np.ndarray], np.ndarray],
                   w: np.ndarray, what: str) -> tuple[np.ndarray, bool, np.ndarray]:
    """``(table, half, decoded)``: the float32 ``values`` or their float16 rounding, whichever
    :data:`HALF_TOLERANCE` picks by the exact error of ``render(table)`` (the decoded layer)
    against ``w``; SettingsError if a value passes float32's range."""
    with np.errstate(over="ignore", invalid="ignore"):
        full = np.asarray(values, dtype=np.float64).astype(np.float32)
        if not np.all(np.isfinite(full)):
            raise SettingsError(f"{what} passes float32's range")
        half = full.astype(np.float16).astype(np.float32)
    dec_full = render(full)
    if not np.all(np.isfinite(half)):
        return full, False, dec_full
    if half.tobytes() == full.tobytes():
        return half, True, dec_full
    dec_half = render(half)
    sse_full, sse_half = sq_error(dec_full, w), sq_error(dec_half, w)
    if sse_half - sse_full <= HALF_TOLERANCE * sse_full:
        return half, True, dec_half
    return full, False, dec_full


def float_bytes(table: np.ndarray, half: bool) -> bytes:
    return np.asarray(table).astype("<f2" if half else "<f4").tobytes()


def read_floats(data: np.ndarray, count: int, half: bool, what: str,
                nonnegative: bool = False) -> np.ndarray:
    """``count`` float16/float32 values at the start of ``data`` as float32; ValueError if
    one is not finite (or, ``nonnegative``, has its sign bit set)."""
    size = count * (2 if half else 4)
    if data.size < size:
        raise ValueError(f"{what}: {data.size} bytes, its {count} values take {size}")
    raw = np.frombuffer(data[:size].tobytes(), dtype="<f2" if half else "<f4")
    out = raw.astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{what}: a value is not finite")
    if nonnegative and np.any(np.signbit(out)):
        raise ValueError(f"{what}: a negative value")
    return out
