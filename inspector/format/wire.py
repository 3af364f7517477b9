"""Byte-level reading and writing (kept here for the format's modules; the code lives in
:mod:`inspector.core.wire`, where the stages' record parameters use it too)."""

from __future__ import annotations

from inspector.core.wire import Reader, varint

__all__ = ["Reader", "varint"]
