"""The fidelity floor moves lowrank's energy: the fewest singular values that reach it."""

from __future__ import annotations

import numpy as np

from inspector.core.settings import LayerSettings
from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.tasks.method_floor import knob, method_plan


def test_floor_raises_the_energy_as_little_as_reaches_it() -> None:
    method = registry.method("lowrank")
    assert knob(method).name == "energy"
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((40, 6)) @ rng.standard_normal((6, 50))
         + 0.3 * rng.standard_normal((40, 50))).astype(np.float32)
    layer = method.bind(w.reshape(-1), w.shape)
    opts = resolve_options(method.options, {"energy": 0.5})
    coarse = layer.plan(opts)
    for floor in (coarse.sqnr_db + 3, coarse.sqnr_db + 12):
        s = LayerSettings(method="lowrank", options=opts, min_sqnr=floor)
        _, plan = method_plan((method, layer), s)
        rank = method.describe(plan.params)["rank"]
        assert plan.sqnr_db >= floor
        one_less = layer.plan(resolve_options(method.options, {"rank": rank - 1}))
        assert one_less.sqnr_db < floor  # the rank is the smallest meeting the floor


def test_settings_file_keys_reach_the_options() -> None:
    from inspector.core.settings import LayerSettings as LS

    s = LS.from_json({"method": "lowrank", "rank": 12, "split": "spatial", "values": "uniform",
                      "factor_bits": 6, "bits": 3})
    assert (s.options["rank"], s.options["split"], s.options["factor_bits"]) == (12, "spatial", 6)
    assert s.bits == 3  # deep's field, not the factors' bits
