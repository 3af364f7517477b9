"""Damaged records of ternary, binary, pq and hashed: a ValueError or a layer, never a crash,
and the fast decoder and its twin agree on which (and on the values)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options

SHAPE = (6, 10)
GIVEN = {"ternary": {}, "binary": {"granularity": "tensor"}, "pq": {"dim": 4, "code_bits": 3},
         "hashed": {"buckets": 9, "sign": "on"}}


def records() -> dict[str, tuple[bytes, bytes]]:
    w = np.random.default_rng(1).laplace(size=SHAPE).astype(np.float32)
    out = {}
    for name, chosen in GIVEN.items():
        m = registry.method(name)
        plan, payload = m.bind(w.reshape(-1), SHAPE).encode(resolve_options(m.options, chosen))
        out[name] = (plan.params, payload)
    return out


RECORDS = records()


def outcome(decode, params: bytes, payload: bytes) -> bytes | str:
    try:
        out = decode(params, payload, SHAPE)
    except ValueError as exc:
        assert str(exc)  # one readable line
        return "ValueError"
    assert out.dtype == np.float32 and out.size == 60
    return out.tobytes()


def damage(data: bytes, where: int, value: int, cut: int) -> bytes:
    b = bytearray(data)
    if b:
        b[where % len(b)] ^= value or 1
    return bytes(b[:len(b) - cut]) if cut >= 0 else bytes(b) + bytes(-cut)


@pytest.mark.parametrize("name", sorted(GIVEN))
@settings(deadline=None, max_examples=60)
@given(part=st.sampled_from(["params", "payload"]), where=st.integers(0, 1 << 16),
       value=st.integers(0, 255), cut=st.integers(-3, 3))
def test_damage_is_a_value_error_or_a_layer(name, part, where, value, cut) -> None:
    method = registry.method(name)
    params, payload = RECORDS[name]
    if part == "params":
        params = damage(params, where, value, cut)
    else:
        payload = damage(payload, where, value, cut)
    assert outcome(method.decode, params, payload) == outcome(method.decode_reference, params,
                                                              payload)
