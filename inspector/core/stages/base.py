"""The contract of a per-layer method and of an entropy stage.

A *method* turns one float tensor into a payload and back: it declares its options (typed,
validated, JSON-safe, in one place: :class:`Option`), plans a layer exactly without encoding
(:meth:`LayerMethod.plan`: the byte count the file will have), encodes it, and decodes it two
ways that must agree bit for bit: :meth:`Method.decode` (the fast path, numba where it
matters) and :meth:`Method.decode_reference` (a plain numpy twin, the specification).

An *entropy stage* codes a stream of integer symbols (signed levels); methods that make
integer symbols choose one by an option, so a better coder serves every method at once.

Adding a method is one module here, its tests, and one line in :mod:`.registry`: the app's
controls, the settings file and the CLI read :attr:`Method.options`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from inspector.errors import SettingsError

Value = bool | int | float | str | None


@dataclass(frozen=True, slots=True)
class Option:
    """One declared setting of a stage.

    ``kind`` is ``bool``, ``int``, ``float`` or ``str``; ``choices`` (str only) lists the
    allowed words; ``lo``/``hi`` bound a number (inclusive); ``nullable`` admits None.
    ``label`` is the control's text in the app and ``help`` its tooltip and the CLI help.
    ``finer`` marks the option a fidelity floor (``min_sqnr``) may move: +1 when a larger
    value is more faithful (bits), -1 when a smaller one is (a step size), 0 otherwise; the
    value a user sets is then the coarsest the floor allows (``inspector.tasks.method_floor``).
    """

    name: str
    kind: type
    default: Value
    label: str = ""
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    finer: int = 0

    def check(self, value: object) -> Value:
        """``value`` if it is valid for this option (an int is accepted for a float), else
        SettingsError naming the option."""
        if value is None and self.nullable:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise SettingsError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                words = ", ".join(self.choices) if self.choices else "a string"
                raise SettingsError(f"{self.name} must be one of {words}; got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{self.name} must be a number, got {value!r}")
        if self.kind is int and not isinstance(value, int):
            raise SettingsError(f"{self.name} must be an integer, got {value!r}")
        if not math.isfinite(value) or (self.lo is not None and value < self.lo) or (
            self.hi is not None and value > self.hi
        ):
            raise SettingsError(f"{self.name} must be from {self.lo} to {self.hi}, got {value!r}")
        return float(value) if self.kind is float else int(value)


@dataclass(frozen=True, slots=True)
class Options(Mapping[str, Value]):
    """A method's option values: a frozen, hashable, sorted mapping (a cache key)."""

    items_: tuple[tuple[str, Value], ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, Value]) -> Options:
        return cls(tuple(sorted(values.items())))

    def __getitem__(self, key: str) -> Value:
        for k, v in self.items_:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.items_)

    def __len__(self) -> int:
        return len(self.items_)

    def replace(self, **changes: Value) -> Options:
        return Options.of({**dict(self.items_), **changes})


def resolve_options(declared: tuple[Option, ...], given: Mapping[str, object]) -> Options:
    """Every declared option, from ``given`` where it names it, else its default; a name not
    declared is a SettingsError listing the ones that are."""
    known = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        words = ", ".join(sorted(known)) or "none"
        raise SettingsError(f"unknown option(s) {', '.join(unknown)} (this method has: {words})")
    return Options.of({o.name: o.check(given.get(o.name, o.default)) for o in declared})


def fidelity_option(options: tuple[Option, ...]) -> Option | None:
    """The numeric option a fidelity floor may move (the first with ``finer`` set), if any."""
    return next((o for o in options if o.finer and o.kind in (int, float)), None)


@dataclass(frozen=True, slots=True)
class Plan:
    """One layer under one method's options, exact, with nothing encoded.

    ``params`` are the method's own record bytes (they go in the container header after the
    method byte); ``payload_nbytes`` is exactly ``len(payload)`` of :meth:`LayerMethod.encode`.
    ``sse`` is the squared error of the decoded layer against the original, ``sumsq`` the
    original's energy, ``zeros`` the decoded zeros. ``state`` is whatever ``encode`` reuses.
    """

    method: str
    options: Options
    params: bytes
    payload_nbytes: int
    sse: float
    sumsq: float
    zeros: int
    state: object = field(default=None, compare=False, repr=False)

    @property
    def sqnr_db(self) -> float:
        if self.sse <= 0 or self.sumsq <= 0:
            return math.inf
        return 10.0 * math.log10(self.sumsq / self.sse)


class LayerMethod(Protocol):
    """One method bound to one layer's weights; may cache between calls (not thread-safe)."""

    def plan(self, options: Options) -> Plan: ...

    def encode(self, options: Options) -> tuple[Plan, bytes]: ...

    def decoded(self, options: Options) -> np.ndarray:
        """The layer (float32, flat) exactly as :meth:`Method.decode` will give it."""
        ...


class Method(Protocol):
    """A registered method (see the module docstring)."""

    name: ClassVar[str]  # the settings-file and CLI name, e.g. "uniform"
    code: ClassVar[int]  # the version-2 record's method byte; unique in the registry
    options: ClassVar[tuple[Option, ...]]

    def bind(self, weights: np.ndarray, shape: tuple[int, ...],
             importance: np.ndarray | None = None) -> LayerMethod:
        """The method for one layer. ``weights`` is flat float32/float64, finite;
        ``importance`` (same size, >= 0, optional) weights each element's squared error."""
        ...

    def check(self, params: bytes, payload_nbytes: int, shape: tuple[int, ...]) -> None:
        """Up-front consistency of a record (ValueError naming the field), before any
        payload is read or anything sized by the file is allocated."""
        ...

    def decode(self, params: bytes, payload: bytes | memoryview,
               shape: tuple[int, ...]) -> np.ndarray:
        """float32, flat; ValueError if the payload does not decode exactly."""
        ...

    def decode_reference(self, params: bytes, payload: bytes | memoryview,
                         shape: tuple[int, ...]) -> np.ndarray:
        """The numpy twin of :meth:`decode`: same values, bit for bit."""
        ...

    def describe(self, params: bytes) -> dict[str, Any]:
        """The recipe in JSON-safe form (``info --json`` shows it under ``"method"``)."""
        ...


class Entropy(Protocol):
    """Codes a stream of signed integer symbols; exact size without building the bytes is
    allowed to cost a pass of the coder (it must equal ``len(encode(...))``)."""

    name: ClassVar[str]
    code: ClassVar[int]  # the byte a method stores to say which coder its stream used

    def nbytes(self, symbols: np.ndarray) -> int: ...

    def encode(self, symbols: np.ndarray) -> bytes: ...

    def decode(self, data: bytes | memoryview, count: int) -> np.ndarray:
        """int32 symbols; ValueError if ``data`` is not exactly ``count`` symbols' code."""
        ...

    def decode_reference(self, data: bytes | memoryview, count: int) -> np.ndarray: ...
