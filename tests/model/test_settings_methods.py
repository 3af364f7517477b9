"""A layer's method and its options in the settings: flat JSON keys, checked against the
method's declared options, with the usual precedence; a file without them is today's recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.core.settings import LayerSettings
from inspector.errors import SettingsError
from inspector.model.settings import ModelSettings, load_settings, save_settings


def test_a_file_without_methods_resolves_exactly_as_before() -> None:
    s = ModelSettings.from_json({"defaults": {"bits": 6}, "layers": {"a": {"value": 0.5}}})
    got = s.resolve("a", "fc")
    assert got.method == "deep" and not got.options
    assert "method" in got.to_json() and "options" not in got.to_json()
    assert LayerSettings(**got.to_json()) == got


def test_options_are_flat_keys_with_precedence(toy_method) -> None:
    s = ModelSettings.from_json({
        "defaults": {"method": "toy", "step": 0.5},
        "kinds": {"conv": {"layout": "rows"}},
        "layers": {"c1": {"step": 0.25}, "f1": {"method": "fp16"}},
    })
    c1 = s.resolve("c1", "conv")
    assert c1.method == "toy" and dict(c1.options) == {"step": 0.25, "layout": "rows",
                                                         "signed": True}
    assert dict(s.resolve("c2", "conv").options)["step"] == 0.5
    f1 = s.resolve("f1", "fc")  # step is toy's: ignored for a layer of another method
    assert f1.method == "fp16" and not f1.options
    why = s.explain("c1", "conv")
    assert why["step"][1].level == "layers.c1" and why["layout"][1].level == "kinds.conv"
    assert why["signed"][1].level == "built-in" and why["method"][1].level == "defaults"


def test_an_option_another_level_gives_applies_once_the_method_is_chosen(toy_method) -> None:
    s = ModelSettings.from_json({"defaults": {"step": 0.5}, "layers": {"x": {"method": "toy"}}})
    assert s.resolve("x", "fc").options["step"] == 0.5
    assert s.resolve("y", "fc").method == "deep"


@pytest.mark.parametrize(("entry", "words"), [
    ({"method": "fp16", "step": 0.1}, "method fp16: unknown option(s) step"),
    ({"method": "toy", "step": -1.0}, "step must be from"),
    ({"method": "toy", "layout": "cols"}, "layout must be one of flat, rows"),
    ({"method": "toy", "stepp": 1.0}, "unknown setting(s) stepp"),
    ({"method": "nope"}, "unknown method 'nope'"),
])
def test_a_bad_entry_is_one_clear_error(toy_method, tmp_path: Path, entry, words) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"layers": {"x": entry}}))
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_method_settings_survive_a_save_and_load(toy_method, tmp_path: Path) -> None:
    s = ModelSettings.from_json({"layers": {"x": {"method": "toy", "step": 0.125}}})
    save_settings(s, tmp_path / "s.json")
    again = load_settings(tmp_path / "s.json")
    assert again.resolve("x", "fc") == s.resolve("x", "fc")
    assert json.loads((tmp_path / "s.json").read_text())["layers"]["x"] == {
        "method": "toy", "step": 0.125}


def test_a_knob_a_user_set_above_the_floor_is_applied_as_set(toy_method) -> None:
    s = ModelSettings.from_json({"defaults": {"method": "toy"},
                                 "layers": {"a": {"step": 0.5}, "b": {"min_sqnr": 20.0}}})
    a = s.resolve("a", "fc")  # the built-in floor guards only the built-in step
    assert a.min_sqnr is None and "the step set there has no floor" in s.explain(
        "a", "fc")["min_sqnr"][1].note
    assert s.resolve("b", "fc").min_sqnr == 20.0  # a floor written with (or below) the step
    assert s.resolve("c", "fc").min_sqnr == 30.0  # the built-in step: the built-in floor
