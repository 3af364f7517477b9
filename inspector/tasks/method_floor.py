"""A registered method's plan under a layer's settings, with the fidelity floor applied.

A method that declares a fidelity knob (an :class:`~inspector.core.stages.base.Option` with
``finer`` set: bits, a step size) gets the floor as deep's pruning does: the value the
settings give is the coarsest allowed, and the floor moves it finer, as little as reaches
``min_sqnr`` dB (up to the option's finest bound; a layer that misses the floor even there
gets that bound). A method without such a knob (fp16, bf16) ignores the floor: its size does
not depend on it. The search assumes the SQNR grows as the knob gets finer.
"""

from __future__ import annotations

from inspector.core.settings import LayerSettings
from inspector.core.stages.base import LayerMethod, Method, Option, Plan, fidelity_option

_DOUBLINGS = 40  # a float knob is halved (or doubled) at most this often ...
_BISECTIONS = 24  # ... then bisected between the last miss and the first hit


def knob(method: Method) -> Option | None:
    """The option a fidelity floor moves, if the method declares one."""
    return fidelity_option(method.options)


def method_plan(bound: tuple[Method, LayerMethod], s: LayerSettings) -> tuple[Method, Plan]:
    """``bound``'s plan under ``s.options``, the floor ``s.min_sqnr`` applied (see above)."""
    method, layer = bound
    plan = layer.plan(s.options)
    option = knob(method)
    if s.min_sqnr is None or option is None or plan.sqnr_db >= s.min_sqnr:
        return method, plan
    return method, _fit(layer, s, option, plan)


def _fit(layer: LayerMethod, s: LayerSettings, o: Option, coarse: Plan) -> Plan:
    floor = s.min_sqnr
    assert floor is not None

    def at(v: float) -> Plan:
        return layer.plan(s.options.replace(**{o.name: int(v) if o.kind is int else v}))

    bound = o.hi if o.finer > 0 else o.lo
    value = float(s.options[o.name])
    if o.kind is int:
        hi = int(bound) if bound is not None else int(value) + 64 * o.finer
        if at(hi).sqnr_db < floor:
            return at(hi)
        a, b = int(value), hi  # a misses, b meets
        while abs(b - a) > 1:
            mid = (a + b) // 2
            a, b = (a, mid) if at(mid).sqnr_db >= floor else (mid, b)
        return at(b)
    miss, hit = value, None
    for _ in range(_DOUBLINGS):
        v = miss * 2.0 ** o.finer
        if bound is not None and (v - bound) * o.finer >= 0:
            v = bound
        if at(v).sqnr_db >= floor:
            hit = v
            break
        if v == bound or v == 0:
            return at(v)
        miss = v
    if hit is None:
        return coarse
    for _ in range(_BISECTIONS):
        mid = (miss + hit) / 2
        miss, hit = (miss, mid) if at(mid).sqnr_db >= floor else (mid, hit)
    return at(hit)
