"""Settings for a whole model: defaults, per-kind defaults, per-layer overrides (SETTINGS.json).

The app and the CLI read and write the same file::

    {"version": 1,
     "defaults": {"policy": "sparsity", "value": 0.9, "huffman": true},
     "kinds": {"conv": {"bits": 8, "index_bits": 8}, "fc": {"bits": 5, "index_bits": 5}},
     "layers": {"ip3.weight": {"value": 0.74}, "ip1.weight": {"excluded": true}},
     "sensitivity": {...}}

A layer's settings are ``LayerSettings()`` updated by ``defaults``, then by its kind's entry,
then by its own entry. Kinds that are not compressible (biases, norms, buffers) are always
stored losslessly. ``"sensitivity"`` (optional, omitted when there is none) is the last
sensitivity sweep of the model (:mod:`inspector.model.sensitivity`), kept with the settings it
informs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inspector.atomic import atomic_path
from inspector.core.settings import LayerSettings
from inspector.errors import InputError, SettingsError
from inspector.model.sensitivity import Sensitivity

SETTINGS_VERSION = 1
COMPRESSIBLE_KINDS = frozenset({"conv", "fc", "embedding"})
PAPER_KINDS: dict[str, dict[str, Any]] = {  # Deep Compression: conv 8 bits, fc 5 bits
    "conv": {"bits": 8, "index_bits": 8},
    "fc": {"bits": 5, "index_bits": 5},
    "embedding": {"bits": 5, "index_bits": 5},
}


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Defaults, per-kind defaults and per-layer overrides, all as partial setting dicts.

    ``sensitivity`` is the model's last sweep, if any; the ``with_*`` copies keep it.
    """

    defaults: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(PAPER_KINDS))
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensitivity: Sensitivity | None = None

    def __post_init__(self) -> None:
        if self.sensitivity is not None and not isinstance(self.sensitivity, Sensitivity):
            raise SettingsError("sensitivity must be a sensitivity sweep")
        self.resolve("", "fc")  # validates defaults and the fc entry early
        for kind in self.kinds:
            self.resolve("", kind)
        for name in self.layers:
            self._check_layer(name)

    def _check_layer(self, name: str) -> None:
        """An override must be valid on top of some kind's settings (its kind is not known
        here: a conv layer whose kind prunes by threshold may set a value above 1)."""
        problem = None
        for kind in (*self.kinds, ""):
            try:
                LayerSettings.from_json(self.layers[name], self.resolve("", kind))
                return
            except SettingsError as exc:
                problem = problem or exc
        raise SettingsError(f"layer {name}: {problem.problem}") from problem

    def resolve(self, name: str, kind: str) -> LayerSettings:
        """The settings of layer ``name`` of ``kind``."""
        s = LayerSettings.from_json(self.defaults)
        s = LayerSettings.from_json(self.kinds.get(kind, {}), s)
        s = LayerSettings.from_json(self.layers.get(name, {}), s)
        if kind not in COMPRESSIBLE_KINDS and not s.excluded:
            s = replace(s, excluded=True)
        return s

    def with_defaults(self, **changes: Any) -> ModelSettings:
        """A copy whose global defaults are updated (every kind and layer inherits them)."""
        return replace(self, defaults={**self.defaults, **changes})

    def with_kind(self, kind: str, **changes: Any) -> ModelSettings:
        """A copy whose defaults for ``kind`` are updated."""
        kinds = {**self.kinds, kind: {**self.kinds.get(kind, {}), **changes}}
        return replace(self, kinds=kinds)

    def with_layer(self, name: str, **changes: Any) -> ModelSettings:
        """A copy whose override for layer ``name`` is updated."""
        layers = {**self.layers, name: {**self.layers.get(name, {}), **changes}}
        return replace(self, layers=layers)

    def with_sensitivity(self, sensitivity: Sensitivity | None) -> ModelSettings:
        """A copy that carries ``sensitivity`` (None: drops the sweep)."""
        return replace(self, sensitivity=sensitivity)

    def to_json(self) -> dict[str, Any]:
        data = {
            "version": SETTINGS_VERSION,
            "defaults": self.defaults,
            "kinds": self.kinds,
            "layers": self.layers,
        }
        if self.sensitivity is not None:
            data["sensitivity"] = self.sensitivity.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> ModelSettings:
        if not isinstance(data, dict):
            raise SettingsError("settings must be a JSON object")
        unknown = sorted(set(data) - {"version", "defaults", "kinds", "layers", "sensitivity"})
        if unknown:
            raise SettingsError(f"unknown top-level key(s) {', '.join(unknown)}")
        version = data.get("version", SETTINGS_VERSION)
        if version != SETTINGS_VERSION:
            raise SettingsError(f"settings version {version!r} is not supported")
        parts = {k: data.get(k, {}) for k in ("defaults", "kinds", "layers")}
        for key, value in parts.items():
            if not isinstance(value, dict):
                raise SettingsError(f'"{key}" must be an object')
        kinds = {**PAPER_KINDS, **parts["kinds"]} if "kinds" not in data else parts["kinds"]
        sweep = data.get("sensitivity")
        sensitivity = None if sweep is None else Sensitivity.from_json(sweep)
        return cls(parts["defaults"], kinds, parts["layers"], sensitivity)


def load_settings(path: str | Path) -> ModelSettings:
    """Read a SETTINGS.json file; problems name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read settings: {exc}", path) from exc
    try:
        return ModelSettings.from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path) from exc
    except RecursionError:  # json nests as deep as the text does; no settings file nests so
        raise InputError("settings nest too deeply to be settings", path) from None
    except SettingsError as exc:
        raise SettingsError(exc.problem, path) from exc


def save_settings(settings: ModelSettings, path: str | Path) -> None:
    """Write a SETTINGS.json file atomically."""
    path = Path(path)
    text = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
