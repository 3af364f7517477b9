"""The version-2 container header: compact layer records (docs/format.md, "Header, version 2").

Names share their prefix with the previous record's, a shape equal to the previous record's is
one flag bit, and a deep record packs its settings into a few bytes (float32 numbers where they
are exact). ``decode_header`` reads either version.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from inspector.core.stages.deep_record import decode_deep, encode_deep
from inspector.format import header as v1
from inspector.format import spec
from inspector.format.header import Coded, LayerRecord
from inspector.format.wire import Reader, varint

SAME_SHAPE = 0x80  # dtype byte: the shape is the previous record's


def encode_header(records: Sequence[LayerRecord]) -> bytes:
    """The version-2 header bytes (without prefix and CRC) of ``records``."""
    out = [varint(len(records))]
    prev: LayerRecord | None = None
    for r in records:
        out.append(encode_record(r, prev))
        prev = r
    return b"".join(out)


def encode_record(r: LayerRecord, prev: LayerRecord | None) -> bytes:
    """One record's bytes; they depend on the record before it (``prev``) only."""
    name = r.name.encode("utf-8")
    shared = _shared_prefix(name, prev.name.encode("utf-8")) if prev is not None else 0
    out = [varint(shared), varint(len(name) - shared), name[shared:]]
    code = spec.DTYPES[r.dtype][0]
    if prev is not None and prev.shape == r.shape:
        out.append(bytes([code | SAME_SHAPE]))
    else:
        out += [bytes([code, len(r.shape)]), *(varint(d) for d in r.shape)]
    method = spec.DEEP if r.deep is not None else spec.STORED_METHODS.get(r.stored or "", spec.RAW)
    if r.coded is not None:
        method = r.coded.code
    out += [bytes([method]), varint(r.payload_nbytes)]
    out.append(struct.pack("<I", r.crc))
    if r.deep is not None:
        out.append(encode_deep(r.deep))
    elif r.coded is not None:  # a registered method's own parameters, length first
        out += [varint(len(r.coded.params)), r.coded.params]
    return b"".join(out)


def _shared_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def decode_header(buf: bytes | memoryview, version: int = spec.VERSION) -> list[LayerRecord]:
    """Records from the header bytes of a ``version`` file; ValueError names the first field
    that makes no sense."""
    if version == 1:
        return v1.decode_header(buf)
    r = Reader(buf)
    count = r.varint(limit=len(r.buf))
    records: list[LayerRecord] = []
    prev: LayerRecord | None = None
    for _ in range(count):
        prev = _decode_record(r, prev)
        records.append(prev)
    if r.remaining:
        raise ValueError(f"header has {r.remaining} unexpected trailing bytes")
    return records


def _decode_record(r: Reader, prev: LayerRecord | None) -> LayerRecord:
    before = prev.name.encode("utf-8") if prev is not None else b""
    shared = r.varint(limit=len(before))
    suffix = r.take(r.varint(limit=spec.MAX_NAME_NBYTES - shared))
    try:
        name = (before[:shared] + bytes(suffix)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("a layer name is not valid UTF-8") from exc
    code = r.u8()
    if code & SAME_SHAPE:
        if prev is None:
            raise ValueError(f"layer {name!r} repeats the shape of no earlier layer")
        shape = prev.shape
    else:
        ndim = r.u8()
        if ndim > spec.MAX_NDIM:
            raise ValueError(f"layer {name!r} claims {ndim} dimensions")
        shape = tuple(r.varint(limit=spec.MAX_ELEMENTS) for _ in range(ndim))
        if math.prod(shape) > spec.MAX_ELEMENTS:
            raise ValueError(f"layer {name!r} claims an absurd shape {shape}")
    code &= ~SAME_SHAPE
    if code not in spec.DTYPE_NAMES:
        raise ValueError(f"layer {name!r} has an unknown dtype code {code}")
    method = r.u8()
    if method >= spec.FIRST_REGISTERED:
        return _decode_coded(r, name, spec.DTYPE_NAMES.get(code), shape, method)
    if method not in spec.METHODS_V2:
        raise ValueError(f"layer {name!r} uses an unknown method {method}")
    payload, crc = r.varint(), r.u32()
    stored = {v: k for k, v in spec.STORED_METHODS.items()}.get(method)
    record = LayerRecord(name, spec.DTYPE_NAMES[code], shape, payload, crc, None, stored)
    if stored is not None and record.dtype not in ("float32", "float64"):
        raise ValueError(f"layer {name!r}: a {record.dtype} layer cannot be stored as {stored}")
    if method != spec.DEEP:
        if payload != record.size * spec.DTYPES[record.stored_dtype][1]:
            raise ValueError(f"layer {name!r}: stored size does not match its shape")
        return record
    deep = decode_deep(r, name, record.size, payload)
    return LayerRecord(name, record.dtype, shape, payload, crc, deep)


def _decode_coded(r: Reader, name: str, dtype: str | None, shape: tuple[int, ...],
                  code: int) -> LayerRecord:
    """A record of a registered method (code >= 16): payload length, CRC, then
    ``varint(len(params)) + params`` (its method checks them: ``verify.check_records``)."""
    from inspector.core.stages import registry

    if dtype is None:
        raise ValueError(f"layer {name!r} has an unknown dtype")
    m = registry.method_by_code(code)
    if m is None:
        raise ValueError(f"layer {name!r} uses method code {code}, which this inspector "
                         "does not know (a newer writer?)")
    if dtype not in ("float32", "float64", "float16", "bfloat16"):
        raise ValueError(f"layer {name!r}: a {dtype} layer cannot be coded by {m.name}")
    payload, crc = r.varint(), r.u32()
    params = bytes(r.take(r.varint(limit=r.remaining)))
    if math.prod(shape) == 0:
        raise ValueError(f"layer {name!r} is coded by {m.name} but has a zero dimension")
    return LayerRecord(name, dtype, shape, payload, crc, coded=Coded(m.name, code, params))
