"""Precedence of a layer's settings: built-in, then the file's defaults, kind, layer (issue 15.3).

Built-in values (the paper's bits per kind, the safe floor) sit under everything a user writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.model.settings import (
    PAPER_KINDS,
    SAFE_MIN_SQNR,
    ModelSettings,
    load_settings,
    save_settings,
)


def from_file(tmp_path: Path, data: dict) -> ModelSettings:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    return load_settings(path)


@pytest.mark.parametrize("kind", ["conv", "fc", "embedding"])
def test_defaults_bits_beat_the_built_in_kind_bits(tmp_path: Path, kind: str) -> None:
    s = from_file(tmp_path, {"defaults": {"bits": 6}})
    assert s.resolve("x.weight", kind).bits == 6
    # what the file did not say still comes from the built-in kind
    assert s.resolve("x.weight", kind).index_bits == PAPER_KINDS[kind]["index_bits"]


def test_kind_in_the_file_beats_its_defaults(tmp_path: Path) -> None:
    s = from_file(tmp_path, {"defaults": {"bits": 6, "index_bits": 4},
                             "kinds": {"conv": {"bits": 7}}})
    assert s.resolve("c.weight", "conv").bits == 7
    assert s.resolve("c.weight", "conv").index_bits == 4
    assert s.resolve("f.weight", "fc").bits == 6


def test_layer_beats_its_kind(tmp_path: Path) -> None:
    s = from_file(tmp_path, {"defaults": {"bits": 6}, "kinds": {"fc": {"bits": 4}},
                             "layers": {"ip1.weight": {"bits": 2}}})
    assert s.resolve("ip1.weight", "fc").bits == 2
    assert s.resolve("ip2.weight", "fc").bits == 4


def test_saved_files_keep_their_meaning(tmp_path: Path) -> None:
    """The built-in level is never written: a saved file resolves the same when read."""
    s = ModelSettings(defaults={"bits": 6}, layers={"a": {"value": 0.5}})
    path = tmp_path / "s.json"
    save_settings(s, path)
    assert "min_sqnr" not in path.read_text() and json.loads(path.read_text())["kinds"] == {}
    loaded = load_settings(path)
    for name, kind in [("a", "fc"), ("b", "conv"), ("c", "embedding")]:
        assert loaded.resolve(name, kind) == s.resolve(name, kind)


def test_the_safe_floor_guards_only_the_built_in_pruning() -> None:
    s = ModelSettings()
    assert s.resolve("f", "fc").min_sqnr == SAFE_MIN_SQNR
    # pruning a user wrote, at any level, is applied as written
    assert ModelSettings(defaults={"value": 0.9}).resolve("f", "fc").min_sqnr is None
    assert ModelSettings(kinds={"fc": {"policy": "std", "value": 1.0}}).resolve(
        "f", "fc").min_sqnr is None
    assert s.with_layer("f", value=0.95).resolve("f", "fc").min_sqnr is None
    assert s.with_layer("f", value=0.95).resolve("g", "fc").min_sqnr == SAFE_MIN_SQNR
    # bits do not touch the floor
    assert s.with_layer("f", bits=3).resolve("f", "fc").min_sqnr == SAFE_MIN_SQNR


def test_a_floor_written_with_the_pruning_caps_it() -> None:
    s = ModelSettings(defaults={"value": 0.95, "min_sqnr": 25.0})
    assert s.resolve("f", "fc").min_sqnr == 25.0
    assert s.with_layer("f", value=0.5).resolve("f", "fc").min_sqnr is None  # more specific
    assert s.with_layer("f", min_sqnr=None).resolve("f", "fc").min_sqnr is None
    with pytest.raises(Exception, match="min_sqnr"):
        ModelSettings(defaults={"min_sqnr": -1})


def test_explain_names_every_level() -> None:
    s = ModelSettings(defaults={"bits": 6}, kinds={"fc": {"init": "linear"}},
                      layers={"ip1.weight": {"value": 0.8}})
    why = s.explain("ip1.weight", "fc")
    assert set(why) == set(s.resolve("ip1.weight", "fc").to_json())
    assert why["bits"][0] == 6 and why["bits"][1].level == "defaults"
    assert why["index_bits"][1].level == "built-in: fc"
    assert why["init"][1].level == "kinds.fc"
    assert why["value"] == (0.8, why["value"][1]) and why["value"][1].level == "layers.ip1.weight"
    assert why["policy"][1].level == "built-in"
    assert why["min_sqnr"][0] is None and "no floor" in why["min_sqnr"][1].note
    assert s.explain("b", "bias")["excluded"][0] is True
