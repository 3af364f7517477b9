"""The version-2 container header: compact layer records (docs/format.md, "Header, version 2").

Names share their prefix with the previous record's, a shape equal to the previous record's is
one flag bit, and a deep record packs its settings into a few bytes (float32 numbers where they
are exact). ``decode_header`` reads either version.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

from inspector.core.kernels import TIES_ALL
from inspector.core.layer import Layout
from inspector.core.positions import DENSE, GAPS, HOLES, NAMES
from inspector.core.prune import Mask
from inspector.core.settings import LayerSettings
from inspector.core.streams import MODES
from inspector.format import header as v1
from inspector.format import spec
from inspector.format.header import Deep, LayerRecord
from inspector.format.wire import Reader, varint

_POLICY_NAMES = {v: k for k, v in spec.POLICY_CODES.items()}
_INIT_NAMES = {v: k for k, v in spec.INIT_CODES.items()}
SAME_SHAPE = 0x80  # dtype byte: the shape is the previous record's

# flag bits of a version-2 deep record
F2_HUFFMAN = 1  # the setting asked for Huffman coding
F2_STD_NONZERO = 2  # std policy over nonzero weights
F2_FILLER = 4  # the weight alphabet has the filler symbol
F2_HALF_CODEBOOK = 8  # the codebook is float16
F2_VALUE_F32 = 16  # the policy's value is float32 (else float64)
F2_THRESHOLD_F32 = 32  # the threshold is float32 (else float64)
F2_CODED_CODEBOOK = 64  # the float16 codebook is delta-coded


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
    out += [bytes([method]), varint(r.payload_nbytes)]
    out.append(struct.pack("<I", r.crc))
    if r.deep is not None:
        out.append(_encode_deep(r.deep))
    return b"".join(out)


def _shared_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _as_f32(x: float) -> bool:
    with np.errstate(over="ignore"):
        return float(np.float32(x)) == x or math.isnan(x)


def _encode_deep(d: Deep) -> bytes:
    s, lay = d.settings, d.layout
    vf32, tf32 = _as_f32(s.value), _as_f32(d.mask.threshold)
    flags = (
        F2_HUFFMAN * s.huffman
        | F2_STD_NONZERO * (s.std_of == "nonzero")
        | F2_FILLER * lay.has_filler
        | F2_HALF_CODEBOOK * lay.codebook_half
        | F2_VALUE_F32 * vf32
        | F2_THRESHOLD_F32 * tf32
        | F2_CODED_CODEBOOK * lay.codebook_coded
    )
    wmode = 1 if lay.weight_huffman else 2 if lay.weight_constant else 0
    gmode = 1 if lay.gap_huffman else 2 if lay.gap_constant else 0
    ties = 0 if d.mask.ties == TIES_ALL else d.mask.ties + 1
    out = [
        bytes([flags, wmode | gmode << 2 | lay.positions << 4]),
        bytes([spec.POLICY_CODES[s.policy] | spec.INIT_CODES[s.init] << 2]),
        bytes([(s.bits - 1) | (s.index_bits - 1) << 3]),
        struct.pack("<f" if vf32 else "<d", s.value),
        struct.pack("<f" if tf32 else "<d", d.mask.threshold),
        *(varint(v) for v in (ties, s.seed, lay.codebook_size, lay.entries, d.survivors,
                              lay.weight_nbytes)),
    ]
    if lay.positions == HOLES:
        out.append(varint(lay.position_entries))
    return b"".join(out)


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
    return LayerRecord(name, record.dtype, shape, payload, crc, _decode_deep(r, record))


def _decode_deep(r: Reader, rec: LayerRecord) -> Deep:
    name = rec.name
    flags, modes, codes, widths = (r.u8() for _ in range(4))
    (value,) = struct.unpack("<f", r.take(4)) if flags & F2_VALUE_F32 else (r.f64(),)
    (threshold,) = struct.unpack("<f", r.take(4)) if flags & F2_THRESHOLD_F32 else (r.f64(),)
    ties, seed = r.varint(), r.varint(limit=2**32 - 1)
    k, entries, survivors, weight_nbytes = (r.varint() for _ in range(4))
    wmode, gmode, positions = modes & 3, modes >> 2 & 3, modes >> 4
    holes = r.varint(limit=rec.size) if positions == HOLES else 0
    coded = bool(flags & F2_CODED_CODEBOOK)
    unknown = flags >= 2 * F2_CODED_CODEBOOK or (coded and not flags & F2_HALF_CODEBOOK)
    if unknown or wmode not in MODES or gmode not in MODES:
        raise ValueError(f"layer {name!r} has unknown flag bits {flags:#x}/{modes:#x}")
    if positions not in NAMES or codes >> 4 or (codes & 3) not in _POLICY_NAMES:
        raise ValueError(f"layer {name!r} has unknown settings codes")
    bits, index_bits = (widths & 7) + 1, (widths >> 3) + 1
    try:
        settings = LayerSettings(
            policy=_POLICY_NAMES[codes & 3], value=value, bits=bits,
            init=_INIT_NAMES[codes >> 2 & 3], index_bits=index_bits,
            huffman=bool(flags & F2_HUFFMAN),
            std_of="nonzero" if flags & F2_STD_NONZERO else "all", seed=seed,
        )
    except Exception as exc:
        raise ValueError(f"layer {name!r} has invalid settings: {exc}") from exc
    _check_counts(rec, positions, k, entries, survivors, weight_nbytes, index_bits, flags, holes)
    layout = Layout(
        size=rec.size, codebook_size=k, has_filler=bool(flags & F2_FILLER),
        index_bits=index_bits, entries=entries, weight_huffman=wmode == 1,
        gap_huffman=gmode == 1, weight_nbytes=weight_nbytes, weight_constant=wmode == 2,
        gap_constant=gmode == 2, positions=positions, position_entries=holes,
        codebook_half=bool(flags & F2_HALF_CODEBOOK), codebook_coded=coded,
    )
    return Deep(settings, Mask(threshold, TIES_ALL if ties == 0 else ties - 1), survivors, layout)


def _check_counts(
    rec: LayerRecord, positions: int, k: int, entries: int, survivors: int,
    weight_nbytes: int, index_bits: int, flags: int, holes: int,
) -> None:
    """The stream sizes must fit the layer, checked before anything is allocated."""
    bad = k > spec.MAX_CODEBOOK or weight_nbytes > rec.payload_nbytes or entries > rec.size
    if positions == GAPS:
        # each entry moves at least one position on; the entries end within 2**b of the end
        bad = bad or survivors > entries or rec.size > (entries + 1) << index_bits
    else:
        bad = bad or survivors != entries or flags & F2_FILLER
        bad = bad or (positions == DENSE and entries != rec.size)
        bad = bad or (positions == HOLES and holes < rec.size - entries)
    if bad:
        raise ValueError(f"layer {rec.name!r} has inconsistent stream sizes")
