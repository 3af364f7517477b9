"""Where a layer's kept weights are: the four position codes of format version 2.

``GAPS`` is Deep Compression's relative index (the entries of ``layer.py``: a gap code per kept
weight, fillers for long gaps). The others code the positions apart from the weights, so the
weight stream then holds exactly one symbol per kept weight and no fillers:

- ``DENSE``: every weight is kept; nothing is stored.
- ``BITMAP``: one bit per weight, MSB first, 1 = kept.
- ``HOLES``: the positions of the *pruned* weights, as gap codes of ``b`` = index bits: with
  ``e = 2**b - 1``, code ``c < e`` moves ``c + 1`` positions on and prunes the weight there,
  code ``e`` moves ``e`` positions on and prunes nothing (a skip). Decoding starts at -1 and
  stops after ``size - survivors`` holes, so no trailing skips are written.

A layer's plan codes its positions whichever way is smallest (``LayerCodec.plan``).
"""

from __future__ import annotations

import numpy as np

from inspector.core.streams import StreamPlan, plan_stream

GAPS, BITMAP, DENSE, HOLES = 0, 1, 2, 3
NAMES = {GAPS: "gaps", BITMAP: "bitmap", DENSE: "dense", HOLES: "holes"}


def kept_positions(gaps: np.ndarray) -> np.ndarray:
    """Positions (int64, ascending) of the kept weights from their gaps (first from -1)."""
    return np.cumsum(gaps, dtype=np.int64) - 1


def holes_of(kept: np.ndarray, size: int) -> np.ndarray:
    """Positions (int64, ascending) of the weights not in ``kept``."""
    mask = np.ones(size, dtype=bool)
    mask[kept] = False
    return np.flatnonzero(mask)


def hole_symbols(holes: np.ndarray, index_bits: int) -> np.ndarray:
    """The ``HOLES`` stream (uint32) of the pruned positions ``holes``."""
    esc = (1 << index_bits) - 1
    g = np.diff(holes, prepend=-1) - 1  # positions skipped before each hole
    skips = g // esc
    out = np.full(holes.size + int(skips.sum()), esc, dtype=np.uint32)
    out[np.cumsum(skips + 1) - 1] = g % esc
    return out


def hole_counts(holes: np.ndarray, index_bits: int) -> np.ndarray:
    """Histogram (int64, ``2**index_bits`` entries) of the ``HOLES`` stream of ``holes``."""
    esc = (1 << index_bits) - 1
    g = np.diff(holes, prepend=-1) - 1
    counts = np.bincount(g % esc, minlength=1 << index_bits).astype(np.int64)
    counts[esc] += int((g // esc).sum())
    return counts


def hole_counts_of_gaps(gaps: np.ndarray, size: int, index_bits: int) -> np.ndarray:
    """``hole_counts`` from the kept weights' gaps, without listing the holes: one pass over
    the kept weights instead of several over the layer.

    The holes come in runs (a gap g > 1 leaves g - 1, the tail the rest). The first hole of a
    run passes over the r kept weights since the previous run: ``r // e`` skips and the code
    ``r % e``; every other hole of a run is code 0.
    """
    esc = (1 << index_bits) - 1
    counts = np.zeros(1 << index_bits, dtype=np.int64)
    starts = np.flatnonzero(gaps > 1)  # kept weights that follow a run of holes
    lengths = gaps[starts].astype(np.int64) - 1
    before = np.diff(starts, prepend=0)  # kept weights passed before each run's first hole
    tail = size - int(gaps.sum(dtype=np.int64))
    if tail:
        lengths = np.append(lengths, tail)
        before = np.append(before, gaps.size - (starts[-1] if starts.size else 0))
    if lengths.size:
        counts += np.bincount(before % esc, minlength=counts.size)
        counts[esc] += int((before // esc).sum())
        counts[0] += int(lengths.sum()) - lengths.size
    return counts


def plan_dense() -> StreamPlan:
    """No position data."""
    return StreamPlan(1, 0, 0, None, 0, 0, 0)


def plan_bitmap(size: int) -> StreamPlan:
    """One bit per weight."""
    return StreamPlan(2, size, 1, None, size, 0, size)


def plan_holes(gaps: np.ndarray, size: int, index_bits: int, use_huffman: bool) -> StreamPlan:
    """The ``HOLES`` stream of the layer keeping ``gaps`` coded as ``plan_stream`` chooses."""
    return plan_stream(hole_counts_of_gaps(gaps, size, index_bits), index_bits, use_huffman)


def bitmap_bytes(kept: np.ndarray, size: int) -> bytes:
    """The ``BITMAP`` code of ``kept``."""
    bits = np.zeros(size, dtype=bool)
    bits[kept] = True
    return np.packbits(bits).tobytes()


def decode_positions(
    mode: int, sym: np.ndarray, size: int, survivors: int, index_bits: int
) -> np.ndarray:
    """Kept positions (int64, ascending) from a position stream's symbols (ValueError if bad).

    ``sym`` is empty for ``DENSE``, the ``size`` bits for ``BITMAP``, the stream for ``HOLES``.
    """
    if survivors > size:
        raise ValueError("more kept weights than the layer has")
    if mode == DENSE:
        if survivors != size:
            raise ValueError("a dense layer must keep every weight")
        return np.arange(size, dtype=np.int64)
    if mode == BITMAP:
        kept = np.flatnonzero(sym)
        if kept.size != survivors:
            raise ValueError("position bitmap disagrees with the count of kept weights")
        return kept
    if mode != HOLES:
        raise ValueError(f"unknown position code {mode}")
    esc = (1 << index_bits) - 1
    hole = sym != esc
    pos = np.cumsum(np.where(hole, sym.astype(np.int64) + 1, esc)) - 1
    holes = pos[hole]
    if holes.size != size - survivors or (holes.size and holes[-1] >= size):
        raise ValueError("position holes disagree with the layer's size")
    if sym.size and not hole[-1]:
        raise ValueError("position holes end with a skip")
    return holes_of(holes, size)
