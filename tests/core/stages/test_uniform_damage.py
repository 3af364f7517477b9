"""A damaged ``uniform`` record is one ValueError naming the field, never a crash."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options

UNIFORM = registry.method("uniform")
SHAPE = (6, 10)


def record(**given: object) -> tuple[bytes, bytes]:
    w = np.random.default_rng(0).laplace(size=SHAPE).astype(np.float32)
    w[1] *= 9  # spread the channels' steps so the exponents take bits
    plan, payload = UNIFORM.bind(w.reshape(-1), SHAPE).encode(
        resolve_options(UNIFORM.options, {"int_bits": 5, "entropy": "fixed", **given}))
    return plan.params, payload


GROUP = record(granularity="group", group=4)
MEAN = record(recon="mean")


@pytest.mark.parametrize(("params", "match"), [
    (b"\x01\x01", "at least 6"),
    (b"\x03" + GROUP[0][1:], "layout"),
    (b"\x09" + GROUP[0][1:], "layout"),
    (GROUP[0][:1] + b"\x63" + GROUP[0][2:], "entropy"),
    (GROUP[0][:2] + struct.pack("<f", 0.0) + GROUP[0][6:], "base step"),
    (GROUP[0][:2] + struct.pack("<f", float("nan")) + GROUP[0][6:], "base step"),
    (GROUP[0][:2] + struct.pack("<f", -1.0) + GROUP[0][6:], "base step"),
    (GROUP[0][:6] + b"\x0d" + GROUP[0][7:], "exponent width"),
    (GROUP[0][:6], "exponent width"),
    (GROUP[0][:7] + b"\x00", "group size"),
    (GROUP[0][:7] + b"\x0b", "group size"),
    (GROUP[0][:7] + b"\x80", "group size"),
    (GROUP[0] + b"\x00", "trailing"),
    (MEAN[0][:7] + b"\x00", "cell-mean"),
    (MEAN[0][:7] + b"\x20" + MEAN[0][8:], "cell-mean"),
    (MEAN[0][:-1], "cell-mean"),
])
def test_bad_params_name_the_field(params: bytes, match: str) -> None:
    payload = GROUP[1] if params[0] & 3 == 2 else MEAN[1]
    with pytest.raises(ValueError, match=match):
        UNIFORM.check(params, len(payload), SHAPE)
    for decode in (UNIFORM.decode, UNIFORM.decode_reference):
        with pytest.raises(ValueError, match=match):
            decode(params, payload, SHAPE)


def test_payload_shorter_than_its_exponents_is_refused_before_reading() -> None:
    params, _payload = GROUP
    with pytest.raises(ValueError, match="exponents"):
        UNIFORM.check(params, 1, SHAPE)


def test_wrong_shape_or_length_is_refused() -> None:
    params, payload = GROUP
    for decode in (UNIFORM.decode, UNIFORM.decode_reference):
        with pytest.raises(ValueError):
            decode(params, payload[:-1], SHAPE)
        with pytest.raises(ValueError):
            decode(params, payload + b"\0", SHAPE)
        with pytest.raises(ValueError):
            decode(params, payload, (6, 11))


def test_overflowing_exponent_is_refused() -> None:
    params, payload = record(granularity="channel")
    width = params[6]
    big = bytes(params[:6]) + bytes([12]) + params[7:]
    exps = np.packbits(np.unpackbits(np.full(6 * 2, 0xFF, np.uint8))[: 6 * 12]).tobytes()
    rest = payload[(6 * width + 7) // 8:]
    for decode in (UNIFORM.decode, UNIFORM.decode_reference):
        with pytest.raises(ValueError, match="overflow"):
            decode(big, exps + rest, SHAPE)


@settings(deadline=None, max_examples=150)
@given(which=st.sampled_from([GROUP, MEAN]), data=st.data())
def test_random_damage_is_a_value_error_or_a_decoded_layer(which, data) -> None:
    params, payload = map(bytearray, which)
    for buf in (params, payload):
        for _ in range(data.draw(st.integers(0, 3))):
            if buf:
                i = data.draw(st.integers(0, len(buf) - 1))
                buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, 2))
    payload = payload[: len(payload) - cut] if cut < len(payload) else payload
    results = []
    for decode in (UNIFORM.decode, UNIFORM.decode_reference):
        try:
            results.append(decode(bytes(params), bytes(payload), SHAPE).tobytes())
        except ValueError:
            results.append(None)
    assert results[0] == results[1]


def test_a_value_past_float32_is_refused() -> None:
    params, payload = record(granularity="tensor")
    huge = params[:2] + struct.pack("<f", 3e38) + params[6:]  # levels x 3e38: past float32
    for decode in (UNIFORM.decode, UNIFORM.decode_reference):
        with pytest.raises(ValueError, match="overflows float32"):
            decode(huge, payload, SHAPE)


def test_weights_no_step_can_hold_are_a_settings_error() -> None:
    from inspector.errors import SettingsError

    w = np.array([1e300, -1.0, 0.5])
    with pytest.raises(SettingsError, match="levels would pass"):
        UNIFORM.bind(w, w.shape).plan(resolve_options(UNIFORM.options, {"int_bits": 8}))
