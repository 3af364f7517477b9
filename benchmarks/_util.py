"""Shared helpers of the benchmark scripts: timing, result rows, the table, machine info."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
ROOT = HERE.parent


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the results table."""

    item: str
    name: str
    value: str
    target: str
    baseline: str
    ratio: str
    status: str  # "PASS", "FAIL" or "info"


def check(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_time(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall seconds of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeat))


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.2f} s"


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:,.2f} MB"


def gaussian(n: int, seed: int, std: float = 1.0) -> np.ndarray:
    """``n`` float32 samples of N(0, std^2), the same for the same seed."""
    w = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    if std != 1.0:
        w *= np.float32(std)
    return w


def read_pass(w: np.ndarray) -> Callable[[], object]:
    """The read baseline: one ``np.abs(w).sum()`` over the layer."""
    return lambda: np.abs(w).sum()


@numba.njit(nogil=True, fastmath=True, cache=False)
def _count_at_least(w: np.ndarray, t: float) -> int:
    n = 0
    for i in range(w.size):
        n += abs(w[i]) >= t
    return n


def read_floor(w: np.ndarray) -> Callable[[], object]:
    """A pure read pass (numba, vectorised, no temporaries): the floor of touching every weight."""
    _count_at_least(w[:16], 1.0)  # compile outside the timing
    return lambda: _count_at_least(w, 1.5)


def log(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- report


def format_table(rows: Sequence[Row]) -> str:
    """A GitHub-markdown table of ``rows``."""
    head = ("#", "benchmark", "measured", "target", "baseline", "ratio", "result")
    body = [(r.item, r.name, r.value, r.target, r.baseline, r.ratio, r.status) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(b) for b in body)])


def machine_info() -> list[str]:
    """Date, platform, CPU, core count and library versions, one item a line."""
    import numpy

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(x.split(":", 1)[1].strip() for x in f if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(x for x in f if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"platform: {platform.platform()}",
        f"cpu: {cpu}, {os.cpu_count()} logical cores{mem}",
        f"python {platform.python_version()}, numpy {numpy.__version__}, numba {numba.__version__}",
        f"commit: {_commit()}",
    ]


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        )
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(ROOT), "status", "--porcelain", "-uno"],
            capture_output=True, text=True, timeout=10,
        )
        return out.stdout.strip() + (" (working tree modified)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
