"""Resolved per-layer settings, memoised per layer while what they are resolved from stays.

A slider move makes a new ``ModelSettings`` that differs in one layer's entry; resolving every
layer again (~30 us each) made each move cost O(layers) in the estimate and in the table.
"""

from __future__ import annotations

from dataclasses import fields
from functools import cache

from inspector.core.settings import LayerSettings
from inspector.model.settings import ModelSettings

_PLAIN = (dict, str, int, float, bool, tuple, type(None))


class ResolvedSettings:
    """``settings.resolve(name, kind)``, memoised per layer name."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[tuple[object, ...], LayerSettings]] = {}

    def get(self, settings: ModelSettings, name: str, kind: str) -> LayerSettings:
        """The resolved settings of layer ``name`` of ``kind`` under ``settings``."""
        key = _key(settings, name, kind)
        memo = self._memo.get(name)
        if memo is not None and _same(memo[0], key):
            return memo[1]
        s = settings.resolve(name, kind)
        self._memo[name] = (key, s)
        return s

    def clear(self) -> None:
        self._memo.clear()


def _key(settings: ModelSettings, name: str, kind: str) -> tuple[object, ...]:
    """What ``settings.resolve(name, kind)`` reads: every field of the settings, with
    ``layers`` narrowed to the layer's own entry (other layers' entries cannot matter)."""
    return (kind, *(
        settings.layers.get(name) if f == "layers" else getattr(settings, f)
        for f in _fields()
    ))


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    # Settings are immutable values: the same object is the same value. Plain data (the
    # JSON dicts) is compared by value; anything else (a sensitivity sweep) by identity.
    return len(a) == len(b) and all(
        x is y or (type(x) in _PLAIN and type(y) is type(x) and x == y)
        for x, y in zip(a, b, strict=True)
    )


@cache
def _fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(ModelSettings))
