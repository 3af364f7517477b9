"""Layer records and the container header: encoding, and decoding with every field checked."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from inspector.core.kernels import TIES_ALL
from inspector.core.layer import Layout
from inspector.core.prune import Mask
from inspector.core.settings import LayerSettings
from inspector.core.stages.deep_record import Deep
from inspector.format import spec
from inspector.format.wire import Reader, varint

_POLICY_NAMES = {v: k for k, v in spec.POLICY_CODES.items()}
_INIT_NAMES = {v: k for k, v in spec.INIT_CODES.items()}


@dataclass(frozen=True, slots=True)
class Coded:
    """The record part of a layer coded by a registered method other than deep
    (:mod:`inspector.core.stages.registry`): its name, record code and own parameters."""

    method: str
    code: int
    params: bytes


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """One layer's entry in the header. ``deep`` and ``coded`` are None for a layer stored
    losslessly; at most one is set (a deep layer, or one of another registered method)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    payload_nbytes: int
    crc: int
    deep: Deep | None = None
    stored: str | None = None  # a raw layer held at lower precision: "float16" or "bfloat16"
    coded: Coded | None = None

    @property
    def lossy(self) -> bool:
        """Whether the payload is coded by a method (deep or another), not raw elements."""
        return self.deep is not None or self.coded is not None

    @property
    def method(self) -> str:
        """The record's method: ``"raw"``, ``"deep"`` or a registered method's name."""
        if self.coded is not None:
            return self.coded.method
        return "raw" if self.deep is None else "deep"

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return spec.DTYPES[self.dtype][1]

    @property
    def stored_dtype(self) -> str:
        """The dtype of a raw payload's elements."""
        return self.stored or self.dtype


def encode_header(records: list[LayerRecord] | tuple[LayerRecord, ...]) -> bytes:
    """The header bytes (without prefix and CRC) of ``records``."""
    out = [varint(len(records))]
    for r in records:
        name = r.name.encode("utf-8")
        out += [varint(len(name)), name, bytes([spec.DTYPES[r.dtype][0], len(r.shape)])]
        out += [varint(d) for d in r.shape]
        if r.coded is not None:
            raise ValueError(f"layer {r.name!r}: version 1 has no {r.coded.method} records")
        out += [bytes([spec.RAW if r.deep is None else spec.DEEP]), varint(r.payload_nbytes)]
        out.append(struct.pack("<I", r.crc))
        if r.deep is not None:
            out.append(_encode_deep(r.deep))
    return b"".join(out)


def _encode_deep(d: Deep) -> bytes:
    s, lay = d.settings, d.layout
    flags = (
        spec.F_HUFFMAN * s.huffman
        | spec.F_STD_NONZERO * (s.std_of == "nonzero")
        | spec.F_WEIGHT_HUFFMAN * lay.weight_huffman
        | spec.F_GAP_HUFFMAN * lay.gap_huffman
        | spec.F_FILLER * lay.has_filler
    )
    ties = 0 if d.mask.ties == TIES_ALL else d.mask.ties + 1
    return b"".join(
        [
            bytes([spec.POLICY_CODES[s.policy], spec.INIT_CODES[s.init], s.bits, s.index_bits]),
            bytes([flags]),
            struct.pack("<dd", s.value, d.mask.threshold),
            varint(ties),
            varint(s.seed),
            varint(lay.codebook_size),
            varint(lay.entries),
            varint(d.survivors),
            varint(lay.weight_nbytes),
        ]
    )


def decode_header(buf: bytes | memoryview) -> list[LayerRecord]:
    """Records from header bytes; ValueError names the first field that makes no sense."""
    r = Reader(buf)
    count = r.varint(limit=len(r.buf))
    records = [_decode_record(r) for _ in range(count)]
    if r.remaining:
        raise ValueError(f"header has {r.remaining} unexpected trailing bytes")
    return records


