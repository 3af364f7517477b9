"""Byte-level reading and writing: LEB128 varints, little-endian scalars, bounds checks.

The container header and the stages' own record parameters (core.stages) both use it."""

from __future__ import annotations

import struct


def varint(value: int) -> bytes:
    """Unsigned LEB128 encoding of ``value`` (>= 0)."""
    if value < 0:
        raise ValueError(f"varint of a negative number {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Sequential reads over a buffer; every read checks bounds and raises ValueError."""

    def __init__(self, buf: bytes | memoryview, offset: int = 0) -> None:
        self.buf = memoryview(buf)
        self.pos = offset

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("header is truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def f64(self) -> float:
        return struct.unpack("<d", self.take(8))[0]

    def varint(self, limit: int = 1 << 63) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if value > limit:
                    raise ValueError(f"header field {value} exceeds the limit {limit}")
                return value
        raise ValueError("header has an overlong varint")

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos
