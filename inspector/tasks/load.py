"""Open a model for the app: read it, profile every layer, report progress, cancellable."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.core.layer import LayerCodec
from inspector.io import read_model
from inspector.io.model_file import LoadedModel
from inspector.model.stats import LayerStats
from inspector.tasks.codec import ModelCodec, Progress

HISTOGRAM_BINS = 512
ABS_BINS = 4096
FINE_BINS = 1 << 16  # the plot's zoomed views are re-binned from this many bins at most
EXACT_DISTINCT = 1 << 16  # distinct values are counted exactly up to this many weights (~3 ms)
FEW_BINS = 4096  # ...or when so few fine bins are occupied that the weights may be a constant


@dataclass(frozen=True, slots=True)
class Opened:
    """A loaded model, its per-layer codecs (profiled) and the stats the app draws."""

    model: LoadedModel
    codec: ModelCodec
    stats: dict[str, LayerStats]


def open_model(path: str | Path) -> Generator[Progress, None, Opened]:
    """Read ``path`` and profile its finite float layers, yielding progress per layer."""
    yield Progress(0, 1, f"reading {Path(path).name}")
    model = read_model(path)
    codec = ModelCodec(model)
    # Every finite float tensor, not only the compressible kinds: a bias or norm is still worth
    # a look, and a tensor the user forces to a compressible kind needs its histogram.
    names = [i.name for i in model.infos if i.lossy_ok and i.size > 0]
    stats = {}
    for n, name in enumerate(names):
        yield Progress(n, len(names), f"profiling {name}")
        stats[name] = layer_stats(name, codec.codec(name))
    yield Progress(len(names), len(names), "ready")
    return Opened(model, codec, stats)


def layer_stats(name: str, codec: LayerCodec) -> LayerStats:
    """Display statistics of one profiled layer."""
    prof = codec.profile
    edges, counts = codec.histogram(HISTOGRAM_BINS)
    step = max(1, prof.abs_cum.size // ABS_BINS)  # a small layer's grid has fewer bins
    nbins = prof.abs_cum.size // step
    width = step / prof.abs_scale if prof.abs_scale else 0.0
    # About two fine bins per weight (a power of two, so it divides the codec's grid).
    fine_bins = min(FINE_BINS, max(HISTOGRAM_BINS, 1 << max(prof.size - 1, 1).bit_length()))
    fine = codec.histogram(fine_bins)[1]
    distinct, exact = int(np.count_nonzero(fine)), False  # a lower bound, for free
    if prof.size <= EXACT_DISTINCT or distinct <= FEW_BINS:  # sorting 10M weights takes ~1 s
        distinct, exact = int(np.unique(codec.weights).size), True
    return LayerStats(
        name=name,
        size=prof.size,
        edges=edges,
        counts=counts,
        std=prof.std,
        std_nonzero=prof.std_nonzero,
        absmax=prof.absmax,
        abs_edges=np.arange(nbins + 1) * width,
        abs_cum=prof.abs_cum[step - 1 :: step].copy(),
        fine=fine,
        mean=prof.mean,
        zeros=prof.size - prof.nonzero - prof.nonfinite,
        distinct=distinct,
        distinct_exact=exact,
    )
