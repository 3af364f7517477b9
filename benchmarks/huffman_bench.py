"""Item 4: Huffman encode/decode throughput on a layer's real streams, against dahuffman.

The streams are the ones ``compress`` writes for a 90%-pruned layer at bits=5, index_bits=5:
weight indices (31 clusters + the filler code = 32 symbols) and 5-bit gap codes. dahuffman is
pure Python, so it is timed on a 100k-symbol prefix and scaled per symbol, in rounds
interleaved with inspector's timings; the speed-up is the median of the per-round ratios.
"""

from __future__ import annotations

import numpy as np
from _util import Row, check, log, median, median_time, ms, secs, timed

from inspector.core import huffman
from inspector.core.layer import LayerCodec
from inspector.core.settings import LayerSettings

SPEEDUP_TARGET = 100.0


def streams(codec: LayerCodec, sparsity: float) -> dict[str, np.ndarray]:
    """The weight-index and gap-code symbols of the layer (what ``encode`` Huffman-codes)."""
    plan = codec.plan(LayerSettings(policy="sparsity", value=sparsity, bits=5, index_bits=5))
    wsym, gsym = codec._symbols(plan)
    return {"weight-index (K=32)": wsym, "gap (index_bits=5)": gsym}


def _interleaved(
    sym: np.ndarray, lengths: np.ndarray, counts: np.ndarray, subset: int, rounds: int
) -> dict[str, tuple[float, float, float]]:
    """Per operation: (inspector seconds, dahuffman seconds scaled to all symbols, speed-up).

    Each round times inspector (median of 5 calls) and dahuffman on the first ``subset``
    symbols back to back, so both see the same machine load; all three are medians of rounds.
    """
    from dahuffman import HuffmanCodec

    dah = HuffmanCodec.from_frequencies({int(s): int(c) for s, c in enumerate(counts) if c})
    part = sym[:subset].tolist()
    data = dah.encode(part)
    assert dah.decode(data) == part
    buf, _ = huffman.encode(sym, lengths)
    scale = sym.size / len(part)
    ops = {
        "encode": (lambda: huffman.encode(sym, lengths), lambda: dah.encode(part)),
        "decode": (lambda: huffman.decode(buf, sym.size, lengths), lambda: dah.decode(data)),
    }
    out = {}
    for what, (ours, theirs) in ops.items():
        ours_t, theirs_t = [], []
        for _ in range(rounds):
            ours_t.append(median_time(ours, 5))
            theirs_t.append(timed(theirs) * scale)
        ratio = median([b / a for a, b in zip(ours_t, theirs_t, strict=True)])
        out[what] = (median(ours_t), median(theirs_t), ratio)
    return out


def _fmt(seconds: float) -> str:
    return secs(seconds) if seconds >= 1 else ms(seconds)


def run(
    codec: LayerCodec, sparsity: float, rounds: int, subset: int
) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    for name, sym in streams(codec, sparsity).items():
        n = sym.size
        counts = np.bincount(sym)
        lengths = huffman.code_lengths(counts)
        buf, nbits = huffman.encode(sym, lengths)
        assert np.array_equal(huffman.decode(buf, n, lengths), sym), "round trip failed"
        timings = _interleaved(sym, lengths, counts, min(subset, n), rounds)
        bound = huffman.entropy_nbits(counts)
        for what, (t, theirs, speed) in timings.items():
            log(f"item 4 {name} {what}: {ms(t)} vs dahuffman {_fmt(theirs)}: {speed:.0f}x")
            rows.append(Row(
                "4", f"huffman.{what} {name}, {n / 1e6:.2f}M symbols",
                f"{ms(t)} ({n / t / 1e6:.0f} Msym/s)", f">= {SPEEDUP_TARGET:g}x dahuffman",
                f"dahuffman {_fmt(theirs)} (scaled from {min(subset, n) // 1000}k)",
                f"{speed:,.0f}x", check(speed >= SPEEDUP_TARGET),
            ))
        rows.append(Row(
            "4", f"  encoded size {name}", f"{(nbits + 7) // 8:,} B ({nbits / n:.4f} bit/sym)",
            "info", f"Shannon bound {bound / 8:,.0f} B ({bound / n:.4f} bit/sym)",
            f"{nbits / bound:.4f}x bound", "info",
        ))
        notes.append(_breakdown(name, sym, lengths, buf, 2 * rounds + 1))
    return rows, notes


def _breakdown(name: str, sym: np.ndarray, lengths: np.ndarray, buf: bytes, repeat: int) -> str:
    """The decode kernel alone (buffers ready) against the public decode."""
    try:
        lens = huffman._check_lengths(lengths)
        enc = median_time(lambda: huffman.encode(sym, lengths), repeat)
        out = np.empty(sym.size, dtype=np.uint32)
        data = np.frombuffer(buf, dtype=np.uint8)
        dec_k = median_time(lambda: huffman._decode_kernel(data, lens, out), repeat)
        dec = median_time(lambda: huffman.decode(buf, sym.size, lengths), repeat)
        return (f"item 4 {name}: encode {ms(enc)} ({enc / sym.size * 1e9:.2f} ns/symbol); "
                f"decode {ms(dec)}, of which _decode_kernel {ms(dec_k)} ({dec_k / dec:.0%}, "
                f"{dec_k / sym.size * 1e9:.2f} ns/symbol); longest code {int(lens.max())} bits")
    except Exception as exc:
        return f"item 4 {name} breakdown unavailable: {type(exc).__name__}: {exc}"
