"""The "ours" hook: every method in ``inspector.core.stages.registry``, swept, as one codec each.

Written against the stage contract (``inspector/core/stages/base.py``): ``Method.bind(weights,
shape)`` gives a layer method whose ``plan(options)`` is the exact payload size with nothing
encoded and whose ``encode(options)`` is the payload; ``Method.decode`` reads it back. So it
works for any method as soon as it is registered, and yields nothing while none is.

The sweep: one set of options for every lossy layer (a model-wide lambda is the optimal
allocation of a byte budget, issue 12.5). The rate knob is the first numeric option whose name
says so (:data:`KNOBS`); its grid is planned first (cheap: exact sizes, no encoding) on a wide
range, and only the values whose model lands between :data:`RATIOS` are encoded, decoded and
measured. An option naming the entropy coder sweeps its choices (``auto`` alone if it has it).
``--ours METHOD:OPTION=V1,V2`` replaces a knob's grid.

Bytes: each lossy layer's payload, its method params, a method byte and the params' length;
the other tensors as raw float32; and the container's prefix, record header (names, dtypes,
shapes, as version 2 writes them) and CRCs. This is what a version-2 file of these records
holds; it is counted, not written, until the writer takes method records.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
from _util import log
from rd_codecs import Decoded, lossy
from rd_models import Subject

from inspector.core.stages import registry
from inspector.core.stages.base import Method, Option, Options, resolve_options
from inspector.errors import SettingsError
from inspector.format import container
from inspector.format.header import LayerRecord
from inspector.format.wire import varint

Values = list[float | str | bool]  # a grid given for one option on the command line
KNOBS = ("lambda", "lam", "lmbda", "rate", "step", "qp", "bits", "levels")
CODERS = ("entropy", "coder")
RATIOS = (1.5, 400.0)  # compression ratios worth measuring
WIDE = 25  # knob values planned before choosing the ones to measure


def methods() -> list[Method]:
    registry.method_by_code(-1)  # imports every registered stage module (no method has -1)
    return [registry.METHODS[k] for k in sorted(registry.METHODS)]


def knob(m: Method) -> Option | None:
    numeric = [o for o in m.options if o.kind in (int, float)]
    for word in KNOBS:
        for o in numeric:
            if word in o.name.lower():
                return o
    return numeric[0] if numeric else None


def knob_grid(o: Option) -> list[float]:
    """A wide grid over the option's range: every integer of a short int range, else
    geometric (over 1e-9..1e3 where a bound is open: the units are the method's)."""
    lo = o.lo if o.lo is not None and math.isfinite(o.lo) else None
    hi = o.hi if o.hi is not None and math.isfinite(o.hi) else None
    if o.kind is int and lo is not None and hi is not None and hi - lo <= WIDE:
        return list(range(int(lo), int(hi) + 1))
    a = max(lo, 1e-9) if lo is not None and lo > 0 else 1e-9
    b = hi if hi is not None and hi > 0 else 1e3
    grid = np.geomspace(a, b, WIDE)
    if lo is not None and lo <= 0:
        grid = np.concatenate([[0.0], grid])
    return sorted({round(float(v)) for v in grid} if o.kind is int else set(grid.tolist()))


def option_sets(m: Method, override: dict[str, Values]) -> list[dict[str, object]]:
    """Candidate options: the knob's grid times each coder choice."""
    axes: dict[str, list[object]] = {}
    k = knob(m)
    if k is not None:
        axes[k.name] = list(override.get(k.name, knob_grid(k)))
    for o in m.options:
        if o.kind is str and o.choices and any(w in o.name.lower() for w in CODERS):
            axes[o.name] = ["auto"] if "auto" in o.choices else list(o.choices)
    for name, values in override.items():
        axes.setdefault(name, list(values))
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


class Bound:
    """One method bound to every lossy layer of a subject."""

    def __init__(self, m: Method, subject: Subject) -> None:
        self.method, self.subject = m, subject
        self.names = lossy(subject)
        self.layers = {n: m.bind(subject.tensors[n].reshape(-1), subject.tensors[n].shape)
                       for n in self.names}

    def nbytes(self, opts: Options) -> int:
        sizes = {}
        for n, layer in self.layers.items():
            p = layer.plan(opts)
            sizes[n] = 1 + len(varint(len(p.params))) + len(p.params) + p.payload_nbytes
        return self._file_nbytes(sizes)

    def _file_nbytes(self, lossy_sizes: dict[str, int]) -> int:
        records = [LayerRecord(n, "float32", tuple(a.shape), lossy_sizes.get(n, 4 * a.size), 0,
                               None) for n, a in self.subject.tensors.items()]
        return container.file_nbytes(records)

    def decoded(self, opts: Options) -> tuple[int, dict[str, np.ndarray]]:
        """Bytes and tensors, each lossy layer encoded and decoded through the method's own
        decoder (its payload length checked against the plan)."""
        out, sizes = dict(self.subject.tensors), {}
        for n, layer in self.layers.items():
            plan, payload = layer.encode(opts)
            if len(payload) != plan.payload_nbytes:
                raise AssertionError(f"{self.method.name} {n}: planned {plan.payload_nbytes} "
                                     f"bytes, encoded {len(payload)}")
            shape = self.subject.tensors[n].shape
            out[n] = self.method.decode(plan.params, payload, shape).reshape(shape)
            sizes[n] = 1 + len(varint(len(plan.params))) + len(plan.params) + len(payload)
        return self._file_nbytes(sizes), out


def ours_points(subject: Subject, m: Method, budget: int,
                override: dict[str, Values]) -> Iterator[Decoded]:
    """Up to ``budget`` measured points of method ``m``, spread over the ratios of interest."""
    bound = Bound(m, subject)
    if not bound.names:
        return
    fp32 = subject.fp32_nbytes
    planned = []
    for given in option_sets(m, override):
        try:
            opts = resolve_options(m.options, given)
            n = bound.nbytes(opts)
        except (SettingsError, ValueError) as exc:  # a grid value the method refuses
            log(f"{subject.name}: {m.name} {given}: skipped ({exc})")
            continue
        if RATIOS[0] <= fp32 / n <= RATIOS[1]:
            planned.append((n, opts))
    planned.sort(key=lambda t: t[0])
    if len(planned) > budget:
        pick = np.unique(np.linspace(0, len(planned) - 1, budget).round().astype(int))
        planned = [planned[i] for i in pick]
    for _, opts in planned:
        nbytes, tensors = bound.decoded(opts)
        label = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in opts.items())
        yield label, nbytes, tensors


def parse_override(specs: list[str]) -> dict[str, dict[str, Values]]:
    """``METHOD:OPTION=V1,V2[;OPTION=...]`` -> {method: {option: values}}."""
    out: dict[str, dict[str, Values]] = {}
    for spec in specs:
        name, _, rest = spec.partition(":")
        for part in filter(None, rest.split(";")):
            opt, _, values = part.partition("=")
            out.setdefault(name, {})[opt] = [_number(v) for v in values.split(",")]
    return out


def _number(text: str) -> float | str | bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
