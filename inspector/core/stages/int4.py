"""Method ``int4``: uniform symmetric int4 (levels -7..7), per output channel, tensor or group.

The int-N preset of :mod:`.int8` at 4 bits: the ``fixed`` entropy stage stores 4 bits a
weight by default.
"""

from __future__ import annotations

from typing import ClassVar

from inspector.core.stages import registry
from inspector.core.stages.int8 import IntN


class Int4(IntN):
    name: ClassVar[str] = "int4"
    code: ClassVar[int] = 18
    bits: ClassVar[int] = 4


registry.register_method(Int4())
