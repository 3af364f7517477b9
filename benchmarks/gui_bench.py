"""Responsiveness of the app (issue 3): start-up, event-loop latency while dragging, estimate lag.

Run: ``.venv/bin/python benchmarks/gui_bench.py [--quick]``. Prints a table and writes
``benchmarks/gui_results.md``. Offscreen Qt; a model with one 10M-weight layer.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from inspector.gui.app import quiet_raster_threads  # before Qt starts, as the app does

quiet_raster_threads()

HERE = Path(__file__).resolve().parent
LATENCY_TARGET_MS = 50.0
ESTIMATE_TARGET_MS = 100.0
START_TARGET_S = 2.0
ACCURACY_TARGET_S = 1.0
MANY_TARGET_S = 2.0  # first estimate of a model of ~150 small tensors (issue 10.8)
EMBEDDING = "embeddings.word_embeddings.weight"


def make_model(folder: Path, rows: int, cols: int) -> Path:
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    state = {
        "big.weight": torch.from_numpy(rng.normal(0, 0.02, (rows, cols)).astype(np.float32)),
        "big.bias": torch.zeros(rows),
        "head.weight": torch.from_numpy(rng.normal(0, 0.05, (10, rows)).astype(np.float32)),
        "head.bias": torch.zeros(10),
    }
    path = folder / "big.pt"
    torch.save(state, path)
    return path


def make_many(folder: Path, seed: int = 0) -> Path:
    """A detector's shape: 151 tensors, ~147 small conv kernels (72 to 37k weights) and 4 big.

    Kernel shapes follow a MobileNet-style detector (depthwise 3x3, pointwise 1x1, a few 3x3
    heads), as in the PP-OCR detector of ``rapidocr_onnxruntime``; all compressible.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, ...]] = []
    channels = (8, 16, 24, 32, 48, 64, 96, 128, 192)
    while len(shapes) < 147:
        c = channels[len(shapes) % len(channels)]
        shapes.append((c, 1, 3, 3))  # depthwise
        shapes.append((2 * c if c < 192 else c, c, 1, 1))  # pointwise
    big = [(256, 256, 3, 3), (384, 256, 3, 3), (512, 384, 3, 3), (256, 512, 3, 3)]
    shapes = [*shapes[:147], *big]
    arrays = {f"block{i}.conv.weight": (rng.standard_normal(s) * 0.05).astype(np.float32)
              for i, s in enumerate(shapes)}
    path = folder / "many.npz"
    np.savez(path, **arrays)
    return path


def make_embedding(folder: Path, rows: int, cols: int, seed: int = 0) -> Path:
    """A sentence transformer's token embedding with outliers (issue 10.8): N(0, 0.05^2) plus
    0.1% of the weights at 20-50x the std, either sign (the shape of MiniLM's word table)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(0.05)
    flat = w.reshape(-1)
    pick = rng.choice(flat.size, size=flat.size // 1000, replace=False)
    scale = rng.uniform(20, 50, pick.size) * np.sign(rng.standard_normal(pick.size))
    flat[pick] = (0.05 * scale).astype(np.float32)
    path = folder / "embedding.npz"
    np.savez(path, **{EMBEDDING: w, "embeddings.LayerNorm.weight": np.ones(cols, np.float32)})
    return path


def start_up(model: Path) -> float:
    """Seconds from launching the app's process to its window being shown (warm JIT)."""
    code = (
        "import time, sys; t0 = time.time()\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from inspector.gui.main_window import MainWindow\n"
        "app = QApplication([])\n"
        "w = MainWindow(); w.show(); app.processEvents()\n"
        "print(time.time())\n"
        "w.close()\n"
    )
    runs = []
    for _ in range(3):
        t = time.time()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        runs.append(float(out.stdout.strip().splitlines()[-1]) - t)
    return statistics.median(runs)


