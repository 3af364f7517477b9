"""Settings for a whole model: defaults, per-kind defaults, per-layer overrides (SETTINGS.json).

The app and the CLI read and write the same file::

    {"version": 1,
     "defaults": {"policy": "sparsity", "value": 0.9, "huffman": true},
     "kinds": {"conv": {"bits": 8, "index_bits": 8}, "fc": {"bits": 5, "index_bits": 5}},
     "layers": {"ip3.weight": {"value": 0.74}, "ip1.weight": {"excluded": true}},
     "sensitivity": {...}}

A layer's settings are, least specific first: the built-in values (``LayerSettings()``, the
safe floor ``min_sqnr``, then the paper's bits for the layer's kind: ``BUILTIN``), then the
file's ``defaults``, then its kind's entry, then the layer's own entry; each level replaces only
the fields it names, so a value a user wrote always beats a built-in one. A fidelity floor
guards only the pruning written at its own level or below: pruning (``policy`` or ``value``)
written at a more specific level than the floor is applied as written, and the floor raises
only bits written at its level or below (``raise_bits``), never bits a user chose above it.
A layer's own ``"kind"`` (``{"x": {"kind": "conv"}}``) replaces the kind the file gave it,
for the kind defaults and for whether it is compressed. Kinds that are not compressible
(biases, norms, buffers, other) are stored losslessly unless the layer's own entry says
``"excluded": false``.
``"sensitivity"`` (optional, omitted when there is none) is the last sensitivity sweep of the model
(:mod:`inspector.model.sensitivity`), kept with the settings it informs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inspector.atomic import atomic_path
from inspector.core.settings import (
    FIELDS,
    LayerSettings,
    check_option_names,
    method_options,
    resolve_method_options,
)
from inspector.core.stages.base import fidelity_option
from inspector.errors import InputError, SettingsError
from inspector.io.kinds import ALL_KINDS
from inspector.model.sensitivity import Sensitivity

SETTINGS_VERSION = 1
COMPRESSIBLE_KINDS = frozenset({"conv", "fc", "embedding"})
PAPER_KINDS: dict[str, dict[str, Any]] = {  # Deep Compression: conv 8 bits, fc 5 bits
    "conv": {"bits": 8, "index_bits": 8},
    "fc": {"bits": 5, "index_bits": 5},
    "embedding": {"bits": 5, "index_bits": 5},
}
#: The safe default's fidelity floor in dB, chosen on real models (benchmarks/floor_study.py):
#: at 30 dB a sentence transformer's embeddings keep cosine 0.994 to the original (0.95 at
#: 20 dB, 0.14 pruning 90%) and the LeNets lose no accuracy (15 dB: LeNet-5 loses 1 point).
SAFE_MIN_SQNR = 30.0
#: The built-in level under everything a user writes: "" for every kind, then per kind.
BUILTIN: dict[str, dict[str, Any]] = {"": {"min_sqnr": SAFE_MIN_SQNR}, **PAPER_KINDS}
BUILTIN_LEVELS = 2  # levels() starts with "built-in" and "built-in: KIND"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a resolved field came from: a level (``"built-in"``, ``"built-in: fc"``,
    ``"defaults"``, ``"kinds.fc"``, ``"layers.NAME"``) and, when a rule changed it, why."""

    level: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Defaults, per-kind defaults and per-layer overrides, all as partial setting dicts.

    ``sensitivity`` is the model's last sweep, if any; the ``with_*`` copies keep it.
    """

    defaults: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, dict[str, Any]] = field(default_factory=dict)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensitivity: Sensitivity | None = None
    #: The built-in level ("" and per kind); never written to a file.
    builtin: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(BUILTIN))

    def __post_init__(self) -> None:
        if self.sensitivity is not None and not isinstance(self.sensitivity, Sensitivity):
            raise SettingsError("sensitivity must be a sensitivity sweep")
        self.resolve("", "fc")  # validates defaults and the fc entry early
        for kind in {*self.kinds, *self.builtin} - {""}:
            self.resolve("", kind)
        for name in self.layers:
            self._check_layer(name)

    def _check_layer(self, name: str) -> None:
        """An override must be valid on top of some kind's settings (its kind is not known
        here: a conv layer whose kind prunes by threshold may set a value above 1)."""
        entry = self.layers[name]
        if isinstance(entry, dict) and "kind" in entry:
            kind = entry["kind"]
            if not isinstance(kind, str) or kind not in ALL_KINDS:
                kinds = ", ".join(ALL_KINDS)
                raise SettingsError(f"layer {name}: kind must be one of {kinds}, got {kind!r}")
            entry = _without_kind(entry)
        problem = None
        for kind in (*self.kinds, *(k for k in self.builtin if k), ""):
            try:
                LayerSettings.from_json(entry, self.resolve("", kind))
                return
            except SettingsError as exc:
                problem = problem or exc
        raise SettingsError(f"layer {name}: {problem.problem}") from problem

    def levels(self, name: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """The partial settings that make layer ``name`` of ``kind``, least specific first."""
        return [
            ("built-in", self.builtin.get("", {})),
            (f"built-in: {kind}", self.builtin.get(kind, {}) if kind else {}),
            ("defaults", self.defaults),
            (f"kinds.{kind}", self.kinds.get(kind, {})),
            (f"layers.{name}", _without_kind(self.layers.get(name, {}))),
        ]

    def resolve(self, name: str, kind: str) -> LayerSettings:
        """The settings of layer ``name``, whose file says it is of ``kind``.

        The layer's own ``"kind"`` entry, if any, replaces ``kind``; a kind that is not
        compressible is stored losslessly unless the layer's own entry says
        ``"excluded": false``.
        """
        return self._resolve(name, kind)[0]

    def explain(self, name: str, kind: str) -> dict[str, tuple[Any, Source]]:
        """Every field of layer ``name``'s settings: its value and where it came from."""
        return self._resolve(name, kind)[1]

    def _resolve(self, name: str, kind: str) -> tuple[LayerSettings, dict[str, tuple[Any, Source]]]:
        kind = self.kind_of(name, kind)
        s = LayerSettings()
        origin = dict.fromkeys(s.to_json(), -1)  # -1: LayerSettings() itself, built in
        levels = self.levels(name, kind)
        given: dict[str, tuple[Any, int]] = {}  # method options by name: value, level
        for i, (_, part) in enumerate(levels):
            fields_, options = _split(part)
            s = LayerSettings.from_json(fields_, s)
            origin.update(dict.fromkeys(fields_, i))
            given.update({k: (v, i) for k, v in options.items()})
        s, option_origin = _with_options(s, given, origin["method"])
        origin.update(option_origin)
        level = [("built-in", *(lv for lv, _ in levels))[origin[f] + 1] for f in origin]
        sources = {f: Source(lv) for f, lv in zip(origin, level, strict=True)}
        user = {f: max(i, BUILTIN_LEVELS - 1) for f, i in origin.items()}  # built in: one level
        pruning = "value" if origin["value"] >= origin["policy"] else "policy"
        if s.min_sqnr is not None and user["min_sqnr"] < user[pruning]:
            # A floor guards the pruning of its own level: pruning a user wrote above it is
            # applied as written (a slider, a sweep or the paper's 90% must do what they say).
            s = replace(s, min_sqnr=None)
            sources["min_sqnr"] = Source(
                sources[pruning].level, f"the {pruning} set there has no floor"
            )
        knob = fidelity_option(method_options(s.method)) if s.method != "deep" else None
        if knob is not None and s.min_sqnr is not None and user["min_sqnr"] < max(
                origin[knob.name], BUILTIN_LEVELS - 1):
            # as for pruning: a method's knob a user set above the floor is applied as set
            s = replace(s, min_sqnr=None)
            sources["min_sqnr"] = Source(sources[knob.name].level,
                                         f"the {knob.name} set there has no floor")
        if origin["raise_bits"] < BUILTIN_LEVELS:  # more bits only where nobody chose them
            raise_bits = s.min_sqnr is not None and user["bits"] <= user["min_sqnr"]
            if raise_bits:
                s = replace(s, raise_bits=True)
                sources["raise_bits"] = Source("built-in", "the bits are built in")
        own = self.layers.get(name, {})
        included = isinstance(own, dict) and own.get("excluded") is False
        if kind not in COMPRESSIBLE_KINDS and not s.excluded and not included:
            s = replace(s, excluded=True)
            sources["excluded"] = Source(sources["excluded"].level,
                                         f"kind {kind or 'other'} is always stored losslessly")
        values = s.to_json()
        return s, {f: (values[f], sources[f]) for f in values}

    def kind_of(self, name: str, kind: str) -> str:
        """The kind layer ``name`` is treated as: its own ``"kind"`` entry, else ``kind``."""
        own = self.layers.get(name)
        return own.get("kind", kind) if isinstance(own, dict) else kind

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
        sweep = data.get("sensitivity")
        sensitivity = None if sweep is None else Sensitivity.from_json(sweep)
        return cls(parts["defaults"], parts["kinds"], parts["layers"], sensitivity)


