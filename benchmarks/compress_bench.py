"""Item 5: ``inspector compress`` of a ~100M-parameter float32 model, end to end.

The model (Gaussian fc layers, std 0.02, plus biases) is written with ``torch.save`` to a
temporary directory, untimed. Then, in separate processes:

* the real CLI under ``/usr/bin/time -v``: wall time and peak RSS of everything;
* ``_compress_child.py``: loads the model, then times the ``compress`` generator alone, per
  phase, and a plain read pass over all weights as the in-run baseline;
* the start-up baseline: python + torch + inspector imports, its wall time and RSS.

zstd -19 of the raw float32 weights runs on a prefix of them and is scaled (level 19 runs at
~1 MB/s here); its compressed size is cached under ``.cache``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import CACHE, HERE, Row, check, gaussian, log, mb, median, secs

THROUGHPUT_TARGET = 50e6  # bytes of input per second
MEMORY_TARGET = 2.5  # peak RSS / model size
ZSTD_TARGET = 10.0  # zstd -19 size / our file size
FLAGS = ["--sparsity", "0.9", "--bits", "5", "--json"]
TIME = "/usr/bin/time"
STARTUP = (
    "import torch, numpy; import inspector.cli, inspector.io, inspector.tasks.codec, "
    "inspector.io.pytorch, inspector.core.layer"
)


def _s(seconds: float) -> str:
    return secs(seconds) if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def layer_shapes(quick: bool) -> list[tuple[int, int]]:
    """Five 4096x4096 and four 1000x4096 fc layers: 100.27M weights (quick: 12.5M)."""
    if quick:
        return [(2048, 2048)] * 2 + [(1000, 2048)] * 2
    return [(4096, 4096)] * 5 + [(1000, 4096)] * 4


def build_model(path: Path, quick: bool, zstd_subset: int) -> tuple[int, bytes]:
    """Write the model; return (parameter count, the first ``zstd_subset`` weights' bytes)."""
    import torch

    state, prefix, have = {}, [], 0
    for i, shape in enumerate(layer_shapes(quick)):
        w = gaussian(shape[0] * shape[1], seed=100 + i, std=0.02).reshape(shape)
        state[f"fc{i}.weight"] = torch.from_numpy(w)
        state[f"fc{i}.bias"] = torch.from_numpy(gaussian(shape[0], seed=200 + i, std=0.02))
        if have < zstd_subset:
            prefix.append(w.reshape(-1)[: zstd_subset - have].tobytes())
            have += min(w.size, zstd_subset - have)
    torch.save(state, path)
    return sum(t.numel() for t in state.values()), b"".join(prefix)


def zstd_ratio(raw: bytes, level: int = 19) -> tuple[float, float, bool]:
    """(raw / compressed, seconds or nan if cached, cached) of zstd at ``level`` on ``raw``."""
    import zstandard

    key = hashlib.sha1(raw).hexdigest()[:16]
    path = CACHE / f"zstd{level}_{key}.json"
    if path.exists():
        return len(raw) / json.loads(path.read_text())["nbytes"], float("nan"), True
    log(f"zstd -{level} on {mb(len(raw))} (cached afterwards)")
    t = time.perf_counter()
    n = len(zstandard.ZstdCompressor(level=level).compress(raw))
    elapsed = time.perf_counter() - t
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps({"nbytes": n, "raw": len(raw), "seconds": elapsed}))
    return len(raw) / n, elapsed, False


