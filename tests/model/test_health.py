"""Which layers the proxy says are broken (Qt-free): the rule behind the table's warnings."""

from __future__ import annotations

import numpy as np

from inspector.core.layer import LayerCodec
from inspector.core.settings import LayerSettings
from inspector.io.model_file import LoadedModel
from inspector.model.health import (
    BROKEN_SQNR_DB,
    broken_layers,
    layer_warning,
    summary_warning,
)
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec

W = np.random.default_rng(0).normal(0, 0.05, 20_000).astype(np.float32)


def test_noise_and_near_total_pruning_warn_and_the_safe_default_does_not() -> None:
    codec = LayerCodec(W)
    noisy = codec.plan(LayerSettings(value=0.9))  # a Gaussian pruned 90%: ~2.5 dB
    assert noisy.sqnr_db < BROKEN_SQNR_DB
    assert layer_warning(noisy).startswith(f"SQNR {noisy.sqnr_db:.1f} dB: the decoded weights")
    gone = codec.plan(LayerSettings(value=0.995, bits=8))
    assert "99.50% of this layer's weights are pruned" in layer_warning(gone)
    assert layer_warning(codec.plan(LayerSettings(min_sqnr=30.0))) == ""
    assert layer_warning(codec.plan(LayerSettings(value=0.3))) == ""
    assert layer_warning(None) == ""


def test_summary_counts_the_broken_layers() -> None:
    arrays = {"a.weight": W.reshape(100, 200), "b.weight": W[:5000].reshape(50, 100) * 2}
    codec = ModelCodec(LoadedModel.build("m.npz", "npz", arrays))
    assert broken_layers(codec.estimate(ModelSettings())) == []
    assert summary_warning(codec.estimate(ModelSettings())) == ""
    one = codec.estimate(ModelSettings().with_layer("a.weight", value=0.9))
    assert broken_layers(one) == ["a.weight"]
    assert summary_warning(one).startswith("1 layer is likely broken (SQNR < 10 dB")
    both = codec.estimate(ModelSettings(defaults={"value": 0.9}))
    assert summary_warning(both).startswith("2 layers are likely broken")
    assert "measure accuracy or use the safe default" in summary_warning(both)
    assert summary_warning(None) == ""
