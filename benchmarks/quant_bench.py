"""Item 3: the quantizer on the survivors of a 90%-pruned Gaussian layer.

``kmeans`` runs on the codec's own survivor points (the fine grid histogram the size estimate
uses). Its SSE is compared with the exact optimum over the exact distinct survivor values
(``optimal_starts``; seconds to tens of seconds, cached under ``.cache``), with scikit-learn's
Lloyd from linear-spaced centroids, and with the paper's Lloyd initialisations.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np
from _util import CACHE, Row, check, log, median, median_time, ms, secs

from inspector.core import cluster as cl
from inspector.core.cluster import Points, kmeans, optimal_starts
from inspector.core.layer import LayerCodec, Survivors
from inspector.core.settings import LayerSettings

TARGETS_S = {32: 0.030, 256: 0.250}
SSE_TARGET = 1.001  # the issue: "optimal or within 0.1% of the optimal 1-D k-means SSE"


def survivors(codec: LayerCodec, sparsity: float) -> tuple[Survivors, np.ndarray]:
    """The codec's survivors at ``sparsity`` and their float64 values in position order."""
    mask = codec.mask(LayerSettings(policy="sparsity", value=sparsity))
    surv = codec._survivors.get(mask, lambda: codec._select(mask))
    pos = np.cumsum(surv.gaps, dtype=np.int64) - 1
    return surv, codec.weights[pos].astype(np.float64)


def exact_optimum(values: np.ndarray, k: int) -> tuple[float, float, bool]:
    """(SSE, seconds or nan if cached, whether cached) of the optimal k-partition of ``values``."""
    uniq, cnt = np.unique(values, return_counts=True)
    key = hashlib.sha1(uniq.tobytes() + cnt.tobytes()).hexdigest()[:16]
    path = CACHE / f"optimal_starts_{key}_k{k}.npy"
    elapsed, cached = float("nan"), path.exists()
    if cached:
        starts = np.load(path)
    else:
        log(f"exact optimum K={k} on {uniq.size} distinct values (slow, cached afterwards)")
        points = Points(cnt.astype(np.int64), uniq * cnt, uniq * uniq * cnt)
        t = time.perf_counter()
        starts = optimal_starts(points, k)
        elapsed = time.perf_counter() - t
        CACHE.mkdir(exist_ok=True)
        np.save(path, starts)
    s1 = np.add.reduceat(uniq * cnt, starts)
    s2 = np.add.reduceat(uniq * uniq * cnt, starts)
    n = np.add.reduceat(cnt.astype(np.float64), starts)
    return float(np.sum(s2 - s1 * s1 / n)), elapsed, cached


def sklearn_lloyd(values: np.ndarray, k: int, repeat: int) -> tuple[float, float, int]:
    """(median seconds, SSE, clusters used) of KMeans(init=linear centroids, n_init=1, lloyd)."""
    from sklearn.cluster import KMeans

    x = values.astype(np.float32).reshape(-1, 1)  # the weights' own dtype
    init = np.linspace(x.min(), x.max(), k, dtype=np.float32).reshape(-1, 1)
    times, model = [], None
    for _ in range(repeat):
        model = KMeans(n_clusters=k, n_init=1, init=init, algorithm="lloyd")
        t = time.perf_counter()
        model.fit(x)
        times.append(time.perf_counter() - t)
    labels = model.labels_
    centers = model.cluster_centers_.astype(np.float64).ravel()
    sse = float(np.sum((values - centers[labels]) ** 2))
    return median(times), sse, int(np.unique(labels).size)


def run(
    codec: LayerCodec, sparsity: float, repeat: int, sk_repeat: int
) -> tuple[list[Row], list[str]]:
    surv, values = survivors(codec, sparsity)
    pts = surv.points
    n = values.size
    log(f"item 3: {n} survivors, {pts.size} grid points")
    rows, notes = [], []
    for k in (32, 256):
        opt, opt_s, cached = exact_optimum(values, k)
        notes.append(_tradeoff(pts, k, opt))
        how = "cached" if cached else f"took {secs(opt_s)}"
        t = median_time(lambda k=k: kmeans(pts, k), repeat)
        c = kmeans(pts, k)
        sk_t, sk_sse, sk_used = sklearn_lloyd(values, k, sk_repeat)
        log(f"item 3 K={k}: kmeans {ms(t)} sse x{c.sse / opt:.6f}; sklearn {secs(sk_t)} "
            f"x{sk_sse / opt:.4f}")
        rows += [
            Row("3", f"kmeans(optimal) K={k} on {n / 1e6:.2g}M survivors ({pts.size} grid pts)",
                ms(t), f"<= {ms(TARGETS_S[k])}", f"sklearn {secs(sk_t)}",
                f"{sk_t / t:.0f}x faster", check(t <= TARGETS_S[k])),
            Row("3", f"  SSE / exact optimum, K={k} (optimum: {how})", f"{c.sse / opt:.6f}",
                f"<= {SSE_TARGET}", f"sklearn {sk_sse / opt:.4f}", f"{c.size} of {k} alive",
                check(c.sse / opt <= SSE_TARGET)),
            Row("3", f"  sklearn KMeans lloyd, linear init, K={k}", secs(sk_t), "info",
                f"SSE x{sk_sse / opt:.4f}", f"{sk_used} of {k} used", "info"),
        ]
        for init in ("linear", "density", "random"):
            ti = median_time(lambda k=k, init=init: kmeans(pts, k, init), max(3, repeat // 2))
            ci = kmeans(pts, k, init)
            rows.append(Row("3", f"  kmeans init={init}, K={k}", f"SSE x{ci.sse / opt:.4f}",
                            "info", ms(ti), f"{ci.size} of {k} alive", "info"))
    return rows, notes


def _tradeoff(pts: Points, k: int, opt: float) -> str:
    """Where the SSE gap and the time go: the fine grid's own optimum, and the coarse size.

    Runs kmeans(init="optimal") (coarse DP, then DP in windows on the fine grid) with other
    coarse limits; the current one is ``cluster.COARSE_PER_CLUSTER`` points per cluster.
    """
    try:
        t = time.perf_counter()
        grid = cl._finish(pts, optimal_starts(pts, k))
        parts = [f"exact DP on all {pts.size} grid points {secs(time.perf_counter() - t)}, "
                 f"SSE x{grid.sse / opt:.6f} (the grid's floor)"]
        current = min(cl.COARSE_MAX, max(cl.COARSE_MIN, cl.COARSE_PER_CLUSTER * k))
        limits = {max(cl.COARSE_MIN, p * k) for p in (8, 16, 32, 64, 128)} | {current}
        limits = {x for x in limits if x < pts.size // 2}
        for limit in sorted(limits):

            def go(limit: int = limit) -> cl.Clustering:
                saved = cl.COARSE_MIN, cl.COARSE_PER_CLUSTER, cl.COARSE_MAX
                cl.COARSE_MIN, cl.COARSE_PER_CLUSTER, cl.COARSE_MAX = limit, 1, limit
                try:
                    return cl.kmeans(pts, k)
                finally:
                    cl.COARSE_MIN, cl.COARSE_PER_CLUSTER, cl.COARSE_MAX = saved

            t = median_time(go, 3)
            mark = " (current)" if limit == current else ""
            parts.append(f"coarse limit {limit}{mark}: {ms(t)}, SSE x{go().sse / opt:.6f}")
        return f"item 3 K={k} quality/time trade-off: " + "; ".join(parts)
    except Exception as exc:
        return f"item 3 K={k} trade-off unavailable: {type(exc).__name__}: {exc}"