class Ticker:
    """A 5 ms timer on the GUI thread: how late each tick fires is the thread's latency (ms);
    the thread's own CPU time between ticks tells its work from waiting for a core or the GIL."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.latencies: list[float] = []
        self.cpu: list[float] = []  # the GUI thread's CPU time (ms) in each tick
        self._last = (time.perf_counter(), time.thread_time())
        self._timer = QTimer()
        self._timer.setInterval(5)
        self._timer.timeout.connect(self._on_tick)

    def start(self) -> None:
        self._last = (time.perf_counter(), time.thread_time())
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _on_tick(self) -> None:
        now = (time.perf_counter(), time.thread_time())
        self.latencies.append(max(0.0, 1000 * (now[0] - self._last[0]) - 5))
        self.cpu.append(1000 * (now[1] - self._last[1]))
        self._last = now

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)

    @property
    def worst_cpu(self) -> float:
        """The GUI thread's CPU time in the tick that stalled longest."""
        if not self.latencies:
            return 0.0
        return self.cpu[max(range(len(self.latencies)), key=self.latencies.__getitem__)]


@dataclass(frozen=True)
class Drag:
    """One scripted threshold drag and the idle baseline measured just before it."""

    ticker: Ticker  # during the drag
    idle: Ticker  # the same window for as long, nothing moving: the machine's own stalls
    lags: list[float]  # ms from a move to its estimate on screen, for those that landed
    cpu_per_move: float  # the GUI thread's CPU time (ms) per move
    idle_seconds: float  # how long the idle baseline ran

    @property
    def idle_cpu_per_move(self) -> float:
        """The GUI thread's CPU time (ms) per move interval idle: the event loop's own."""
        return sum(self.idle.cpu) / max(1, round(1000 * self.idle_seconds / 16))

    @property
    def ratio(self) -> float:
        """Worst stall dragging over the worst stall idle (1 = the drag adds nothing)."""
        return self.ticker.worst / max(self.idle.worst, 1.0)


def pump(app: object, ms: float) -> None:
    """Run the event loop for ``ms``, as an application does between two mouse moves."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.001)


def drag_session(model: Path, moves: int, layer: str = "big.weight") -> Drag:
    """A scripted threshold drag of ``layer`` (a move every 16 ms, as a mouse delivers them):
    GUI latencies, estimate lags, and the same window's latencies idle just before."""
    from PySide6.QtWidgets import QApplication

    from inspector.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    gc.freeze()  # as the app does once its window is up (inspector.gui.app.run)
    window.open_model(str(model))
    session = window.session
    deadline = time.time() + 120
    while session.estimate is None and time.time() < deadline:
        app.processEvents()
        time.sleep(0.005)
    session.select((layer,))
    pump(app, 300)  # the selection's redraw is not part of either measure
    idle = Ticker()
    idle.start()
    pump(app, 16 * moves)
    idle.stop()
    idle_seconds = 16 * moves / 1000
    values = [0.80 + 0.15 * i / moves for i in range(moves)]
    lags: list[float] = []
    sent: dict[float, float] = {}

    def on_estimate() -> None:
        est = session.estimate
        row = est.layer(layer) if est else None
        if row is not None and row.plan is not None:  # asked: the floor may change the value
            v = round(row.plan.asked.value, 6)
            if v in sent:
                lags.append(1000 * (time.perf_counter() - sent.pop(v)))

    session.estimate_changed.connect(on_estimate)
    ticker = Ticker()
    line = window.histogram.lines[1]
    stats = session.stats[layer]
    policy = session.layer_settings(layer).policy
    cpu = time.thread_time()
    ticker.start()
    for v in values:
        t = stats.threshold_of(policy, v)
        sent_at = time.perf_counter()
        line.setValue(t)
        line.sigDragged.emit(line)  # as the mouse does: the widget redraws and throttles
        sent[round(stats.value_of(policy, t), 6)] = sent_at
        pump(app, 16)
    line.sigPositionChangeFinished.emit(line)
    cpu = 1000 * (time.thread_time() - cpu) / moves

    def landed() -> bool:
        est = session.estimate.layer(layer).plan
        return est.asked.value == session.layer_settings(layer).value

    end = time.perf_counter() + 3
    while time.perf_counter() < end and not landed():
        app.processEvents()
        time.sleep(0.002)
    app.processEvents()
    ticker.stop()
    assert landed(), "the last move must land"
    window.close()
    return Drag(ticker, idle, lags, cpu, idle_seconds)


