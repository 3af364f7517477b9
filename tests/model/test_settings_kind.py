"""A layer's own "kind" and "excluded": false in the settings: the user overrides the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import SettingsError
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings, load_settings, save_settings
from inspector.tasks.codec import ModelCodec


def test_excluded_false_on_an_other_tensor_is_honoured() -> None:
    s = ModelSettings().with_layer("scale", excluded=False)
    assert not s.resolve("scale", "other").excluded
    assert s.resolve("shift", "other").excluded  # only the layer asked for


def test_a_kind_override_picks_that_kinds_defaults_and_compresses() -> None:
    s = ModelSettings(kinds={"conv": {"bits": 7}, "fc": {"bits": 3}})
    s = s.with_layer("123", kind="conv").with_layer("w", kind="other")
    assert s.kind_of("123", "other") == "conv"
    assert s.kind_of("w", "fc") == "other"
    assert s.kind_of("z", "fc") == "fc"
    assert s.resolve("123", "other").bits == 7
    assert not s.resolve("123", "other").excluded
    assert s.resolve("w", "fc").excluded  # forced to other: kept lossless
    assert not s.with_layer("w", excluded=False).resolve("w", "fc").excluded


@pytest.mark.parametrize("bad", ["weights", 3, None, ["conv"]])
def test_an_unknown_kind_is_refused_with_the_layer_named(bad: object) -> None:
    with pytest.raises(SettingsError, match="layer x: kind must be one of conv, fc"):
        ModelSettings(layers={"x": {"kind": bad}})


def test_kind_survives_the_settings_file(tmp_path: Path) -> None:
    s = ModelSettings().with_layer("x", kind="embedding", value=0.5)
    save_settings(s, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())["layers"]["x"]["kind"] == "embedding"
    back = load_settings(tmp_path / "s.json")
    assert back == s
    assert back.resolve("x", "other").value == 0.5


def test_an_included_other_tensor_is_compressed_but_only_when_finite() -> None:
    rng = np.random.default_rng(0)
    scale = rng.normal(size=(200,)).astype(np.float32)  # 1-D: "other" by its name
    mask = scale.copy()
    mask[3] = -np.inf
    ids = np.arange(200, dtype=np.int64)
    model = LoadedModel.build("m", "x", {"scale": scale, "mask": mask, "ids": ids})
    assert [i.kind for i in model.infos] == ["other", "other", "buffer"]
    codec = ModelCodec(model)
    raw = codec.estimate(ModelSettings())
    assert all(r.plan is None for r in raw.layers)
    forced = ModelSettings()
    for name in ("scale", "mask", "ids"):
        forced = forced.with_layer(name, excluded=False, bits=2)
    est = codec.estimate(forced)
    plans = {r.info.name: r.plan for r in est.layers}
    assert plans["scale"] is not None and plans["scale"].codebook.size <= 4
    assert plans["mask"] is None and plans["ids"] is None  # the data does not allow it
    assert len(np.unique(codec.quantized("scale", forced))) <= 5
    np.testing.assert_array_equal(codec.quantized("mask", forced), mask)


def test_a_sensitivity_sweep_follows_the_kind_override() -> None:
    from inspector.tasks.sensitivity import sweep_layers

    rng = np.random.default_rng(1)
    tensors = {"123": rng.normal(size=(8, 4, 3, 3)).astype(np.float32),
               "fc.weight": rng.normal(size=(10, 20)).astype(np.float32)}
    codec = ModelCodec(LoadedModel.build("m", "x", tensors))
    assert sweep_layers(codec, ModelSettings()) == ["fc.weight"]
    forced = ModelSettings().with_layer("123", kind="conv").with_layer("fc.weight", kind="other")
    assert sweep_layers(codec, forced) == ["123"]
    assert sweep_layers(codec, forced, ["123"]) == ["123"]
    with pytest.raises(SettingsError, match=r"fc.weight \(other\) is always stored losslessly"):
        sweep_layers(codec, forced, ["fc.weight"])
