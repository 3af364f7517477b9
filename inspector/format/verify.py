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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the header module loads numba; the io readers import this one for the budget
    from inspector.format.header import LayerRecord

#: Share of physical memory one file may decode to, all its layers summed.
MEMORY_FRACTION = 0.5
# Deep layers decode to a float32 buffer, then (for other dtypes) a cast copy of it.
_DEEP_BYTES_PER_VALUE = 4


@dataclass(frozen=True, slots=True)
class Symbols:
    """A deep layer's checked streams: the float32 codebook, the weight symbols, and the
    position stream's symbols (gap codes for P = gaps, hole codes for holes, the packed bitmap
    bytes for bitmap, nothing for dense)."""

    codebook: np.ndarray
    weights: np.ndarray
    positions: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.codebook.nbytes + self.weights.nbytes + self.positions.nbytes


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


def check_payload(record: LayerRecord, payload: bytes | memoryview) -> Symbols | np.ndarray:
    """Refuse a lossy layer whose payload does not hold exactly what its record says: a deep
    one by its streams, one of another method by decoding it (its method raises ValueError).
    Return what the check decoded (a deep layer's symbols, another method's values), which the
    container keeps for the read that follows."""
    if record.coded is None:
        return check_deep_payload(record, payload)
    return decode_lossy(record, payload)


def check_deep_payload(record: LayerRecord, payload: bytes | memoryview) -> Symbols:
    """Refuse a deep layer whose payload does not hold exactly what its record says; return
    what the walk decoded.

    One walk over the streams, for every layout of either version: the codebook is finite, the
    code tables fit their alphabets, each stream is exactly the whole bytes its codes need and
    together they fill the payload, and the symbols describe exactly ``survivors`` weights
    inside the layer. It decodes the streams but never builds the layer's values; the
    container keeps the symbols so that a read after it builds the values from them
    (:mod:`inspector.format.layer_values`) instead of decoding the streams a second time.
    """
    # numba loads with the decoders, only when a .dcz is checked (readers import this module)
    from inspector.core.codebook import read_codebook
    from inspector.core.positions import BITMAP, DENSE, GAPS
    from inspector.core.streams import decode_stream, fixed_width

    deep = record.deep
    assert deep is not None
    lay = deep.layout
    buf = memoryview(payload)
    k, walpha = lay.codebook_size, lay.codebook_size + lay.has_filler
    positions = lay.positions
    codebook, offset = read_codebook(buf, k, lay.codebook_half, lay.codebook_coded)
    if not np.isfinite(codebook).all():
        raise ValueError("its codebook holds a value that is not finite")
    coded = positions not in (BITMAP, DENSE)  # the position codes have a stream (and a table)
    wlengths, wconst, offset = _table_slot(buf, offset, lay.weight_huffman,
                                           lay.weight_constant, walpha, "weight")
    glengths, gconst, offset = _table_slot(buf, offset, coded and lay.gap_huffman,
                                           coded and lay.gap_constant, 1 << lay.index_bits, "gap")
    gap_offset = offset + lay.weight_nbytes
    if gap_offset > len(buf):
        raise ValueError("its weight codes run past the end of the layer")
    width = fixed_width(walpha)
    wsym = decode_stream(buf[:gap_offset], offset, lay.entries, width, wlengths, wconst)
    if _code_nbytes(wsym, width, wlengths, wconst) != lay.weight_nbytes:
        raise ValueError("its weight stream length disagrees with the record")
    if positions == GAPS:
        gsym = decode_stream(buf, gap_offset, lay.entries, lay.index_bits, glengths, gconst)
        end = gap_offset + _code_nbytes(gsym, lay.index_bits, glengths, gconst)
        if end != len(buf):
            raise ValueError("its gap stream does not end where the layer's payload ends")
        _check_gap_symbols(record, wsym, gsym)
        return Symbols(codebook, wsym, gsym)
    if wsym.size and int(wsym.max()) >= k:
        raise ValueError("a weight symbol lies outside the codebook")
    if positions == DENSE:
        psym, end = np.zeros(0, np.uint32), gap_offset
    elif positions == BITMAP:
        psym = _check_bitmap(record, buf, gap_offset)
        end = gap_offset + psym.size
    else:
        psym = decode_stream(buf, gap_offset, lay.position_entries, lay.index_bits, glengths,
                             gconst)
        end = gap_offset + _code_nbytes(psym, lay.index_bits, glengths, gconst)
        _check_holes(record, psym)
    if end != len(buf):
        raise ValueError("its position codes do not end where the layer's payload ends")
    return Symbols(codebook, wsym, psym)


