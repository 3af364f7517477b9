"""Sensitivity sweep results: validation, the JSON round trip, and their place in SETTINGS.json."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inspector.errors import SettingsError
from inspector.io.model_file import LoadedModel
from inspector.model.sensitivity import (
    PRUNE_FRACTIONS,
    SWEEP_BITS,
    LayerSensitivity,
    Sensitivity,
    SweepPoint,
)
from inspector.model.session import Session
from inspector.model.settings import ModelSettings, load_settings, save_settings


def sweep() -> Sensitivity:
    def layer(name: str, size: int, slope: float) -> LayerSensitivity:
        prune = tuple(SweepPoint(f, 0.9 - slope * f * f, 1.0 - slope * f) for f in PRUNE_FRACTIONS)
        bits = tuple(SweepPoint(b, 0.9 - 0.1 / b**2, 1.0 - 0.2 / b**2) for b in SWEEP_BITS)
        return LayerSensitivity(name, "fc", size, prune, bits)

    layers = (layer("ip1.weight", 235200, 0.5), layer("ip2.weight", 30000, 0.3))
    return Sensitivity(0.9, 1000, layers)


def test_defaults_are_the_papers_sweep() -> None:
    assert PRUNE_FRACTIONS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
    assert SWEEP_BITS == (1, 2, 3, 4, 5, 6, 7, 8)


def test_json_round_trip_is_exact() -> None:
    s = sweep()
    text = json.dumps(s.to_json())
    back = Sensitivity.from_json(json.loads(text))
    assert back == s
    assert back.layer("ip2.weight").prune_point(0.5) == s.layers[1].prune[5]
    assert back.layer("ip1.weight").bits_point(3).top1 == pytest.approx(0.9 - 0.1 / 9)
    assert back.layer("nope") is None
    data = s.to_json()
    assert data["layers"][0]["prune"][1] == {"fraction": 0.1, "top1": s.layers[0].prune[1].top1,
                                             "agreement": s.layers[0].prune[1].agreement}
    assert data["layers"][0]["bits"][0]["bits"] == 1


def test_drop_points() -> None:
    assert SweepPoint(0.5, 0.95, 0.97).drop_points(0.98) == pytest.approx(3.0)
    assert SweepPoint(0.5, 0.99, 0.97).drop_points(0.98) == pytest.approx(-1.0)


def test_saved_with_the_settings(tmp_path: Path) -> None:
    settings = ModelSettings().with_layer("ip1.weight", value=0.7).with_sensitivity(sweep())
    path = tmp_path / "SETTINGS.json"
    save_settings(settings, path)
    data = json.loads(path.read_text())
    assert set(data) == {"version", "defaults", "kinds", "layers", "sensitivity"}
    loaded = load_settings(path)
    assert loaded == settings
    assert loaded.sensitivity == sweep()
    assert loaded.resolve("ip1.weight", "fc").value == 0.7


def test_omitted_when_absent_and_old_files_load(tmp_path: Path) -> None:
    path = tmp_path / "SETTINGS.json"
    save_settings(ModelSettings(), path)
    assert "sensitivity" not in json.loads(path.read_text())
    assert load_settings(path).sensitivity is None
    path.write_text('{"version": 1, "defaults": {"value": 0.8}}')  # written before sweeps
    assert load_settings(path).sensitivity is None
    path.write_text('{"version": 1, "sensitivity": null}')
    assert load_settings(path).sensitivity is None


def test_copies_keep_it_and_can_drop_it() -> None:
    s = ModelSettings().with_sensitivity(sweep())
    for copy in (s.with_defaults(value=0.5), s.with_kind("fc", bits=4),
                 s.with_layer("ip1.weight", bits=3), replace(s, layers={})):
        assert copy.sensitivity == sweep()
    assert s.with_sensitivity(None).sensitivity is None
    assert s != ModelSettings()  # a sweep is part of the settings' value


def test_session_undo_keeps_it() -> None:
    session = Session()
    arrays = {"ip1.weight": np.ones((4, 3), np.float32)}
    session.open(LoadedModel.build("m.npz", "npz", arrays), {}, ModelSettings())
    swept = session.settings.with_sensitivity(sweep())
    session.set_settings(swept, "sweep")
    session.set_layers(("ip1.weight",), "prune", value=0.5)
    assert session.settings.sensitivity == sweep()
    session.undo()
    assert session.settings == swept
    session.undo()
    assert session.settings.sensitivity is None
    session.redo()
    assert session.settings.sensitivity == sweep()


def test_in_memory_values_are_checked() -> None:
    with pytest.raises(SettingsError):
        SweepPoint(0.1, 1.2, 1.0)
    with pytest.raises(SettingsError):
        SweepPoint(0.1, 0.5, float("nan"))
    p = (SweepPoint(0.0, 0.9, 1.0),)
    with pytest.raises(SettingsError):
        LayerSensitivity("a", "fc", 10, (SweepPoint(1.5, 0.9, 1.0),), ())
    with pytest.raises(SettingsError):
        LayerSensitivity("a", "fc", 10, (), (SweepPoint(9, 0.9, 1.0),))
    with pytest.raises(SettingsError):
        LayerSensitivity("a", "fc", 10, p + p, ())  # not increasing
    with pytest.raises(SettingsError):
        Sensitivity(0.9, 0, ())
    with pytest.raises(SettingsError):
        Sensitivity(0.9, 10, (LayerSensitivity("a", "fc", 1, p, ()),) * 2)
    with pytest.raises(SettingsError):
        ModelSettings(sensitivity={"baseline_top1": 0.9})  # type: ignore[arg-type]


def _layer_json(**changes: object) -> dict[str, object]:
    layer = sweep().to_json()["layers"][0]
    layer.update(changes)
    return layer


BAD_SWEEPS = {
    "not an object": [1, 2],
    "unknown key": {"baseline_top1": 0.9, "count": 5, "layers": [], "extra": 1},
    "baseline above 1": {"baseline_top1": 1.5, "count": 5, "layers": []},
    "baseline missing": {"count": 5, "layers": []},
    "count zero": {"baseline_top1": 0.9, "count": 0, "layers": []},
    "count float": {"baseline_top1": 0.9, "count": 5.0, "layers": []},
    "layers not a list": {"baseline_top1": 0.9, "count": 5, "layers": {}},
    "layer not an object": {"baseline_top1": 0.9, "count": 5, "layers": [3]},
    "layer without name": {"baseline_top1": 0.9, "count": 5, "layers": [_layer_json(name="")]},
    "negative size": {"baseline_top1": 0.9, "count": 5, "layers": [_layer_json(size=-1)]},
    "prune not a list": {"baseline_top1": 0.9, "count": 5, "layers": [_layer_json(prune=1)]},
    "fraction above 1": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(prune=[{"fraction": 1.2, "top1": 0.5, "agreement": 0.5}])]},
    "fraction a string": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(prune=[{"fraction": "0.5", "top1": 0.5, "agreement": 0.5}])]},
    "bits 0": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(bits=[{"bits": 0, "top1": 0.5, "agreement": 0.5}])]},
    "bits float": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(bits=[{"bits": 4.0, "top1": 0.5, "agreement": 0.5}])]},
    "point with unknown key": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(bits=[{"bits": 4, "top1": 0.5, "agreement": 0.5, "top5": 0.9}])]},
    "agreement missing": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(bits=[{"bits": 4, "top1": 0.5}])]},
    "points out of order": {"baseline_top1": 0.9, "count": 5, "layers": [
        _layer_json(bits=list(reversed(sweep().to_json()["layers"][0]["bits"])))]},
    "layer twice": {"baseline_top1": 0.9, "count": 5, "layers": [_layer_json(), _layer_json()]},
}


@pytest.mark.parametrize("data", list(BAD_SWEEPS.values()), ids=list(BAD_SWEEPS))
def test_bad_sweeps_are_settings_errors_naming_the_file(tmp_path: Path, data: object) -> None:
    with pytest.raises(SettingsError, match="sensitivity"):
        Sensitivity.from_json(data)
    path = tmp_path / "SETTINGS.json"
    path.write_text(json.dumps({"version": 1, "sensitivity": data}))
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert info.value.path == str(path)
    assert "\n" not in str(info.value)