def _inspector_cmd() -> list[str]:
    script = Path(sys.executable).with_name("inspector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "inspector.cli"]


def timed_process(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of a child process (under time -v if present)."""
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-v", *cmd] if use_time else cmd
    t = time.perf_counter()
    done = subprocess.run(full, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    if use_time:
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        rss = int(found.group(1)) * 1024 if found else -1
    else:  # the max over all children so far: only an upper bound
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return wall, rss, done.stdout


def run(quick: bool, repeat: int, zstd_subset: int) -> tuple[list[Row], list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="inspector-bench-"))
    try:
        return _run(tmp, quick, repeat, zstd_subset)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(tmp: Path, quick: bool, repeat: int, zstd_subset: int) -> tuple[list[Row], list[str]]:
    import torch

    model, out = tmp / "model.pt", tmp / "model.dcz"
    log("item 5: building and saving the model (untimed)")
    params, raw = build_model(model, quick, zstd_subset)
    zr, z_s, z_cached = zstd_ratio(raw)
    del raw
    tiny = tmp / "tiny.pt"  # warm the numba cache and the disk cache of the interpreter
    torch.save({"a.weight": torch.randn(300, 300), "a.bias": torch.randn(300)}, tiny)
    timed_process([*_inspector_cmd(), "compress", str(tiny), "-o", str(tmp / "t.dcz"), *FLAGS])

    start = [timed_process([sys.executable, "-c", STARTUP]) for _ in range(repeat)]
    base_wall, base_rss = median([s[0] for s in start]), median([s[1] for s in start])
    cli, child = [], []
    for r in range(repeat):
        out.unlink(missing_ok=True)
        log(f"item 5: CLI run {r + 1}/{repeat}")
        cli.append(timed_process([*_inspector_cmd(), "compress", str(model), "-o", str(out),
                                  *FLAGS]))
        on_disk = out.stat().st_size
        out.unlink()
        log(f"item 5: in-process run {r + 1}/{repeat}")
        _, rss, text = timed_process([sys.executable, str(HERE / "_compress_child.py"),
                                      str(model), str(out), str(tiny), *FLAGS[:-1]])
        child.append(json.loads(text) | {"time_v_rss": rss})
    report = json.loads(cli[-1][2])
    model_nbytes = int(report["original_nbytes"])
    file_nbytes, est = int(report["file_nbytes"]), int(report["estimated_nbytes"])
    cli_wall, cli_rss = median([c[0] for c in cli]), median([c[1] for c in cli])
    comp = median([c["compress_s"] for c in child])
    read = median([c["read_pass_s"] for c in child])
    load = median([c["load_s"] for c in child])
    warm = median([c["warm_s"] for c in child])
    child_rss = median([c["rss_peak_compress"] for c in child])
    zstd_est = model_nbytes / zr
    label = f"{params / 1e6:.1f}M params, {mb(model_nbytes)}"
    how = "cached" if z_cached else f"took {secs(z_s)}"
    rows = [
        Row("5", f"compress throughput, in-process generator, kernels loaded ({label})",
            f"{model_nbytes / comp / 1e6:.0f} MB/s ({secs(comp)})",
            f">= {THROUGHPUT_TARGET / 1e6:.0f} MB/s",
            f"np.abs(w).sum() over all weights {_s(read)}",
            f"{comp / read:.1f}x read", check(model_nbytes / comp >= THROUGHPUT_TARGET)),
        Row("5", "  same, plus loading numba's cached kernels (first compress of a process)",
            f"{model_nbytes / (comp + warm) / 1e6:.0f} MB/s ({secs(comp + warm)})",
            f">= {THROUGHPUT_TARGET / 1e6:.0f} MB/s", f"kernel load {_s(warm)}",
            f"{(comp + warm) / read:.1f}x read",
            check(model_nbytes / (comp + warm) >= THROUGHPUT_TARGET)),
        Row("5", "  compress throughput, whole CLI process (start-up + load + compress)",
            f"{model_nbytes / cli_wall / 1e6:.0f} MB/s ({secs(cli_wall)})",
            f">= {THROUGHPUT_TARGET / 1e6:.0f} MB/s",
            f"python+torch+inspector start {secs(base_wall)}",
            f"{cli_wall / base_wall:.1f}x start-up",
            check(model_nbytes / cli_wall >= THROUGHPUT_TARGET)),
        Row("5", "peak RSS of the CLI process / model size", f"{mb(cli_rss)} = "
            f"{cli_rss / model_nbytes:.2f}x", f"<= {MEMORY_TARGET}x",
            f"start-up RSS {mb(base_rss)}", f"{(cli_rss - base_rss) / model_nbytes:.2f}x above "
            "start-up", check(cli_rss / model_nbytes <= MEMORY_TARGET)),
        Row("5", "compressed file size vs zstd -19 of the raw float32 weights",
            f"{file_nbytes:,} B", f">= {ZSTD_TARGET:g}x smaller",
            f"zstd -19 ~{zstd_est:,.0f} B (x{zr:.4f} on first {zstd_subset / 1e6:g}M "
            f"weights, scaled; {how})", f"{zstd_est / file_nbytes:.1f}x smaller",
            check(zstd_est / file_nbytes >= ZSTD_TARGET)),
        Row("5", "file size vs estimate", f"file {file_nbytes:,} B, on disk {on_disk:,} B",
            "equal", f"estimate {est:,} B", f"diff {file_nbytes - est} B",
            check(file_nbytes == est == on_disk)),
    ]
    phases = {k: median([c["phases"].get(k, 0.0) for c in child]) for k in child[0]["phases"]}
    notes = [
        f"item 5: model {label}, ratio {model_nbytes / file_nbytes:.1f}x; in-process child: "
        f"import {secs(median([c['import_s'] for c in child]))}, numba kernel load (tiny model "
        f"compress) {secs(warm)}, load (mmap) {_s(load)}, "
        "compress phases " + ", ".join(f"{k} {secs(v)}" for k, v in phases.items()
                                       if k not in ("start", "done"))
        + f"; RSS after import {mb(median([c['rss_import'] for c in child]))}, after load "
        f"{mb(median([c['rss_load'] for c in child]))}, peak {mb(child_rss)} "
        f"({child_rss / model_nbytes:.2f}x model); at the end of compress RSS is "
        f"{mb(median([c['rss_anon_end'] for c in child]))} anonymous + "
        f"{mb(median([c['rss_file_end'] for c in child]))} file-backed (the mmap'd checkpoint "
        "and libraries)",
        "item 5 CLI runs (wall s, peak RSS MB): "
        + ", ".join(f"({c[0]:.2f}, {c[1] / 1e6:.0f})" for c in cli),
    ]
    return rows, notes
