"""Bytes against output fidelity, every codec side by side on the same models (issue 12).

    python benchmarks/rd_bench.py            # every model (~15 min of CPU, on 2 idle cores)
    python benchmarks/rd_bench.py --quick    # a few points per codec, LeNets only (smoke test)
    python benchmarks/rd_bench.py --models lenet300 lenet5 --ours uniform:lam=1e-5,1e-4

Codecs, each swept, each measured by its own bytes and decoded from them:

- **NNCodec** 2.1.3, the MPEG NNC reference software (ISO/IEC 15938-17): QP and the lambda
  scale of its rate-distortion quantizer swept, dependent quantization on, DeepCABAC; bytes =
  the bitstream's length. Not in the ``bench`` extra: install it by hand with
  ``.venv/bin/pip install --no-deps nncodec==2.1.3`` (builds from source with the system
  compiler). Its requirements pin ``numpy<2`` and pull ``torchvision``, whose PyPI wheel does
  not load with our CPU torch, so a plain install would break the venv; the tensor API needs
  neither (:mod:`rd_nnc`). Without it the NNCodec column is empty.
- **int-N + zstd**: per-output-channel symmetric uniform int-N (N = 2..8), zstd level 19;
  the int8 and int4 columns are its N = 8 and N = 4 points, "int-N" the best N.
- **Deep Compression** through ``inspector compress`` (bytes of the ``.dcz`` written):
  the paper's settings file where there is one, and the best of a sweep of sparsity, bits
  and k-means init.
- **ours: METHOD**: every method in ``inspector.core.stages.registry``, swept (:mod:`rd_ours`);
  none is registered yet on this branch, then the column is left out and the run says so.

Fidelity: LeNets, top-1 drop (points) on the 1,000 bundled MNIST test digits; EfficientNet-Lite0,
logit cosine on bundled photographs; MiniLM, sentence-embedding cosine; PP-OCRv4 det, output
cosine in onnxruntime (:mod:`rd_models`). Ratio = float32 bytes of the coded tensors / bytes.
Prints the tables and writes benchmarks/rd_results.md (``--quick``: benchmarks/.cache/).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import rd_codecs
import rd_nnc
import rd_ours
import torch
from _util import CACHE, HERE, log, machine_info
from rd_codecs import Point
from rd_models import Score, Subject, subjects
from rd_table import markdown, summary

ALL = ("lenet300", "lenet5", "effnet", "minilm", "ppocr")
INTN_BITS = ((2, 3, 4, 5, 6, 7, 8), (4, 5, 6, 7, 8), (4, 6, 7, 8))  # by tier


def run_subject(subj: Subject, quick: bool, ours: dict, only: set[str] | None = None,
                baselines: bool = True) -> tuple[list[Point], list[str]]:
    """Every codec's points on ``subj``, and one line per codec of how long its sweep took
    (encode, decode and measure: wall seconds)."""
    points: list[Point] = []
    times: list[str] = []

    def add(codec: str, gen: Iterator[Point]) -> None:
        t = time.perf_counter()
        got = list(gen)
        points.extend(got)
        times.append(f"{codec}: {len(got)} points in {time.perf_counter() - t:.0f} s")
        log(f"{subj.name}: {times[-1]}")

    same = subj.measure(subj.tensors)
    log(f"{subj.name}: uncompressed scores {same.value:g} ({same.note})")
    if baselines and rd_nnc.load() is not None:
        add("NNCodec", rd_codecs.measured("NNCodec", subj, rd_codecs.nnc_points(subj, quick)))
    if baselines:
        bits = (4, 8) if quick else INTN_BITS[subj.tier]
        add("int-N + zstd",
            rd_codecs.measured("int-N+zstd", subj, rd_codecs.intn_points(subj, bits)))
        settings = rd_codecs.deep_settings(subj, quick)
        add("Deep Compression",
            rd_codecs.measured("Deep Compression", subj, rd_codecs.deep_points(subj, settings)))
    budget = 4 if quick else (24, 10, 6)[subj.tier]
    for m in rd_ours.methods():
        if only is not None and m.name not in only:
            continue
        name = f"ours: {m.name}"
        add(name, rd_codecs.measured(name, subj, rd_ours.ours_points(
            subj, m, budget, ours.get(m.name, {}))))
    return points, times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few points, LeNets only")
    p.add_argument("--models", nargs="+", choices=ALL, help=f"default: all ({', '.join(ALL)})")
    p.add_argument("--ours", action="append", default=[], metavar="METHOD:OPT=V1,V2",
                   help="the grid of a registered method's option (repeatable)")
    p.add_argument("--tables-from", type=Path, nargs="+", metavar="JSON",
                   help="rebuild the tables from saved benchmarks/.cache/rd_points-*.json "
                   "(several: a later file's models replace an earlier one's)")
    p.add_argument("--ours-methods", metavar="M1,M2",
                   help="sweep only these registered methods (default: every one)")
    p.add_argument("--no-baselines", action="store_true",
                   help="measure only the registered methods (merge the points with an earlier "
                   "run's by --tables-from: a later file adds its codecs to a model's)")
    args = p.parse_args(argv)
    only = set(args.ours_methods.split(",")) if args.ours_methods else None
    torch.set_num_threads(2)
    which = args.models or (["lenet300", "lenet5"] if args.quick else list(ALL))
    ours = rd_ours.parse_override(args.ours)
    began, cpu = time.perf_counter(), time.process_time()
    notes: list[str] = []
    if rd_nnc.load() is None:
        notes.append("NNCodec is not installed (`.venv/bin/pip install --no-deps "
                     "nncodec==2.1.3`): its column is empty.")
    else:
        notes.append(f"NNCodec {rd_nnc.version()} (tensor API, DeepCABAC, dependent "
                     "quantization on).")
    registered = [m.name for m in rd_ours.methods()]
    if not registered:
        notes.append("No method is registered in inspector.core.stages.registry on this "
                     "commit: the \"ours\" hook skipped (it sweeps any method once one lands).")
    sections, dump, results = [], {}, []
    saved = _merged(args.tables_from) if args.tables_from else None
    mode = "quick" if args.quick else "full"
    dest = CACHE / "rd_results-quick.md" if args.quick else HERE / "rd_results.md"
    CACHE.mkdir(exist_ok=True)
    if saved is not None:
        # the measuring run's machine and times, not the rebuild's
        run = saved["_run"] or _run_lines(dest)
        names = ", ".join(f.name for f in args.tables_from)
        notes.append(f"Tables rebuilt from {names} (the points those runs measured; a later "
                     f"file's model replaces an earlier one's) at {machine_info()[-1]}.")
    for subj in subjects(which):
        if saved is not None:
            if subj.name not in saved:
                continue
            pts = [Point(c, lb, n, Score(v, note)) for c, lb, n, v, note in saved[subj.name]]
            times = saved.get("_times", {}).get(subj.name, [])
        else:
            pts, times = run_subject(subj, args.quick, ours, only, not args.no_baselines)
        sections.append(markdown(subj, pts, times))
        results.append((subj, pts))
        dump[subj.name] = [[q.codec, q.label, q.nbytes, q.score.value, q.score.note]
                           for q in pts]
        dump.setdefault("_times", {})[subj.name] = times
        if saved is None:  # written after every model: a run that is stopped keeps its points
            done = "" if len(sections) == len(which) else f" (so far: {len(sections)} of " \
                f"{len(which)} models)"
            run = _run_lines(None, time.perf_counter() - began, time.process_time() - cpu, done)
            dump["_run"] = run
            (CACHE / f"rd_points-{mode}.json").write_text(json.dumps(dump, indent=1))
        dest.write_text(_report(mode, run, notes, [summary(results), *sections]))
    text = _report(mode, run, notes, [summary(results), *sections])
    print(text)
    print(f"wrote {dest} and {CACHE / f'rd_points-{mode}.json'}", file=sys.stderr)
    return 0


def _merged(files: list[Path]) -> dict:
    """Saved points of several runs, a later file's models replacing an earlier one's; the
    header lines of each run whose points are kept, labelled with the models they measured
    when there are several runs."""
    runs = [json.loads(f.read_text()) for f in files]
    owner = {k: i for i, got in enumerate(runs) for k in got if not k.startswith("_")}
    out: dict = {"_times": {}, "_run": []}
    for i, got in enumerate(runs):
        kept = [k for k, o in owner.items() if o == i]
        for k in kept:  # an earlier run's codecs that this one did not measure stay
            mine = {p[0] for p in got[k]}
            earlier = [p for j in range(i) for p in runs[j].get(k, []) if p[0] not in mine]
            out[k] = earlier + got[k]
        out["_times"].update({k: v for k, v in got.get("_times", {}).items() if k in kept})
        tag = f"{', '.join(kept)}: " if len(files) > 1 else ""
        per_run = ("date", "commit", "total time")
        lines = [f"{tag}{x}" if x.startswith(per_run) else x for x in got.get("_run", [])]
        out["_run"] += [x for x in lines if kept and x not in out["_run"]]
    return out


def _run_lines(report: Path | None, wall: float = 0.0, cpu: float = 0.0,
               state: str = "") -> list[str]:
    """Machine and times of this run, or (``report``) those of the report a run wrote."""
    if report is not None:
        keep = ("- date", "- platform", "- cpu", "- python", "- commit", "- total time")
        lines = report.read_text().splitlines() if report.exists() else []
        return [x[2:] for x in lines if x.startswith(keep)]
    return [*machine_info(),
            f"total time{state}: {wall:.0f} s wall, {cpu:.0f} s CPU (this process, all "
            "threads; the wall time grows when other jobs share the cores)"]


def _report(mode: str, run: list[str], notes: list[str], sections: list[str]) -> str:
    head = [f"# Rate-distortion: bytes at equal output fidelity ({mode} run)", "",
            *(f"- {m}" for m in run), "", *(f"- {n}" for n in notes), ""]
    return "\n".join([*head, *sections])


if __name__ == "__main__":
    sys.exit(main())
