"""What the fitted methods share: registration, defaults, "auto" picking the smallest coder."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.core.stages.fitted import codes_of, symbols_of

NAMES = ("ternary", "binary", "pq", "hashed")


class Flags:
    """A toy coder of symbols -1..1: one bit per symbol (non-zero?) and one per non-zero
    (negative?). Cheaper than ``fixed``'s 2 bits on zero-heavy levels; refuses others."""

    name: ClassVar[str] = "flags-test"
    code: ClassVar[int] = 250

    def nbytes(self, symbols: np.ndarray) -> int:
        s = np.asarray(symbols)
        if s.size and (s.min() < -1 or s.max() > 1):
            return 1 << 40  # cannot code them: never the smallest
        return -(-s.size // 8) + -(-int(np.count_nonzero(s)) // 8)

    def encode(self, symbols: np.ndarray) -> bytes:
        s = np.asarray(symbols)
        return np.packbits(s != 0).tobytes() + np.packbits(s[s != 0] < 0).tobytes()

    def decode(self, data: bytes | memoryview, count: int) -> np.ndarray:
        bits = np.unpackbits(np.frombuffer(data, np.uint8))
        nz = bits[:count].astype(bool)
        k = int(nz.sum())
        if len(data) != -(-count // 8) + -(-k // 8):
            raise ValueError("flags-test: wrong length")
        out = nz.astype(np.int32)
        out[nz] = np.where(bits[-(-count // 8) * 8:][:k] == 1, -1, 1)
        return out

    decode_reference = decode


@pytest.mark.parametrize("name", NAMES)
def test_registered_with_a_unique_code_and_usable_with_defaults(round_trip, layer,
                                                                name: str) -> None:
    method = registry.method(name)
    assert registry.method_by_code(method.code) is method and method.code >= 16
    for o in method.options:
        assert o.label and o.help
    plan, _, _ = round_trip(method, layer((20, 30), 1), {})
    assert plan.payload_nbytes > 0 and plan.sqnr_db > 0


def test_auto_takes_the_smallest_registered_coder_exactly(round_trip, layer,
                                                         monkeypatch) -> None:
    ternary = registry.method("ternary")  # loads every stage
    w = layer((16, 40), 2)
    opts = resolve_options(ternary.options, {"delta": 1.5, "entropy": "auto"})
    fit = ternary.bind(w.reshape(-1), w.shape).fitted(opts)
    plan = round_trip(ternary, w, opts)[0]
    best = min(registry.ENTROPY.values(), key=lambda e: (e.nbytes(fit.symbols), e.code))
    assert plan.params[0] == best.code
    assert plan.payload_nbytes == len(fit.tables) + best.nbytes(fit.symbols)
    # with only fixed and the toy coder: the toy wins on zero-heavy levels, loses on signs
    monkeypatch.setattr(registry, "ENTROPY", {"fixed": registry.entropy("fixed"),
                                              Flags.name: Flags()})
    sparse = round_trip(ternary, w, opts)[0]
    assert sparse.params[0] == Flags.code  # most levels 0: 1-and-a-bit bits a weight
    assert sparse.payload_nbytes == len(fit.tables) + Flags().nbytes(fit.symbols)
    assert sparse.payload_nbytes < round_trip(ternary, w, {"delta": 1.5, "entropy": "fixed"}
                                              )[0].payload_nbytes
    signs = round_trip(registry.method("binary"), w, {"entropy": "auto"})[0]
    assert signs.params[0] == registry.entropy("fixed").code  # 1 bit a weight wins
    pq = round_trip(registry.method("pq"), w, {"code_bits": 4})[0]
    assert pq.params[0] == registry.entropy("fixed").code  # codes past -1..1


def test_codes_and_symbols_are_inverse_and_fixed_spends_log2_k_bits() -> None:
    codes = np.arange(0, 300, dtype=np.int64)
    assert np.array_equal(codes_of(symbols_of(codes)), codes)
    fixed = registry.entropy("fixed")
    assert fixed.nbytes(symbols_of(np.arange(256))) == 1 + 256  # 8 bits each, not 9
