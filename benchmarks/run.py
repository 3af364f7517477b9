"""Performance targets of inspector, measured against baselines taken in the same run.

    python benchmarks/run.py            # everything (~5-10 min on 2 cores)
    python benchmarks/run.py --quick    # smaller sizes, fewer repeats
    python benchmarks/run.py --only 3   # just item 3 (repeatable: --only 1 --only 4)

Items: 1 plan after a threshold change, 2 plan after a cluster-count change, 3 quantizer speed
and SSE, 4 Huffman throughput, 5 whole ``inspector compress`` of a ~100M-parameter model.
Times are medians of repeated runs; every ratio is against a baseline measured in this run.
Prints a markdown table and writes it to benchmarks/results.md (a full run) or
benchmarks/.cache/results-partial.md (--quick / --only), stamped with the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from _util import CACHE, HERE, Row, format_table, gaussian, log, machine_info


@dataclass(frozen=True, slots=True)
class Scale:
    layer: int  # weights of the Gaussian layer of items 1-4
    plan_values: int  # new thresholds timed in item 1
    cluster_rounds: int  # rounds of item 2
    kmeans_repeat: int
    sklearn_repeat: int
    huffman_rounds: int  # interleaved inspector/dahuffman rounds of item 4
    dahuffman_subset: int
    compress_repeat: int
    zstd_subset: int


FULL = Scale(10_000_000, 20, 5, 9, 3, 7, 100_000, 3, 10_000_000)
QUICK = Scale(1_000_000, 10, 3, 5, 1, 3, 30_000, 1, 2_000_000)
SPARSITY = 0.9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    p.add_argument("--only", type=int, action="append", choices=range(1, 6), metavar="N",
                   help="run only item N (1-5); may be repeated")
    args = p.parse_args(argv)
    items = sorted(set(args.only or range(1, 6)))
    scale = QUICK if args.quick else FULL
    began = time.perf_counter()
    rows, notes = _run(items, scale, args.quick)
    elapsed = time.perf_counter() - began
    table = format_table(rows)
    mode = ("quick" if args.quick else "full") + f", items {','.join(map(str, items))}"
    head = [f"# inspector benchmarks ({mode})", "", *(f"- {m}" for m in machine_info()),
            f"- total benchmark time: {elapsed:.0f} s", ""]
    text = "\n".join([*head, table, "", "## Notes", "", *(f"- {n}" for n in notes), ""])
    print(text)
    partial = args.quick or args.only
    CACHE.mkdir(exist_ok=True)
    dest = CACHE / "results-partial.md" if partial else HERE / "results.md"
    dest.write_text(text)
    print(f"wrote {dest}", file=sys.stderr)
    return 1 if any(r.status == "FAIL" for r in rows) else 0


def _run(items: list[int], scale: Scale, quick: bool) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    codec = None
    if any(i in items for i in (1, 2, 3, 4)):
        from inspector.core.layer import LayerCodec

        log(f"building LayerCodec of a {scale.layer / 1e6:g}M-weight Gaussian layer (untimed)")
        codec = LayerCodec(gaussian(scale.layer, seed=0))
    if 1 in items or 2 in items:
        import plan_bench

        if 1 in items:
            r, n = plan_bench.run_threshold(codec, scale.plan_values)
            rows += r
            notes += n
        if 2 in items:
            r, n = plan_bench.run_clusters(codec, scale.cluster_rounds)
            rows += r
            notes += n
    if 3 in items:
        import quant_bench

        r, n = quant_bench.run(codec, SPARSITY, scale.kmeans_repeat, scale.sklearn_repeat)
        rows += r
        notes += n
    if 4 in items:
        import huffman_bench

        r, n = huffman_bench.run(codec, SPARSITY, scale.huffman_rounds, scale.dahuffman_subset)
        rows += r
        notes += n
    del codec
    if 5 in items:
        import compress_bench

        r, n = compress_bench.run(quick, scale.compress_repeat, scale.zstd_subset)
        rows += r
        notes += n
    return rows, notes


if __name__ == "__main__":
    sys.exit(main())
