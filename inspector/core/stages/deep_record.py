"""The version-2 record of a deep-compressed layer (docs/format.md, "A deep record"): its
settings, mask and decode layout in a few bytes. Moved here from the container's header so
the ``deep`` method (:mod:`.deep`) can use it as its record parameters, byte for byte.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from inspector.core.decode import Layout
from inspector.core.kernels import TIES_ALL
from inspector.core.positions import DENSE, GAPS, HOLES, NAMES
from inspector.core.prune import Mask
from inspector.core.settings import LayerSettings
from inspector.core.streams import MODES
from inspector.core.wire import Reader, varint

# The codes of docs/format.md (format.spec has the same; tests/format checks they agree).
POLICY_CODES = {"std": 0, "sparsity": 1, "threshold": 2}
INIT_CODES = {"optimal": 0, "linear": 1, "density": 2, "random": 3}
MAX_CODEBOOK = 256
_POLICY_NAMES = {v: k for k, v in POLICY_CODES.items()}
_INIT_NAMES = {v: k for k, v in INIT_CODES.items()}

# flag bits of a version-2 deep record
F2_HUFFMAN = 1  # the setting asked for Huffman coding
F2_STD_NONZERO = 2  # std policy over nonzero weights
F2_FILLER = 4  # the weight alphabet has the filler symbol
F2_HALF_CODEBOOK = 8  # the codebook is float16
F2_VALUE_F32 = 16  # the policy's value is float32 (else float64)
F2_THRESHOLD_F32 = 32  # the threshold is float32 (else float64)
F2_CODED_CODEBOOK = 64  # the float16 codebook is delta-coded


@dataclass(frozen=True, slots=True)
class Deep:
    """The record part of a deep-compressed layer: settings used, mask, and decode layout."""

    settings: LayerSettings
    mask: Mask
    survivors: int
    layout: Layout


def _as_f32(x: float) -> bool:
    with np.errstate(over="ignore"):
        return float(np.float32(x)) == x or math.isnan(x)


def encode_deep(d: Deep) -> bytes:
    """The version-2 deep record's bytes (after the generic record fields)."""
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
        bytes([POLICY_CODES[s.policy] | INIT_CODES[s.init] << 2]),
        bytes([(s.bits - 1) | (s.index_bits - 1) << 3]),
        struct.pack("<f" if vf32 else "<d", s.value),
        struct.pack("<f" if tf32 else "<d", d.mask.threshold),
        *(varint(v) for v in (ties, s.seed, lay.codebook_size, lay.entries, d.survivors,
                              lay.weight_nbytes)),
    ]
    if lay.positions == HOLES:
        out.append(varint(lay.position_entries))
    return b"".join(out)


def decode_deep(r: Reader, name: str, size: int, payload_nbytes: int,
                check: bool = True) -> Deep:
    """A deep record read from ``r`` for layer ``name`` of ``size`` elements; ValueError
    names the first field that makes no sense (checked before anything is allocated).
    ``check=False`` skips the counts' checks against ``size`` and the payload (a record
    already checked, read again to describe it)."""
    flags, modes, codes, widths = (r.u8() for _ in range(4))
    (value,) = struct.unpack("<f", r.take(4)) if flags & F2_VALUE_F32 else (r.f64(),)
    (threshold,) = struct.unpack("<f", r.take(4)) if flags & F2_THRESHOLD_F32 else (r.f64(),)
    ties, seed = r.varint(), r.varint(limit=2**32 - 1)
    k, entries, survivors, weight_nbytes = (r.varint() for _ in range(4))
    wmode, gmode, positions = modes & 3, modes >> 2 & 3, modes >> 4
    holes = r.varint(limit=size if check else 1 << 62) if positions == HOLES else 0
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
    bad = k > MAX_CODEBOOK or weight_nbytes > payload_nbytes or entries > size
    if positions == GAPS:
        # each entry moves at least one position on; the entries end within 2**b of the end
        bad = bad or survivors > entries or size > (entries + 1) << index_bits
    else:
        bad = bad or survivors != entries or flags & F2_FILLER
        bad = bad or (positions == DENSE and entries != size)
        bad = bad or (positions == HOLES and holes < size - entries)
    if bad and check:
        raise ValueError(f"layer {name!r} has inconsistent stream sizes")
    layout = Layout(
        size=size, codebook_size=k, has_filler=bool(flags & F2_FILLER),
        index_bits=index_bits, entries=entries, weight_huffman=wmode == 1,
        gap_huffman=gmode == 1, weight_nbytes=weight_nbytes, weight_constant=wmode == 2,
        gap_constant=gmode == 2, positions=positions, position_entries=holes,
        codebook_half=bool(flags & F2_HALF_CODEBOOK), codebook_coded=coded,
    )
    return Deep(settings, Mask(threshold, TIES_ALL if ties == 0 else ties - 1), survivors, layout)
