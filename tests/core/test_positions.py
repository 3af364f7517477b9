"""Position codes and constant streams (format version 2): sizes exact, choice smallest,
streams equal to the plain-numpy twins in ``reference.py``."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.core import positions
from inspector.core import reference as ref
from inspector.core.decode import decode_kept, decode_payload, decode_symbols
from inspector.core.layer import LayerCodec
from inspector.core.positions import BITMAP, DENSE, GAPS, HOLES
from inspector.core.settings import LayerSettings
from inspector.core.streams import CONSTANT, plan_stream

PROPERTY = settings(deadline=None, max_examples=120, suppress_health_check=[HealthCheck.too_slow])
DENSITIES = {"dense": 0.0, "nearly dense": 0.02, "half": 0.5, "sparse": 0.93}


@st.composite
def layers(draw: st.DrawFn) -> tuple[np.ndarray, LayerSettings]:
    """A Gaussian layer with a share of exact zeros (pruned by threshold 0), and settings."""
    size = draw(st.integers(1, 3000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.normal(0, 0.1, size).astype(np.float32)
    w[rng.random(size) < DENSITIES[draw(st.sampled_from(sorted(DENSITIES)))]] = 0.0
    if draw(st.booleans()):  # runs of zeros longer than 2**b: fillers, skips
        start = int(rng.integers(0, size))
        w[start : start + int(rng.integers(0, 300))] = 0.0
    s = LayerSettings(policy="threshold", value=0.0, bits=draw(st.integers(1, 8)),
                      index_bits=draw(st.integers(1, 8)), huffman=draw(st.booleans()))
    return w, s


@PROPERTY
@given(layers())
def test_estimate_is_written_and_code_is_smallest(case: tuple[np.ndarray, LayerSettings]) -> None:
    w, s = case
    codec = LayerCodec(w)
    plan, payload = codec.encode(s)
    assert len(payload) == plan.payload_nbytes
    decoded = decode_payload(payload, plan.layout)
    np.testing.assert_array_equal(decoded.view(np.uint32), codec.quantized(s).view(np.uint32))
    kept = np.flatnonzero(w)
    _, pos, _ = decode_kept(payload, plan.layout)
    np.testing.assert_array_equal(pos, kept)
    _, _, gsym = decode_symbols(payload, plan.layout)
    if plan.positions == HOLES:
        np.testing.assert_array_equal(gsym, ref.hole_symbols_ref(kept, w.size, s.index_bits))
    if plan.positions == BITMAP:
        assert payload.endswith(ref.bitmap_ref(kept, w.size))
    assert (plan.positions == DENSE) == (kept.size == w.size)
    for code in (BITMAP, HOLES):  # never larger than a plan allowed just one other code
        other = LayerCodec(w)
        other.position_codes = (GAPS, code)
        assert plan.payload_nbytes <= other.plan(s).payload_nbytes
    only_gaps = LayerCodec(w)
    only_gaps.position_codes = (GAPS,)
    assert plan.payload_nbytes <= only_gaps.plan(s).payload_nbytes


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 400), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_hole_stream_matches_its_twin(size: int, index_bits: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    kept = np.flatnonzero(rng.random(size) < rng.random())
    holes = positions.holes_of(kept, size)
    sym = positions.hole_symbols(holes, index_bits)
    np.testing.assert_array_equal(sym, ref.hole_symbols_ref(kept, size, index_bits))
    counts = positions.hole_counts(holes, index_bits)
    np.testing.assert_array_equal(counts, np.bincount(sym, minlength=1 << index_bits))
    gaps = np.diff(kept, prepend=-1)
    np.testing.assert_array_equal(positions.hole_counts_of_gaps(gaps, size, index_bits), counts)
    back = positions.decode_positions(HOLES, sym, size, kept.size, index_bits)
    np.testing.assert_array_equal(back, ref.decode_holes_ref(sym, size, index_bits))
    np.testing.assert_array_equal(back, kept)
    assert positions.bitmap_bytes(kept, size) == ref.bitmap_ref(kept, size)


def test_unpruned_layer_stores_no_positions() -> None:
    """Issue 15: every gap 1 cost a Huffman bit per weight; a dense layer now costs none."""
    w = np.random.default_rng(0).normal(0, 0.05, 20_000).astype(np.float32)
    codec = LayerCodec(w)
    plan, payload = codec.encode(LayerSettings(policy="sparsity", value=0.0, bits=6))
    assert plan.positions == DENSE and plan.gaps.nbytes == 0
    assert len(payload) == plan.codebook_nbytes + plan.weights.nbytes
    only_gaps = LayerCodec(w)
    only_gaps.position_codes = (GAPS,)
    gaps = only_gaps.plan(LayerSettings(policy="sparsity", value=0.0, bits=6))
    # version 1 spent a Huffman bit per weight on this one-symbol gap stream; now its symbol
    assert gaps.gaps.constant and gaps.gaps.nbits == 0 and gaps.gaps.nbytes == 1


def test_nearly_dense_layer_pays_for_its_holes_only() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.05, 50_000).astype(np.float32)
    w[rng.random(w.size) < 0.01] = 0.0
    plan = LayerCodec(w).plan(LayerSettings(policy="threshold", value=0.0, bits=6, index_bits=8))
    assert plan.positions == HOLES
    holes = w.size - plan.survivors
    assert plan.gaps.nbytes < holes * 9 // 8 + 40  # ~8 bits per hole, far below a bit a weight


def test_a_stream_of_one_symbol_costs_its_symbol_only() -> None:
    counts = np.zeros(32, np.int64)
    counts[5] = 100_000
    for huffman in (False, True):
        plan = plan_stream(counts, 5, huffman)
        assert plan.mode == CONSTANT and plan.nbits == 0 and plan.nbytes == 1
    w = np.zeros(10_000, np.float32)
    w[2::3] = 0.5  # gaps all 3: one gap code
    plan, payload = LayerCodec(w).encode(LayerSettings(policy="threshold", value=0.0))
    assert plan.positions == GAPS and plan.gaps.constant and len(payload) <= 8