def _table_slot(
    buf: memoryview, offset: int, huffman: bool, constant: bool, alphabet: int, what: str
) -> tuple[np.ndarray | None, int, int]:
    """A stream's table slot: (Huffman code lengths or None, constant symbol or -1, offset)."""
    from inspector.core import huffman_table
    from inspector.core.streams import read_constant

    if huffman:
        lengths, offset = huffman_table.decode_table(buf, offset)
        if lengths.size > alphabet:
            raise ValueError(f"its {what} code table is larger than its alphabet")
        return lengths, -1, offset
    if constant:
        symbol, offset = read_constant(buf, offset, alphabet)
        return None, symbol, offset
    return None, -1, offset


def _code_nbytes(symbols: np.ndarray, width: int, lengths: np.ndarray | None, constant: int) -> int:
    """Bytes the encoder writes for ``symbols``: whole bytes of fixed-width or Huffman codes,
    none for a constant stream."""
    if constant >= 0 or not symbols.size:
        return 0
    if lengths is None:
        return (symbols.size * width + 7) // 8
    # code lengths are at most 24 bits: a byte per symbol, summed wide
    return (int(lengths.astype(np.uint8)[symbols].sum(dtype=np.int64)) + 7) // 8


def _check_gap_symbols(record: LayerRecord, wsym: np.ndarray, gsym: np.ndarray) -> None:
    """P = gaps: survivor count, filler codes and positions as the decoder will find them."""
    deep = record.deep
    assert deep is not None
    lay = deep.layout
    k, mask = lay.codebook_size, (1 << lay.index_bits) - 1
    if wsym.size and int(wsym.max()) > (k if lay.has_filler else k - 1):
        raise ValueError("a weight symbol lies outside the codebook")
    fillers = wsym == k if lay.has_filler else None
    nfill = 0 if fillers is None else int(np.count_nonzero(fillers))
    if lay.has_filler and nfill == 0:
        raise ValueError("its record announces filler entries the stream does not hold")
    if lay.entries - nfill != deep.survivors:
        kept = lay.entries - nfill
        raise ValueError(f"its record counts {deep.survivors:,} kept weights, its streams {kept:,}")
    if nfill and not (gsym[fillers] == mask).all():
        raise ValueError("a filler entry carries a gap other than the largest")
    last = int(gsym.sum(dtype=np.int64)) + wsym.size - 1  # position of the last entry
    if last >= record.size or (record.size - 1 - last) >> lay.index_bits:
        raise ValueError("its entries do not span the layer's shape")


def _check_bitmap(record: LayerRecord, buf: memoryview, offset: int) -> np.ndarray:
    """P = bitmap: exactly ``survivors`` of the layer's bits set (padding bits not counted);
    returns the bitmap's bytes (a copy: the payload may be a reused buffer)."""
    deep = record.deep
    assert deep is not None
    size, nbytes = record.size, (record.size + 7) // 8
    if offset + nbytes > len(buf):
        raise ValueError("its position bitmap runs past the end of the layer")
    bits = np.frombuffer(buf, np.uint8, nbytes, offset)
    kept = int(np.bitwise_count(bits).sum(dtype=np.int64))
    if size % 8:  # the last byte's low bits are padding, not weights
        kept -= int(np.bitwise_count(bits[-1] & ((1 << (8 - size % 8)) - 1)))
    if kept != deep.survivors:
        raise ValueError(f"its record counts {deep.survivors:,} kept weights, its bitmap {kept:,}")
    return bits.copy()


def _check_holes(record: LayerRecord, hsym: np.ndarray) -> None:
    """P = holes: exactly ``size - survivors`` holes, the last inside the layer, no trailing
    skip (the positions themselves are not listed)."""
    deep = record.deep
    assert deep is not None
    esc = (1 << deep.layout.index_bits) - 1
    skips = int(np.count_nonzero(hsym == esc))
    holes = hsym.size - skips
    if holes != record.size - deep.survivors:
        kept = record.size - holes
        raise ValueError(f"its record counts {deep.survivors:,} kept weights, its holes {kept:,}")
    if hsym.size and hsym[-1] == esc:
        raise ValueError("its position holes end with a skip")
    # each hole moves code + 1 positions on, each skip esc: the last hole's position
    last = int(hsym.sum(dtype=np.int64)) + holes - 1  # skips add esc each, as their code
    if holes and last >= record.size:
        raise ValueError("its position holes run past the end of the layer")
