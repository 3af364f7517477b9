"""The fidelity floor: the most pruning a layer's SQNR floor allows, found on its histogram."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from inspector.core.layer import LayerCodec, decode_payload
from inspector.core.settings import LayerSettings


def layer(dist: str, n: int = 60_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dist == "laplace":
        return rng.laplace(0, 0.02, n).astype(np.float32)
    if dist == "student":
        return (rng.standard_t(3, n) * 0.02).astype(np.float32)
    return (rng.standard_normal(n) * 0.05).astype(np.float32)


@pytest.mark.parametrize("dist", ["normal", "laplace", "student"])
@pytest.mark.parametrize("floor", [10.0, 20.0, 30.0])
def test_prunes_the_most_the_floor_allows(dist: str, floor: float) -> None:
    codec = LayerCodec(layer(dist))
    asked = LayerSettings(min_sqnr=floor, raise_bits=True)
    plan = codec.plan(asked)
    s = plan.settings
    assert s.min_sqnr is None and not s.raise_bits and s.policy == "sparsity" and s.value < 0.9
    assert plan.requested == asked == plan.asked
    assert plan.sqnr_db >= floor
    assert s.bits >= asked.bits
    if s.value > 0:  # and not much less than the most: 2% more breaks the floor
        assert codec.plan(replace(s, value=s.value + 0.02)).sqnr_db < floor
    if s.bits > asked.bits:  # more bits only when fewer cannot meet the floor unpruned
        assert codec.plan(LayerSettings(value=0.0, bits=s.bits - 1)).sqnr_db < floor
    assert plan.survivors == plan.size - round(s.value * plan.size)


def test_raised_bits_make_the_smaller_file() -> None:
    codec = LayerCodec(layer("student"))
    plan = codec.plan(LayerSettings(min_sqnr=30.0, raise_bits=True))
    others = [codec.plan(LayerSettings(min_sqnr=30.0, bits=b)) for b in range(5, 9)]
    meeting = [p for p in others if p.sqnr_db >= 30.0]
    assert plan.payload_nbytes <= min(p.payload_nbytes for p in meeting[:2])


def test_a_met_floor_changes_nothing() -> None:
    codec = LayerCodec(layer("normal"))
    asked = LayerSettings(value=0.05, min_sqnr=10.0)
    plan = codec.plan(asked)
    assert plan.settings == LayerSettings(value=0.05) and plan.requested == asked
    std = LayerSettings(policy="std", value=0.1, min_sqnr=10.0)
    assert codec.plan(std).settings == LayerSettings(policy="std", value=0.1)


def test_other_policies_are_capped_by_what_they_prune() -> None:
    codec = LayerCodec(layer("laplace"))
    for asked in (LayerSettings(policy="std", value=2.0, min_sqnr=20.0),
                  LayerSettings(policy="threshold", value=0.05, min_sqnr=20.0)):
        plan = codec.plan(asked)
        assert plan.settings.policy == "sparsity" and plan.sqnr_db >= 20.0
        assert plan.survivors > codec.plan(LayerSettings(**{**asked.to_json(),
                                                            "min_sqnr": None})).survivors


def test_an_unreachable_floor_prunes_nothing() -> None:
    codec = LayerCodec(layer("normal"))
    plan = codec.plan(LayerSettings(bits=1, min_sqnr=30.0))
    assert plan.settings.value == 0.0 and plan.survivors == plan.size
    assert plan.settings.bits == 1  # bits are the user's: the floor never changes them


def test_the_floor_is_exact_and_deterministic() -> None:
    """The resolved settings give the same bytes from a fresh codec: what the app showed is
    what compress writes, and the payload decodes to the quantized weights."""
    w = layer("student", 200_000, seed=3)
    asked = LayerSettings(bits=4, min_sqnr=18.0)
    first = LayerCodec(w)
    plan, payload = first.encode(asked)
    again = LayerCodec(w).encode(plan.settings)[1]
    assert payload == again and len(payload) == plan.payload_nbytes
    decoded = decode_payload(payload, plan.layout)
    assert np.array_equal(decoded, first.quantized(asked).reshape(-1))
    assert first.mask(asked) == plan.mask


def test_tiny_and_constant_layers() -> None:
    for w in (np.full(50, 0.3, np.float32), np.zeros(10, np.float32),
              layer("normal", 25), np.array([1e-3, -2.0, 3.0], np.float32)):
        plan = LayerCodec(w).plan(LayerSettings(min_sqnr=20.0))
        assert plan.sqnr_db >= 20.0 or plan.settings.value == 0.0


def test_rough_partition_bounds_the_optimum_from_above() -> None:
    from inspector.core.cluster import Points, kmeans, rough_starts

    codec = LayerCodec(layer("student", 200_000))
    e = codec._full
    keep = e[0] > 0
    points = Points(e[0][keep], e[1][keep], e[2][keep])
    for k in (4, 31, 255):
        best = kmeans(points, k).sse
        starts = rough_starts(points, k, per_cluster=4)
        cnt, s1, s2 = (np.add.reduceat(a, starts) for a in (points.cnt, points.s1, points.s2))
        rough = float((s2 - s1 * s1 / cnt).sum())
        assert best * (1 - 1e-9) <= rough <= best * 1.06


def test_no_conv_channel_loses_more_than_the_floor() -> None:
    """A channel of small weights (scaled back up by BatchNorm) is not pruned away."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.1, (16, 8, 3, 3)).astype(np.float32)
    w[3] *= 0.01  # a quiet channel: the tensor's SQNR barely sees it
    codec = LayerCodec(w)
    plan = codec.plan(LayerSettings(bits=8, min_sqnr=30.0))
    q = codec.quantized(LayerSettings(bits=8, min_sqnr=30.0)).reshape(16, -1)
    flat = w.reshape(16, -1).astype(np.float64)
    pruned = np.where(q == 0, flat, 0.0)
    share = (pruned**2).sum(axis=1) / (flat**2).sum(axis=1)
    assert share.max() <= 10 ** (-30 / 10) + 1e-12
    assert plan.sqnr_db >= 30.0
    fc = LayerCodec(w.reshape(16, -1))  # an fc layer of the same weights: the tensor's floor
    assert fc.plan(LayerSettings(bits=8, min_sqnr=30.0)).settings.value > plan.settings.value
