"""Compile (or load from numba's disk cache) every kernel the pipeline uses, once.

The kernels in ``inspector.core`` are ``cache=True`` numba functions: the first run on a machine
compiles them all (about 15 s cold), silently, inside whatever the user did first. ``make venv``
runs ``python -m inspector.tasks.warmup`` so that cost is paid at setup; the app runs
:func:`warm_up` in a worker at start and says so in its status bar if anything still compiles.

:func:`warm_up` drives the real pipeline (estimate, encode, write a ``.dcz``, decode it) on tiny
float32 and float64 layers through every path that picks a different kernel or signature
(exact and histogram survivors, optimal and Lloyd k-means, Huffman and fixed-width streams,
fillers), so every specialisation the app needs is built here, not under a slider.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from inspector.core.layer import EXACT_SURVIVORS
from inspector.format import container
from inspector.io.kinds import layer_kind
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec, compress
from inspector.tasks.drive import run_to_end

#: Settings that together reach every kernel path (see the module docstring).
_VARIANTS: tuple[dict[str, object], ...] = (
    {"policy": "sparsity", "value": 0.9, "bits": 5, "index_bits": 5},
    {"policy": "std", "value": 0.5, "bits": 8, "index_bits": 8, "huffman": False},
    {"policy": "threshold", "value": 0.01, "bits": 3, "index_bits": 2, "init": "linear"},
    {"policy": "sparsity", "value": 0.5, "bits": 4, "init": "density"},
    {"policy": "sparsity", "value": 0.7, "bits": 2, "init": "random", "huffman": False},
    # Huffman over an alphabet too large for the symbol-pair table: the one-symbol encoder.
    {"policy": "sparsity", "value": 0.3, "bits": 8, "index_bits": 8},
)


def warm_up(
    on_compile: Callable[[], None] | None = None, check: Callable[[], None] | None = None
) -> int:
    """Run every kernel once; return how many numba compilations that took (0: all cached).

    Parameters
    ----------
    on_compile
        Called (on the compiling thread) when the first real compilation starts, i.e. when the
        disk cache did not have a kernel: the app shows "compiling" only then.
    check
        Called between steps; raises to stop early (the app's cancellation token).
    """
    with (
        _counting_compiles(on_compile) as compiled,
        tempfile.TemporaryDirectory(prefix="inspector-warmup-") as tmp,
    ):
        for dtype in (np.float32, np.float64):
            # Readers that map or wrap file bytes hand out read-only arrays: numba builds a
            # separate specialisation for those.
            for writeable in (True, False):
                model = _model(dtype, writeable)
                _run_pipeline(model, Path(tmp) / Path(model.path).with_suffix(".dcz"), check)
    return compiled[0]


def _model(dtype: type, writeable: bool) -> LoadedModel:
    """Layers just below and far above ``EXACT_SURVIVORS``, and one with outliers."""
    rng = np.random.default_rng(0)
    big = rng.normal(0, 0.05, (64, 2 * EXACT_SURVIVORS)).astype(dtype)
    big[0, :4] = (3.0, -2.5, 1.75, -4.0)  # outliers stretch the grid as in real layers
    arrays = {
        "conv.weight": rng.normal(0, 0.1, (16, 4, 3, 3)).astype(dtype),
        "fc.weight": big,
        "fc.bias": rng.normal(0, 0.01, 64).astype(dtype),
    }
    for a in arrays.values():
        a.setflags(write=writeable)
    infos = tuple(
        TensorInfo(n, layer_kind(n, a.shape, a.dtype.name), a.shape, a.dtype.name)
        for n, a in arrays.items()
    )
    name = f"warmup-{np.dtype(dtype).name}-{'rw' if writeable else 'ro'}.pt"
    return LoadedModel(name, "pytorch", arrays, infos, {})


def _run_pipeline(model: LoadedModel, out: Path, check: Callable[[], None] | None) -> None:
    for variant in _VARIANTS:
        if check is not None:
            check()
        settings = ModelSettings.from_json({"version": 1, "defaults": variant, "kinds": {}})
        codec = ModelCodec(model)
        codec.estimate(settings)
        for info in model.infos:
            codec.quantized(info.name, settings)
        run_to_end(compress(codec, settings, out))
        container.open_container(out).read_all()


@contextmanager
def _counting_compiles(on_compile: Callable[[], None] | None) -> Iterator[list[int]]:
    """Count numba's ``numba:compile`` events (fired only when the disk cache misses)."""
    from numba.core import event

    compiled = [0]

    class Listener(event.Listener):
        def on_start(self, _event: event.Event) -> None:
            compiled[0] += 1
            if compiled[0] == 1 and on_compile is not None:
                on_compile()

        def on_end(self, _event: event.Event) -> None:
            pass

    listener = Listener()
    event.register("numba:compile", listener)
    try:
        yield compiled
    finally:
        event.unregister("numba:compile", listener)


def main() -> int:
    """``python -m inspector.tasks.warmup``: build the kernel cache, say how long it took."""
    start = time.perf_counter()
    print("inspector: building the compression kernels' cache...", flush=True)
    compiled = warm_up()
    took = time.perf_counter() - start
    if compiled:
        print(f"inspector: compiled {compiled} kernel(s) in {took:.1f} s (cached for next time)")
    else:
        print(f"inspector: kernels already compiled and cached ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
