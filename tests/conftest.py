"""Fixtures shared by every test directory."""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import numpy as np
import pytest

from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options, Plan


class ToyStep:
    """A test-only registered method with options of every kind: ``round(w / step)`` as
    int16 levels, clipped (``signed`` false: the levels of |w|). Its record holds the step
    (f64)."""

    name: ClassVar[str] = "toy"
    code: ClassVar[int] = 250
    options: ClassVar[tuple[Option, ...]] = (
        Option("step", float, 0.01, "Step", "quantization step", lo=1e-9, hi=10.0, finer=-1),
        Option("layout", str, "flat", "Layout", "ignored", choices=("flat", "rows")),
        Option("signed", bool, True, "Signed", "keep the sign"),
    )

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> Any:
        method = self

        class Layer:
            def levels(self, o: Options) -> np.ndarray:
                w = weights if o["signed"] else np.abs(weights)
                return np.clip(np.round(np.asarray(w, np.float64) / o["step"]),
                               -32767, 32767).astype("<i2")

            def decoded(self, o: Options) -> np.ndarray:
                return (self.levels(o) * o["step"]).astype(np.float32)

            def plan(self, o: Options) -> Plan:
                err = np.asarray(weights, np.float64) - self.decoded(o)
                w = np.asarray(weights, np.float64)
                zeros = int(np.count_nonzero(self.levels(o) == 0))
                return Plan(method.name, o, struct.pack("<d", o["step"]), 2 * w.size,
                            float(err @ err), float(w @ w), zeros)

            def encode(self, o: Options) -> tuple[Plan, bytes]:
                return self.plan(o), self.levels(o).tobytes()

        return Layer()

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        if len(params) != 8 or payload_nbytes != 2 * int(np.prod(shape)):
            raise ValueError("its step or payload length is wrong")

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        self.check(params, len(payload), shape)
        (step,) = struct.unpack("<d", params)
        return (np.frombuffer(payload, "<i2") * step).astype(np.float32)

    decode_reference = decode

    def describe(self, params: bytes) -> dict[str, Any]:
        return {"name": self.name, "step": struct.unpack("<d", params)[0]}


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> ToyStep:
    """The test-only method ``toy`` (code 250), registered for one test."""
    registry.method("deep")  # the real ones first
    toy = ToyStep()
    monkeypatch.setitem(registry.METHODS, toy.name, toy)
    return toy
