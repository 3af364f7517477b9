"""Method ``int8``: uniform symmetric int8, per output channel, tensor or group (issue 13.3).

A preset of :mod:`.uniform` (same record and decoder): each unit's step is its
``max|w| / 127``, levels -127..127 by plain rounding, coded by the ``fixed`` entropy stage
unless another is chosen. The scales are ``uniform``'s step exponents (1/16-octave grid,
rounded up so that no level passes 127).
"""

from __future__ import annotations

from typing import Any, ClassVar

from inspector.core.stages import registry
from inspector.core.stages.base import Option, Options
from inspector.core.stages.uniform import ENTROPY_CHOICES, OPTIONS, Uniform


class IntN(Uniform):
    """Symmetric int-N over :class:`Uniform`; subclasses set ``bits``, ``name`` and ``code``."""

    bits: ClassVar[int] = 8
    options: ClassVar[tuple[Option, ...]] = (
        # the same declarations as uniform's (choices included), so a flag shared by the
        # methods means one thing
        *(o for o in OPTIONS if o.name in ("granularity", "group")),
        Option("entropy", str, "fixed", "Entropy coder", "coder of the levels; auto: the "
               "smallest", choices=ENTROPY_CHOICES),
    )

    def sizing(self, options: Options) -> dict[str, Any]:
        return {"granularity": options["granularity"], "group": options["group"], "step": None,
                "int_bits": self.bits, "rel_step": 1.0, "lam": 0.0, "recon": "grid",
                "entropy": options["entropy"]}


class Int8(IntN):
    name: ClassVar[str] = "int8"
    code: ClassVar[int] = 17
    bits: ClassVar[int] = 8


registry.register_method(Int8())
