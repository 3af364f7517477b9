"""Helpers of the method tests: one exact round trip, and a real layer (LeNet-5's conv2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inspector.core.stages.base import Method, Options, Plan, resolve_options

ROOT = Path(__file__).resolve().parents[3]


def _round_trip(method: Method, w: np.ndarray, opts: Options | dict,
                imp: np.ndarray | None = None) -> tuple[Plan, bytes, np.ndarray]:
    """Encode ``w`` and check everything the contract promises; the plan, bytes, values."""
    if not isinstance(opts, Options):
        opts = resolve_options(method.options, opts)
    bound = method.bind(w.reshape(-1), w.shape, imp)
    plan, payload = bound.encode(opts)
    assert len(payload) == plan.payload_nbytes
    fresh = method.bind(w.reshape(-1), w.shape, imp).plan(opts)  # plan alone, no encode
    assert (fresh.payload_nbytes, fresh.params) == (plan.payload_nbytes, plan.params)
    method.check(plan.params, len(payload), w.shape)
    fast = method.decode(plan.params, payload, w.shape)
    ref = method.decode_reference(plan.params, payload, w.shape)
    assert fast.dtype == ref.dtype == np.float32 and fast.size == w.size
    assert fast.tobytes() == ref.tobytes() == bound.decoded(opts).tobytes()
    err = fast.astype(np.float64) - w.reshape(-1).astype(np.float64)
    assert plan.sse == pytest.approx(float(np.dot(err, err)), rel=1e-9, abs=1e-300)
    assert plan.zeros == int(np.count_nonzero(fast == 0))
    assert plan.method == method.name and method.describe(plan.params)["name"] == method.name
    return plan, payload, fast


@pytest.fixture(scope="session")
def round_trip() -> Callable[..., tuple[Plan, bytes, np.ndarray]]:
    return _round_trip


@pytest.fixture(scope="session")
def lenet5_conv2() -> np.ndarray:
    """LeNet-5's conv2 weights (50, 20, 5, 5), read by the project's ONNX reader."""
    from inspector.io import read_model

    return np.asarray(read_model(ROOT / "sample_models" / "lenet5.onnx")
                      .tensors["conv2.weight"], dtype=np.float32)


def make_layer(shape: tuple[int, ...], seed: int, dead_row: bool = False) -> np.ndarray:
    """Laplace weights with a different scale per output channel (float32)."""
    rng = np.random.default_rng(seed)
    lead = (shape[0],) + (1,) * (len(shape) - 1) if shape else ()
    w = np.asarray(rng.laplace(size=shape) * rng.uniform(0.01, 1, size=lead), np.float32)
    if dead_row and w.size:
        w.reshape(shape[0] if shape else 1, -1)[0] = 0
    return w


@pytest.fixture(scope="session")
def layer() -> Callable[..., np.ndarray]:
    return make_layer
