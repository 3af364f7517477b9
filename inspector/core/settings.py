"""Per-layer compression settings: a frozen, JSON-safe value the whole pipeline keys on."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from inspector.core.stages.base import Options, Value, resolve_options
from inspector.errors import SettingsError

Policy = Literal["std", "sparsity", "threshold"]
Init = Literal["optimal", "linear", "density", "random"]
StdOf = Literal["all", "nonzero"]
Store = Literal["native", "fp16", "bf16"]

POLICIES: tuple[str, ...] = ("std", "sparsity", "threshold")
INITS: tuple[str, ...] = ("optimal", "linear", "density", "random")
STD_OF: tuple[str, ...] = ("all", "nonzero")
STORES: tuple[str, ...] = ("native", "fp16", "bf16")
MIN_BITS, MAX_BITS = 1, 8
MIN_INDEX_BITS, MAX_INDEX_BITS = 1, 16
NO_OPTIONS = Options()  # deep's: its settings are still the fields above
MAX_MIN_SQNR = 100.0  # dB; far above what 8-bit codes reach, so a floor above it is a typo


@dataclass(frozen=True, slots=True)
class LayerSettings:
    """How one layer is compressed.

    Parameters
    ----------
    policy
        ``"std"``: prune ``|w| <= value * std`` (Han's rule); ``"sparsity"``: prune exactly
        ``round(value * n)`` weights, smallest magnitude first, ties by position;
        ``"threshold"``: prune ``|w| <= value``.
    value
        The policy's parameter (q, fraction in [0, 1], or absolute threshold).
    bits
        Cluster bits: the codebook has up to ``2**bits`` shared centroids.
    init
        k-means: ``"optimal"`` (exact 1-D dynamic programming), or Lloyd from the paper's
        ``"linear"``, ``"density"`` or ``"random"`` initialisation.
    index_bits
        Width b of a relative-index code; gaps above ``2**b`` insert filler entries.
    huffman
        Huffman-code the weight-index and gap streams (each falls back to fixed width if smaller).
    excluded
        Store the layer losslessly instead.
    std_of
        Whether the std of ``"std"`` is over all weights or the nonzero ones (already pruned).
    seed
        Seed of the ``"random"`` initialisation.
    min_sqnr
        A fidelity floor in dB, or None (prune exactly as asked). With a floor, the policy's
        pruning is the most the layer may get: it prunes less, down to nothing, until the
        layer's weight-space SQNR is at least ``min_sqnr`` (:mod:`inspector.core.fidelity`).
        Bits are changed only with ``raise_bits``.
    raise_bits
        With a floor: a layer that misses it even unpruned gets more bits (up to 8), as few
        as make the smallest file. :class:`~inspector.model.settings.ModelSettings` sets it
        when the bits are built in, never when a user chose them.
    store
        Precision of a float32/float64 layer stored losslessly (excluded, or a bias, norm or
        buffer): ``"native"``, or ``"fp16"`` / ``"bf16"``, 2 bytes a value (lossy; a layer
        with a finite value past float16's range stays native under ``"fp16"``).
    method
        The layer's method, a name in :mod:`inspector.core.stages.registry`: ``"deep"``
        (prune, k-means, Huffman: the fields above) or another registered method, whose own
        settings are ``options``. The deep fields stay fields for now (moving them into
        deep's declared options is later work); other methods ignore them, except
        ``excluded``, ``store`` and ``min_sqnr`` (see :mod:`inspector.tasks.codec`).
    options
        The chosen method's option values, every declared option resolved
        (:func:`~inspector.core.stages.base.resolve_options`); empty for ``"deep"``. In JSON
        they are flat keys of the layer entry: ``{"method": "uniform", "step": 0.01}``.
    """

    policy: Policy = "sparsity"
    value: float = 0.9
    bits: int = 5
    init: Init = "optimal"
    index_bits: int = 5
    huffman: bool = True
    excluded: bool = False
    std_of: StdOf = "all"
    seed: int = 0
    min_sqnr: float | None = None
    raise_bits: bool = False
    store: Store = "native"
    method: str = "deep"
    options: Options = NO_OPTIONS

    def __post_init__(self) -> None:
        if not isinstance(self.method, str):
            raise SettingsError(f"method must be a method's name, got {self.method!r}")
        if not isinstance(self.options, Options):
            raise SettingsError("options must be an Options mapping")
        if self.method != "deep" or self.options:
            declared = {o.name for o in method_options(self.method)}  # an unknown name raises
            extra = sorted(set(self.options) - declared)
            if extra:
                raise SettingsError(f"method {self.method} has no option(s) {', '.join(extra)}")
        _check_choice("policy", self.policy, POLICIES)
        _check_choice("init", self.init, INITS)
        _check_choice("std_of", self.std_of, STD_OF)
        _check_choice("store", self.store, STORES)
        _check_int("bits", self.bits, MIN_BITS, MAX_BITS)
        _check_int("index_bits", self.index_bits, MIN_INDEX_BITS, MAX_INDEX_BITS)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise SettingsError(f"value must be a number, got {self.value!r}")
        if not math.isfinite(self.value) or self.value < 0:
            raise SettingsError(f"value must be a finite number >= 0, got {self.value!r}")
        if self.policy == "sparsity" and self.value > 1:
            raise SettingsError(f"sparsity must be between 0 and 1, got {self.value!r}")
        _check_floor(self.min_sqnr)
        for name in ("huffman", "excluded", "raise_bits"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def clusters(self) -> int:
        """Codebook size K = 2**bits."""
        return 1 << self.bits

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of every field, the method's options flat beside them."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        return {**out, **dict(self.options)}

    @classmethod
    def from_json(cls, data: dict[str, Any], base: LayerSettings | None = None) -> LayerSettings:
        """Settings from a (possibly partial) dict; missing fields come from ``base``.

        Keys that are not fields are options of the method in force (``data``'s ``"method"``,
        else ``base``'s) and carry over from ``base`` while the method stays the same. An
        option the method lacks is an error where ``data`` names the method, and is ignored
        otherwise (it is another method's: a kind may set ``step`` for its uniform layers);
        a key no registered method declares is an unknown setting.
        """
        if not isinstance(data, dict):
            raise SettingsError(f"layer settings must be an object, got {type(data).__name__}")
        base = base or cls()
        given = {k: v for k, v in data.items() if k not in FIELDS}
        check_option_names(given)
        plain = {k: v for k, v in data.items() if k in FIELDS and k != "options"}
        if "options" in data:
            raise SettingsError("unknown setting(s) options")
        method = plain.get("method", base.method)
        if not isinstance(method, str):
            raise SettingsError(f"method must be a method's name, got {method!r}")
        if given or method != base.method:
            kept = dict(base.options) if method == base.method else {}
            if "method" not in data:
                declared = {o.name for o in method_options(method)}
                given = {k: v for k, v in given.items() if k in declared}
            plain["options"] = resolve_method_options(method, {**kept, **given})
        try:
            return replace(base, **plain)
        except TypeError as exc:  # pragma: no cover - replace() only fails on unknown names
            raise SettingsError(str(exc)) from exc


def check_option_names(given: dict[str, Any]) -> None:
    """Refuse keys that are neither a field nor an option of any registered method."""
    if not given:
        return
    from inspector.core.stages import registry  # the stages import this module

    registry.method("deep")  # loads the registry
    known = {o.name for m in registry.METHODS.values() for o in m.options}
    unknown = sorted(set(given) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}")


def method_options(name: str) -> tuple:
    """The declared options of method ``name``; SettingsError for an unknown method."""
    from inspector.core.stages import registry  # the stages import this module

    return registry.method(name).options


def resolve_method_options(name: str, given: dict[str, Value]) -> Options:
    """Every option of method ``name`` from ``given`` or its default (one SettingsError for a
    name the method does not declare, or a bad value)."""
    if name == "deep" and not given:
        return Options()
    try:
        return resolve_options(method_options(name), given)
    except SettingsError as exc:
        if exc.problem.startswith("unknown option"):
            raise SettingsError(f"method {name}: {exc.problem}") from None
        raise


FIELDS: frozenset[str] = frozenset(f.name for f in fields(LayerSettings))


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_floor(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"min_sqnr must be a number of dB or null, got {value!r}")
    if not 0 <= value <= MAX_MIN_SQNR:  # also refuses NaN
        raise SettingsError(f"min_sqnr must be from 0 to {MAX_MIN_SQNR:g} dB, got {value!r}")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SettingsError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
