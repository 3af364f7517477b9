"""Every method and entropy stage, by name and by code. A new stage adds one line here."""

from __future__ import annotations

from inspector.core.stages.base import Entropy, Method
from inspector.errors import SettingsError

METHODS: dict[str, Method] = {}
ENTROPY: dict[str, Entropy] = {}


def register_method(m: Method) -> Method:
    _add(METHODS, m, "method")
    return m


def register_entropy(e: Entropy) -> Entropy:
    _add(ENTROPY, e, "entropy stage")
    return e


def _add(table: dict, item: Method | Entropy, what: str) -> None:
    if item.name in table or any(t.code == item.code for t in table.values()):
        raise ValueError(f"{what} {item.name!r} (code {item.code}) is registered twice")
    table[item.name] = item


def method(name: str) -> Method:
    """The method called ``name``; SettingsError listing the known ones otherwise."""
    _load()
    if name not in METHODS:
        raise SettingsError(f"unknown method {name!r} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


def method_by_code(code: int) -> Method | None:
    _load()
    return next((m for m in METHODS.values() if m.code == code), None)


def entropy(name: str) -> Entropy:
    _load()
    if name not in ENTROPY:
        raise SettingsError(f"unknown entropy coder {name!r} (known: {', '.join(sorted(ENTROPY))})")
    return ENTROPY[name]


def entropy_by_code(code: int) -> Entropy | None:
    _load()
    return next((e for e in ENTROPY.values() if e.code == code), None)


# The stage modules, imported on first use so importing the registry stays cheap. Each
# registers itself at import.
_MODULES: tuple[str, ...] = (
    "fixed", "cabac", "huffman", "deep", "precision", "uniform", "int8", "int4",
    "ternary", "binary", "pq", "hashed", "lowrank",
)
_LOADED: list[bool] = []


def _load() -> None:
    if _LOADED:
        return
    import importlib

    for mod in _MODULES:
        importlib.import_module(f"inspector.core.stages.{mod}")
    _LOADED.append(True)