def _decode_record(r: Reader) -> LayerRecord:
    name_bytes = r.take(r.varint(limit=spec.MAX_NAME_NBYTES))
    try:
        name = bytes(name_bytes).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("a layer name is not valid UTF-8") from exc
    code, ndim = r.u8(), r.u8()
    if code not in spec.DTYPE_NAMES:
        raise ValueError(f"layer {name!r} has an unknown dtype code {code}")
    if ndim > spec.MAX_NDIM:
        raise ValueError(f"layer {name!r} claims {ndim} dimensions")
    shape = tuple(r.varint(limit=spec.MAX_ELEMENTS) for _ in range(ndim))
    if math.prod(shape) > spec.MAX_ELEMENTS:
        raise ValueError(f"layer {name!r} claims an absurd shape {shape}")
    method = r.u8()
    if method not in spec.METHODS:
        raise ValueError(f"layer {name!r} uses an unknown method {method}")
    payload, crc = r.varint(), r.u32()
    record = LayerRecord(name, spec.DTYPE_NAMES[code], shape, payload, crc)
    if method == spec.RAW:
        if payload != record.size * record.itemsize:
            raise ValueError(f"layer {name!r}: stored size does not match its shape")
        return record
    if record.size == 0:  # the writer stores an empty tensor as is, never deep-compressed
        raise ValueError(f"layer {name!r} is deep-compressed but has a zero dimension {shape}")
    deep = _decode_deep(r, name, record)
    return LayerRecord(name, record.dtype, shape, payload, crc, deep)


def _decode_deep(r: Reader, name: str, rec: LayerRecord) -> Deep:
    policy, init, bits, index_bits, flags = (r.u8() for _ in range(5))
    value, threshold = struct.unpack("<dd", r.take(16))
    ties, seed = r.varint(), r.varint(limit=2**32 - 1)
    k, entries, survivors, weight_nbytes = (r.varint() for _ in range(4))
    if flags >= 2 * spec.F_FILLER:
        raise ValueError(f"layer {name!r} has unknown flag bits {flags:#x}")
    if policy not in _POLICY_NAMES or init not in _INIT_NAMES:
        raise ValueError(f"layer {name!r} has unknown settings codes")
    try:
        settings = LayerSettings(
            policy=_POLICY_NAMES[policy],
            value=value,
            bits=bits,
            init=_INIT_NAMES[init],
            index_bits=index_bits,
            huffman=bool(flags & spec.F_HUFFMAN),
            std_of="nonzero" if flags & spec.F_STD_NONZERO else "all",
            seed=seed,
        )
    except Exception as exc:
        raise ValueError(f"layer {name!r} has invalid settings: {exc}") from exc
    if k > spec.MAX_CODEBOOK or survivors > entries or weight_nbytes > rec.payload_nbytes:
        raise ValueError(f"layer {name!r} has inconsistent stream sizes")
    # every entry costs at least one bit of gap code; the entries end within 2**b of the end
    if entries > 8 * rec.payload_nbytes or rec.size > (entries + 1) << index_bits:
        raise ValueError(f"layer {name!r} claims more weights than its data can hold")
    _check_spans(name, rec.payload_nbytes, k, entries, index_bits, flags, weight_nbytes)
    layout = Layout(
        size=rec.size,
        codebook_size=k,
        has_filler=bool(flags & spec.F_FILLER),
        index_bits=index_bits,
        entries=entries,
        weight_huffman=bool(flags & spec.F_WEIGHT_HUFFMAN),
        gap_huffman=bool(flags & spec.F_GAP_HUFFMAN),
        weight_nbytes=weight_nbytes,
    )
    mask = Mask(threshold, TIES_ALL if ties == 0 else ties - 1)
    return Deep(settings, mask, survivors, layout)


def _check_spans(
    name: str, payload: int, k: int, entries: int, index_bits: int, flags: int, weight: int
) -> None:
    """The stream lengths a record gives must fit its payload: a fixed-width stream has an
    exact length, a Huffman one at least a bit per symbol (the payload check is exact)."""
    walpha = k + bool(flags & spec.F_FILLER)
    fixed_weight = (entries * max(0, (walpha - 1).bit_length()) + 7) // 8
    fixed_gap = (entries * index_bits + 7) // 8
    weight_huffman, gap_huffman = flags & spec.F_WEIGHT_HUFFMAN, flags & spec.F_GAP_HUFFMAN
    rest = payload - 4 * k - weight  # gap tables and codes, and the weight table
    if rest < 0 or (not weight_huffman and weight != fixed_weight):
        raise ValueError(f"layer {name!r}: its weight stream does not fit its payload")
    if weight_huffman and weight < (entries + 7) // 8:
        raise ValueError(f"layer {name!r}: its weight stream is too short for its entries")
    if not (weight_huffman or gap_huffman) and rest != fixed_gap:
        raise ValueError(f"layer {name!r}: its gap stream does not fill its payload")
    if rest < ((entries + 7) // 8 if gap_huffman else fixed_gap):
        raise ValueError(f"layer {name!r}: its gap stream is too short for its entries")