def _split(part: Any) -> tuple[Any, dict[str, Any]]:
    """A level's entry as its LayerSettings fields and its method options (flat keys that
    are not fields); a non-dict is passed on for LayerSettings to refuse."""
    if not isinstance(part, dict):
        return part, {}
    options = {k: v for k, v in part.items() if k not in FIELDS}
    check_option_names(options)
    fields_ = {k: v for k, v in part.items() if k in FIELDS}
    return fields_, options


def _with_options(
    s: LayerSettings, given: dict[str, tuple[Any, int]], method_level: int
) -> tuple[LayerSettings, dict[str, int]]:
    """``s`` with the options of its method from ``given`` (each the most specific level's
    value); an option the method lacks is an error at the level that chose the method and
    ignored elsewhere (it belongs to another method). Returns each option's level."""
    declared = {o.name for o in method_options(s.method)}
    wrong = sorted(k for k, (_, i) in given.items() if k not in declared and i == method_level)
    if wrong:
        raise SettingsError(f"method {s.method}: unknown option(s) {', '.join(wrong)}")
    used = {k: v for k, (v, _) in given.items() if k in declared}
    s = replace(s, options=resolve_method_options(s.method, used))
    origin = {k: given[k][1] if k in used else -1 for k in s.options}
    return s, origin


def _without_kind(entry: Any) -> Any:
    """A layer entry without its ``"kind"`` (not a LayerSettings field)."""
    if isinstance(entry, dict) and "kind" in entry:
        return {k: v for k, v in entry.items() if k != "kind"}
    return entry


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
