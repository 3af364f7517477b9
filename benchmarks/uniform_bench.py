"""Speed of the ``uniform`` method and the ``fixed`` stage, and of one model-wide solve.

Prints plan / encode / decode MB/s (fp32 bytes of the layer per second) of ``uniform`` on a
Laplacian 10M-weight layer under several options, the numpy twin's decode for scale, and the
time of one model-wide step solve (``rd.fit_nbytes`` to a 25x budget) on a synthetic model of
``--params`` weights in 10M-weight layers.

Run::

    nice -n 10 .venv/bin/python benchmarks/uniform_bench.py [--params 100_000_000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from inspector.core.stages import registry
from inspector.core.stages.base import resolve_options
from inspector.core.stages.rd import every_layer, fit_nbytes

UNIFORM = registry.method("uniform")
CASES = [
    {"granularity": "tensor", "rel_step": 0.1},
    {"granularity": "channel", "rel_step": 0.1},
    {"granularity": "group", "group": 64, "int_bits": 4},
    {"granularity": "channel", "rel_step": 0.1, "lam": 0.1},
    {"granularity": "channel", "rel_step": 0.1, "lam": 0.1, "recon": "mean"},
]


def timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    return out, time.perf_counter() - t


def layer_speeds() -> None:
    w = (np.random.default_rng(0).laplace(size=(4000, 2500)) * 0.02).astype(np.float32)
    mb = w.nbytes / 1e6
    UNIFORM.bind(w[:8].reshape(-1), (8, 2500)).encode(resolve_options(UNIFORM.options, {}))
    for given in CASES:
        o = resolve_options(UNIFORM.options, {**given, "entropy": "fixed"})
        b = UNIFORM.bind(w.reshape(-1), w.shape)
        plan, tp = timed(b.plan, o)
        (_, payload), te = timed(b.encode, o)
        _, td = timed(UNIFORM.decode, plan.params, payload, w.shape)
        _, tr = timed(UNIFORM.decode_reference, plan.params, payload, w.shape)
        print(f"  {given!s:<75} plan {mb / tp:6.0f} MB/s  encode (after plan) {mb / te:6.0f} "
              f"MB/s  decode {mb / td:6.0f} MB/s  numpy twin {mb / tr:5.0f} MB/s  "
              f"{8 * plan.payload_nbytes / w.size:.2f} bits/w")
    sys.stdout.flush()


def solve_time(params: int) -> None:
    per = 10_000_000
    rng = np.random.default_rng(1)
    ws = [(rng.laplace(size=min(per, params - i)) * rng.uniform(0.01, 0.05))
          .astype(np.float32) for i in range(0, params, per)]
    layers = [UNIFORM.bind(w, (1000, w.size // 1000)) for w in ws]
    base = resolve_options(UNIFORM.options, {"granularity": "tensor", "entropy": "auto"})
    budget = sum(w.nbytes for w in ws) // 25
    sol, t = timed(fit_nbytes, layers, every_layer(base, "step", len(layers)), budget,
                   1e-4, 1.0, 0, 1e-2)
    assert sol is not None
    print(f"  one model-wide step solve, {params / 1e6:.0f}M weights in {len(ws)} layers, "
          f"to {budget} bytes: {t:.1f} s ({sol.evaluations} plans of every layer, "
          f"{sol.nbytes} bytes at step {sol.knob:.5f})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=int, default=100_000_000)
    args = p.parse_args()
    print("uniform, a 10M-weight layer (entropy fixed):")
    layer_speeds()
    solve_time(args.params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