def first_estimate(path: Path) -> tuple[float, float]:
    """Seconds from asking the window to open ``path`` to its first estimate on screen, and the
    worst GUI latency (ms) meanwhile."""
    from PySide6.QtWidgets import QApplication

    from inspector.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    gc.freeze()  # as the app does once its window is up (inspector.gui.app.run)
    app.processEvents()
    ticker = Ticker()
    ticker.start()
    start = time.perf_counter()
    window.open_model(str(path))
    while window.session.estimate is None and time.perf_counter() - start < 120:
        app.processEvents()
        time.sleep(0.001)
    ready = time.perf_counter() - start
    app.processEvents()
    ticker.stop()
    window.close()
    return ready, ticker.worst


def open_large(folder: Path, params: int) -> tuple[float, float, int]:
    """Open a ``params``-weight model: seconds to ready, worst GUI latency (ms), progress steps."""
    from PySide6.QtWidgets import QApplication

    import numpy as np
    import torch

    from inspector.gui.main_window import MainWindow

    rng = np.random.default_rng(0)
    layers = max(1, params // (4096 * 4096))
    state = {f"l{i}.weight": torch.from_numpy(
        rng.standard_normal((4096, 4096), dtype=np.float32) * 0.02) for i in range(layers)}
    path = folder / "large.pt"
    torch.save(state, path)
    del state
    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    gc.freeze()  # as the app does once its window is up (inspector.gui.app.run)
    steps: list[int] = []
    window.controller.progress.connect(lambda done, total, label: steps.append(done))
    ticker = Ticker()
    ticker.start()
    start = time.perf_counter()
    window.open_model(str(path))
    while window.session.estimate is None and time.perf_counter() - start < 300:
        app.processEvents()
        time.sleep(0.001)
    ready = time.perf_counter() - start
    ticker.stop()
    window.close()
    return ready, ticker.worst, len(steps)


def accuracy_lag(model: Path, data: Path, config: Path, layer: str, moves: int) -> list[float]:
    """Seconds from a settings change to the measured accuracy of it on screen (a sample)."""
    from PySide6.QtWidgets import QApplication

    from inspector.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow()
    window.show()
    gc.freeze()  # as the app does once its window is up (inspector.gui.app.run)
    window.controller.consent.allow(model)  # as --allow-code: offscreen, nobody to ask
    window.open_model(str(model), str(config), str(data))
    session = window.session

    def wait(cond: object, seconds: float = 120) -> None:
        end = time.perf_counter() + seconds
        while not cond() and time.perf_counter() < end:  # type: ignore[operator]
            app.processEvents()
            time.sleep(0.002)

    wait(lambda: session.accuracy_is_current)
    lags = []
    for i in range(moves):
        start = time.perf_counter()
        session.set_layers((layer,), "bench", value=0.80 + 0.02 * i)
        wait(lambda: session.accuracy_is_current)
        lags.append(time.perf_counter() - start)
    window.close()
    return lags


def drag_rows(what: str, drag: Drag) -> list[tuple[str, str, str, bool]]:
    """The table rows of one drag: GUI stall (worst, median, against idle) and estimate lag."""
    t, lags = drag.ticker, drag.lags
    p95 = sorted(t.latencies)[int(0.95 * (len(t.latencies) - 1))]
    lag = statistics.median(lags) if lags else float("nan")
    return [
        (f"GUI thread latency while dragging {what}'s threshold (worst of {len(t.latencies)} "
         f"ticks; median {statistics.median(t.latencies):.1f}, p95 {p95:.1f} ms; the GUI "
         f"thread's own CPU in the worst tick {t.worst_cpu:.1f} ms, {drag.cpu_per_move:.1f} ms "
         f"a move ({drag.idle_cpu_per_move:.1f} idle); idle baseline in the same run: worst "
         f"{drag.idle.worst:.1f} ms, ratio {drag.ratio:.1f}x)", f"{t.worst:.1f} ms",
         f"<= {LATENCY_TARGET_MS:g} ms", t.worst <= LATENCY_TARGET_MS),
        (f"estimate visible after a move, {what} (median of {len(lags)} that landed; max "
         f"{max(lags, default=float('nan')):.0f} ms)", f"{lag:.0f} ms",
         f"<= {ESTIMATE_TARGET_MS:g} ms", bool(lags) and lag <= ESTIMATE_TARGET_MS),
    ]


def print_drags(path: Path, layer: str, what: str, repeat: int) -> int:
    """``--drag-only``: the embedding's drag ``repeat`` times, one line each."""
    ok = True
    for _ in range(repeat):
        rows_out = drag_rows(what, drag_session(path, 60, layer))
        print(f"load {os.getloadavg()[0]:.1f}: " + "; ".join(
            f"{a.split(' (')[0]}: {b} ({'PASS' if good else 'FAIL'}) ({a.split(' (', 1)[1]}"
            for a, b, _, good in rows_out))
        ok = ok and all(good for *_, good in rows_out)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 1M-weight layer")
    parser.add_argument("--drag-only", type=int, metavar="N", default=0,
                        help="only drag the embedding with outliers, N times (no file written)")
    args = parser.parse_args()
    rows, cols = (1000, 1000) if args.quick else (4000, 2500)
    erows = 2600 if args.quick else 26000
    emb_what = f"a {erows * 384 / 1e6:.1f}M-weight embedding with 0.1% outliers at 20-50 std"
    with tempfile.TemporaryDirectory() as tmp:
        if args.drag_only:
            return print_drags(make_embedding(Path(tmp), erows, 384), EMBEDDING, emb_what,
                               args.drag_only)
        model = make_model(Path(tmp), rows, cols)
        start = start_up(model)
        dense = drag_session(model, 60)
        many_ready, many_latency = first_estimate(make_many(Path(tmp)))
        emb = drag_session(make_embedding(Path(tmp), erows, 384), 60, EMBEDDING)
        big = 10_000_000 if args.quick else 100_000_000
        ready, load_latency, steps = open_large(Path(tmp), big)
    from inspector.gui.accuracy import SETTLE_MS

    samples = HERE.parent / "sample_models"
    acc = accuracy_lag(samples / "lenet5_scripted.pt", samples / "mnist_test.h5",
                       samples / "lenet5_paper.json", "ip1.weight", 5)
    rows_out = [
        ("window shown after process start (warm JIT)", f"{start:.2f} s",
         f"<= {START_TARGET_S:g} s", start <= START_TARGET_S),
        *drag_rows(f"a {rows * cols / 1e6:g}M-weight layer", dense),
        (f"open a detector-shaped model (151 conv tensors: 147 small, 4 big; npz): first "
         f"estimate on screen (worst GUI latency meanwhile {many_latency:.0f} ms)",
         f"{many_ready:.2f} s", f"<= {MANY_TARGET_S:g} s", many_ready <= MANY_TARGET_S),
        *drag_rows(emb_what, emb),
        (f"open a {big / 1e6:.0f}M-parameter model: ready (estimated) after {ready:.1f} s with "
         f"{steps} progress steps; worst GUI latency meanwhile", f"{load_latency:.0f} ms",
         f"<= {LATENCY_TARGET_MS:g} ms (interactive)", load_latency <= LATENCY_TARGET_MS),
        (f"measured accuracy on screen after a settings change (LeNet-5 sample, 1,000 digits; "
         f"median of {len(acc)}, max {max(acc):.2f} s; includes the {SETTLE_MS} ms settle)",
         f"{statistics.median(acc):.2f} s", f"<= {ACCURACY_TARGET_S:g} s",
         statistics.median(acc) <= ACCURACY_TARGET_S),
    ]
    lines = ["| benchmark | measured | target | result |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {'PASS' if ok else 'FAIL'} |" for a, b, c, ok in rows_out]
    load = "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n".join([f"# inspector app responsiveness ({time.strftime('%Y-%m-%d %H:%M')}, "
                      f"{load})", "",
                      *lines, "", "Intermediate estimates are replaced by newer ones while the "
                      "drag goes on (newest request wins); the lag counts those that landed. "
                      "The idle baseline is the same window's latency, nothing moving, for as "
                      "long as the drag, just before it: what the machine's load alone costs.",
                      ""])
    print(text)
    if not args.quick:
        (HERE / "gui_results.md").write_text(text, encoding="utf-8")
    return 0 if all(ok for *_, ok in rows_out) else 1


if __name__ == "__main__":
    sys.exit(main())
