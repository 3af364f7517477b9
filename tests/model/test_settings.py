"""Model settings: resolve order, lossless kinds, the SETTINGS.json round trip and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspector.core.settings import LayerSettings
from inspector.errors import InputError, SettingsError
from inspector.model.settings import (
    COMPRESSIBLE_KINDS,
    PAPER_KINDS,
    SAFE_MIN_SQNR,
    ModelSettings,
    load_settings,
    save_settings,
)


def test_defaults_are_the_papers() -> None:
    s = ModelSettings()
    assert s.resolve("features.0.weight", "conv").bits == 8
    assert s.resolve("features.0.weight", "conv").index_bits == 8
    assert s.resolve("classifier.weight", "fc").bits == 5
    assert s.resolve("classifier.weight", "fc") == LayerSettings(
        bits=5, index_bits=5, min_sqnr=SAFE_MIN_SQNR, raise_bits=True
    )


def test_resolve_order_defaults_kind_layer() -> None:
    s = ModelSettings(
        defaults={"value": 0.5, "bits": 3, "huffman": False, "init": "linear"},
        kinds={"conv": {"bits": 7, "value": 0.6}, "fc": {"index_bits": 4}},
        layers={"c1.weight": {"value": 0.7}, "f1.weight": {"bits": 2, "init": "density"}},
    )
    assert s.resolve("c1.weight", "conv") == LayerSettings(
        value=0.7, bits=7, index_bits=8, huffman=False, init="linear"
    )
    assert s.resolve("c2.weight", "conv") == LayerSettings(  # index bits: the built-in conv's
        value=0.6, bits=7, index_bits=8, huffman=False, init="linear"
    )
    assert s.resolve("f1.weight", "fc") == LayerSettings(
        value=0.5, bits=2, index_bits=4, huffman=False, init="density"
    )
    assert s.resolve("e.weight", "embedding") == LayerSettings(
        value=0.5, bits=3, huffman=False, init="linear"
    )


@pytest.mark.parametrize("kind", ["bias", "norm", "buffer", "other"])
def test_non_compressible_kinds_are_excluded(kind: str) -> None:
    assert kind not in COMPRESSIBLE_KINDS
    s = ModelSettings(defaults={"excluded": False}, kinds={kind: {"excluded": False}})
    assert s.resolve("y", kind).excluded  # only a layer's own entry includes it (settings_kind)


@pytest.mark.parametrize("kind", sorted(COMPRESSIBLE_KINDS))
def test_compressible_kinds_can_be_excluded_per_layer(kind: str) -> None:
    s = ModelSettings().with_layer("a", excluded=True)
    assert s.resolve("a", kind).excluded
    assert not s.resolve("b", kind).excluded


def test_with_helpers_return_copies() -> None:
    base = ModelSettings()
    changed = base.with_defaults(value=0.3).with_kind("fc", bits=2).with_layer("l", bits=1)
    assert base == ModelSettings()
    assert changed.resolve("l", "fc").bits == 1
    assert changed.resolve("m", "fc").bits == 2
    assert changed.resolve("m", "conv").value == 0.3
    assert changed.with_layer("l", value=0.1).layers["l"] == {"bits": 1, "value": 0.1}


def test_json_round_trip(tmp_path: Path) -> None:
    s = ModelSettings(
        defaults={"policy": "std", "value": 1.25, "std_of": "nonzero", "seed": 7},
        kinds={"conv": {"bits": 6, "init": "random"}, "fc": {"bits": 4, "huffman": False}},
        layers={"ip1.weight": {"policy": "threshold", "value": 0.02},
                "ip3.weight": {"excluded": True}},
    )
    path = tmp_path / "SETTINGS.json"
    save_settings(s, path)
    loaded = load_settings(path)
    assert loaded == s
    for name, kind in [("ip1.weight", "fc"), ("ip3.weight", "fc"), ("c", "conv"), ("b", "bias")]:
        assert loaded.resolve(name, kind) == s.resolve(name, kind)
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["SETTINGS.json"]


def test_missing_kinds_fall_back_to_the_papers(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"defaults": {"value": 0.8}}')
    s = load_settings(path)
    assert s.kinds == {}  # the paper's bits are built in, under what the file says
    assert s.resolve("c", "conv").bits == PAPER_KINDS["conv"]["bits"] == 8


def test_the_sample_config_loads() -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_models" / "lenet300_100_paper.json"
    if not sample.exists():
        pytest.skip("sample config not present")
    s = load_settings(sample)
    assert s.resolve("ip3.weight", "fc").value == 0.74
    assert s.resolve("ip1.weight", "fc").bits == 6


BAD_SETTINGS = {
    "unknown top-level key": {"defaults": {}, "layer": {}},
    "unknown default key": {"defaults": {"sparsity": 0.9}},
    "unknown layer key": {"layers": {"ip1.weight": {"bitz": 4}}},
    "unknown kind key": {"kinds": {"fc": {"clusters": 16}}},
    "bits 9": {"defaults": {"bits": 9}},
    "bits 0": {"kinds": {"conv": {"bits": 0}}},
    "index bits 17": {"defaults": {"index_bits": 17}},
    "sparsity 1.5": {"defaults": {"policy": "sparsity", "value": 1.5}},
    "negative value": {"layers": {"a": {"value": -0.1}}},
    "NaN value": {"defaults": {"policy": "threshold", "value": float("nan")}},
    "infinite value": {"defaults": {"policy": "std", "value": float("inf")}},
    "string value": {"defaults": {"value": "0.5"}},
    "bool bits": {"defaults": {"bits": True}},
    "float bits": {"defaults": {"bits": 4.0}},
    "bad policy": {"defaults": {"policy": "magnitude"}},
    "bad init": {"defaults": {"init": "kmeans++"}},
    "bad std_of": {"defaults": {"std_of": "some"}},
    "huffman string": {"defaults": {"huffman": "yes"}},
    "seed negative": {"defaults": {"seed": -1}},
    "defaults not an object": {"defaults": [1, 2]},
    "layer not an object": {"layers": {"a": 5}},
    "version 2": {"version": 2},
    "not an object": [1, 2, 3],
}


@pytest.mark.parametrize("data", list(BAD_SETTINGS.values()), ids=list(BAD_SETTINGS))
def test_bad_settings_name_the_file(tmp_path: Path, data: object) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["", "{", '{"defaults": {"value": 0.5,}}', "nan", "\x00\xff"])
def test_bad_json_is_an_input_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError) as info:
        load_settings(path)
    assert info.value.path == str(path)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_settings(tmp_path / "nope.json")
    assert "nope.json" in str(info.value)


def test_invalid_in_memory_settings_raise() -> None:
    with pytest.raises(SettingsError):
        ModelSettings(defaults={"bits": 12})
    with pytest.raises(SettingsError):
        ModelSettings().with_kind("fc", index_bits=0)
    with pytest.raises(SettingsError):
        ModelSettings().with_layer("x", policy="prune-all")


def test_layer_override_is_checked_against_its_kinds_policy(tmp_path: Path) -> None:
    """A threshold above 1 is fine for a layer whose kind prunes by threshold."""
    s = ModelSettings(kinds={"conv": {"policy": "threshold", "value": 0.1}},
                      layers={"c1.weight": {"value": 1.5}})
    assert s.resolve("c1.weight", "conv") == LayerSettings(
        policy="threshold", value=1.5, bits=8, index_bits=8
    )
    path = tmp_path / "s.json"
    save_settings(s, path)
    assert load_settings(path) == s
    with pytest.raises(SettingsError, match=r"c1\.weight"):
        ModelSettings(layers={"c1.weight": {"value": 1.5}})  # every kind prunes by sparsity
