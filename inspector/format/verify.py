"""Checks of a whole compressed file before anything is decoded or shown.

A header can be internally consistent and still disagree with its payloads, or ask for more
memory than the machine has once its layers are summed. :func:`check_records` compares the
records with each other and with the memory budget (and has each registered method check its
own record: :func:`check_params`); :func:`check_deep_payload` compares one
deep layer's record with its payload: the codebook, code tables and the two streams must fill
the payload exactly, and the symbols must describe exactly ``survivors`` weights inside the
layer. Both raise ValueError with the problem; the container turns it into one InputError line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the header module loads numba; the io readers import this one for the budget
    from inspector.format.header import LayerRecord

#: Share of physical memory one file may decode to, all its layers summed.
MEMORY_FRACTION = 0.5
# Deep layers decode to a float32 buffer, then (for other dtypes) a cast copy of it.
_DEEP_BYTES_PER_VALUE = 4


def memory_nbytes() -> int:
    """Physical memory of this machine in bytes (unbounded where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 1 << 62


def memory_budget() -> int:
    """Bytes a whole model may take once read or decoded: :data:`MEMORY_FRACTION` of memory."""
    return int(memory_nbytes() * MEMORY_FRACTION)


def decoded_nbytes(record: LayerRecord) -> int:
    """Bytes the decoded layer takes in memory (bfloat16 is held as float32)."""
    itemsize = 4 if record.dtype == "bfloat16" else record.itemsize
    if not record.lossy:
        return record.size * itemsize
    return record.size * max(itemsize, _DEEP_BYTES_PER_VALUE)


def check_records(records: Sequence[LayerRecord], budget: int) -> None:
    """Refuse an empty file, duplicate names and a file decoding to more than ``budget``."""
    if not records:
        raise ValueError("holds no layers")
    seen: set[str] = set()
    for r in records:
        if r.name in seen:
            raise ValueError(f"two layers are named {r.name!r}")
        seen.add(r.name)
        if r.coded is not None:
            check_params(r)
    total = sum(decoded_nbytes(r) for r in records)
    # the largest deep layer also needs its float32 scratch while it is decoded
    scratch = max((r.size * _DEEP_BYTES_PER_VALUE for r in records if r.lossy), default=0)
    if total + scratch > budget:
        raise ValueError(
            f"its {len(records)} layers decode to {total / 2**30:,.2f} GiB, more than the "
            f"{budget / 2**30:,.2f} GiB memory budget (half this machine's memory)"
        )


def check_params(record: LayerRecord) -> None:
    """A registered method's record, checked by the method itself before any payload is read
    (``Method.check``: its parameters against the payload length and the shape)."""
    from inspector.core.stages import registry

    assert record.coded is not None
    try:
        registry.method(record.coded.method).check(
            record.coded.params, record.payload_nbytes, record.shape)
    except ValueError as exc:
        raise ValueError(f"layer {record.name!r} ({record.coded.method}): {exc}") from None


def decode_lossy(record: LayerRecord, payload: bytes | memoryview) -> np.ndarray:
    """The flat float32 values of a deep or registered-method layer (ValueError if bad)."""
    if record.coded is not None:
        from inspector.core.stages import registry

        method = registry.method(record.coded.method)
        values = method.decode(record.coded.params, payload, record.shape)
        if values.size != record.size:
            raise ValueError("its payload does not decode to the layer's shape")
        return values
    from inspector.core.decode import decode_payload

    assert record.deep is not None
    return decode_payload(payload, record.deep.layout)


def check_payload(record: LayerRecord, payload: bytes | memoryview) -> None:
    """Refuse a lossy layer whose payload does not hold exactly what its record says: a deep
    one by its streams, one of another method by decoding it (its method raises ValueError)."""
    if record.coded is None:
        check_deep_payload(record, payload)
        return
    decode_lossy(record, payload)


def check_deep_payload(record: LayerRecord, payload: bytes | memoryview) -> None:
    """Refuse a deep layer whose payload does not hold exactly what its record says."""
    # numba loads with the decoders, only when a .dcz is checked (readers import this module)
    from inspector.core import huffman_table
    from inspector.core.streams import decode_stream, fixed_width

    deep = record.deep
    assert deep is not None
    lay = deep.layout
    if _beyond_version_1(lay):
        _check_by_decoding(record, payload)
        return
    buf = memoryview(payload)
    k, walpha = lay.codebook_size, lay.codebook_size + lay.has_filler
    if 4 * k > len(buf):
        raise ValueError("its codebook runs past the end of the layer")
    codebook = np.frombuffer(buf[: 4 * k], dtype="<f4")
    if not np.isfinite(codebook).all():
        raise ValueError("its codebook holds a value that is not finite")
    offset = 4 * k
    wlengths = glengths = None
    if lay.weight_huffman:
        wlengths, offset = huffman_table.decode_table(buf, offset)
        if wlengths.size > walpha:
            raise ValueError("its weight code table is larger than the codebook")
    if lay.gap_huffman:
        glengths, offset = huffman_table.decode_table(buf, offset)
        if glengths.size > 1 << lay.index_bits:
            raise ValueError("its gap code table is larger than the index alphabet")
    gap_offset = offset + lay.weight_nbytes
    if gap_offset > len(buf):
        raise ValueError("its weight codes run past the end of the layer")
    wsym = decode_stream(buf[:gap_offset], offset, lay.entries, fixed_width(walpha), wlengths)
    gsym = decode_stream(buf, gap_offset, lay.entries, lay.index_bits, glengths)
    if _code_nbytes(wsym, fixed_width(walpha), wlengths) != lay.weight_nbytes:
        raise ValueError("its weight stream length disagrees with the record")
    if gap_offset + _code_nbytes(gsym, lay.index_bits, glengths) != len(buf):
        raise ValueError("its gap stream does not end where the layer's payload ends")
    _check_symbols(record, wsym, gsym)


def _beyond_version_1(lay: object) -> bool:
    """Whether a layout uses a version-2 form (position codes, fp16 or coded codebooks,
    constant streams) that the version-1 stream walk below does not know."""
    from inspector.core.positions import GAPS

    return bool(
        getattr(lay, "positions", GAPS) != GAPS or getattr(lay, "codebook_half", False)
        or getattr(lay, "codebook_coded", False) or getattr(lay, "weight_constant", False)
        or getattr(lay, "gap_constant", False)
    )  # fmt: skip


def _check_by_decoding(record: LayerRecord, payload: bytes | memoryview) -> None:
    """Version-2 forms: the decoder itself checks every stream against the record (it raises
    ValueError on any disagreement); then the values must be finite like a codebook's."""
    from inspector.core.decode import decode_payload

    deep = record.deep
    assert deep is not None
    values = decode_payload(payload, deep.layout)
    if values.size != record.size:
        raise ValueError("its streams do not decode to the layer's shape")
    if not np.isfinite(values).all():
        raise ValueError("its codebook holds a value that is not finite")


def _code_nbytes(symbols: np.ndarray, width: int, lengths: np.ndarray | None) -> int:
    """Bytes the encoder writes for ``symbols``: whole bytes of fixed-width or Huffman codes."""
    if lengths is None:
        return (symbols.size * width + 7) // 8
    bits = int(lengths.astype(np.int64)[symbols].sum()) if symbols.size else 0
    return (bits + 7) // 8


def _check_symbols(record: LayerRecord, wsym: np.ndarray, gsym: np.ndarray) -> None:
    """Survivor count, filler codes and positions as the decoder will find them."""
    deep = record.deep
    assert deep is not None
    lay = deep.layout
    k, mask = lay.codebook_size, (1 << lay.index_bits) - 1
    fillers = wsym == k if lay.has_filler else np.zeros(wsym.size, dtype=bool)
    if wsym.size and int(wsym.max()) > (k if lay.has_filler else k - 1):
        raise ValueError("a weight symbol lies outside the codebook")
    nfill = int(np.count_nonzero(fillers))
    if lay.has_filler and nfill == 0:
        raise ValueError("its record announces filler entries the stream does not hold")
    if lay.entries - nfill != deep.survivors:
        kept = lay.entries - nfill
        raise ValueError(f"its record counts {deep.survivors:,} kept weights, its streams {kept:,}")
    if nfill and not (gsym[fillers] == mask).all():
        raise ValueError("a filler entry carries a gap other than the largest")
    last = int(gsym.astype(np.int64).sum()) + wsym.size - 1  # position of the last entry
    if last >= record.size or (record.size - 1 - last) >> lay.index_bits:
        raise ValueError("its entries do not span the layer's shape")
