"""One layer under every method: each point's size is the bytes its encoder writes, the
cache plans nothing twice, and a recipe's entry gives exactly its plan."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.layer import LayerCodec
from inspector.core.settings import LayerSettings
from inspector.core.stages import registry
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks import methods_curve
from inspector.tasks.codec import ModelCodec
from inspector.tasks.drive import run_to_end
from inspector.tasks.methods_curve import CurvesRequest, layer_settings, method_curves


@pytest.fixture
def codec() -> ModelCodec:
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.1, (24, 60)).astype(np.float32)
    info = TensorInfo("fc.weight", layer_kind("fc.weight", w.shape, "float32"), w.shape,
                      "float32")
    return ModelCodec(LoadedModel("m.pt", "pytorch", {"fc.weight": w}, (info,), {}))


def curves_of(codec: ModelCodec, cache=None, settings: LayerSettings | None = None):
    s = settings or ModelSettings().resolve("fc.weight", "fc")
    return run_to_end(method_curves(codec, CurvesRequest("fc.weight", s), cache), lambda _: 0)


def test_every_method_has_a_curve_whose_sizes_are_the_bytes_written(codec) -> None:
    curves = curves_of(codec)
    registry.method("deep")
    assert {m for m, _ in curves.curves} == set(registry.METHODS)
    w = np.asarray(codec.model.tensors["fc.weight"])
    base = ModelSettings().resolve("fc.weight", "fc")
    for method, points in curves.curves:
        for p in points:
            s = layer_settings(p.recipe, base)
            if method == "deep":
                _, payload = LayerCodec(w).encode(s)
            else:
                _, payload = registry.method(method).bind(w.reshape(-1), w.shape).encode(
                    s.options)
            assert p.payload_nbytes == len(payload), p.recipe.label


def test_the_cache_plans_nothing_twice_and_new_settings_plan_only_the_current(
        codec, monkeypatch) -> None:
    calls: list[str] = []
    plan_point = methods_curve.plan_point

    def counted(*args, **kwargs):
        calls.append(args[2].label)
        return plan_point(*args, **kwargs)

    monkeypatch.setattr(methods_curve, "plan_point", counted)
    cache: methods_curve.Cache = {}
    first = curves_of(codec, cache)
    n = len(calls)
    assert n == sum(len(ps) for _, ps in first.curves) + 1  # and the current recipe
    assert curves_of(codec, cache) == first and len(calls) == n
    moved = ModelSettings(layers={"fc.weight": {"min_sqnr": 12.5}}).resolve("fc.weight", "fc")
    curves_of(codec, cache, moved)
    assert len(calls) == n + 1  # the sweep's recipes do not depend on the floor
