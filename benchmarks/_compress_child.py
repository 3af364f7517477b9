"""Child process of item 5: load a model, then time the ``compress`` generator in-process.

Usage: python _compress_child.py MODEL OUT WARM [compress flags...]; prints one JSON object.
WARM is a tiny model compressed first (timed apart) so numba's cached kernels are loaded
before the timed run, or ``-`` for none. Settings come from the CLI's own argument parser, so
they match ``inspector compress``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import defaultdict


def vm(field: str) -> int:
    """A /proc/self/status size in bytes (VmRSS, VmHWM, RssAnon, RssFile)."""
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def main(argv: list[str]) -> None:
    t0 = time.perf_counter()
    import numpy as np
    import torch  # noqa: F401 - read_model imports it anyway; count it as start-up

    from inspector.cli import _parser
    from inspector.cli_flags import apply_flags
    from inspector.io import read_model
    from inspector.model.settings import ModelSettings
    from inspector.tasks.codec import ModelCodec, compress
    from inspector.tasks.drive import run_to_end

    model_path, out, warm = argv[0], argv[1], argv[2]
    args = _parser().parse_args(["compress", model_path, "-o", out, *argv[3:]])
    settings = apply_flags(ModelSettings(), args)
    import_s = time.perf_counter() - t0
    rss_import = vm("VmRSS")
    warm_s = 0.0
    if warm != "-":
        tw = time.perf_counter()
        run_to_end(compress(ModelCodec(read_model(warm)), settings, out + ".warm.dcz"))
        warm_s = time.perf_counter() - tw
    t1 = time.perf_counter()
    model = read_model(args.model)
    t2 = time.perf_counter()
    rss_load = vm("VmRSS")
    gen = compress(ModelCodec(model), settings, args.output)
    phases: dict[str, float] = defaultdict(float)
    label, last = "start", time.perf_counter()

    def on_step(step) -> None:  # the time since the last step goes to that step's phase
        nonlocal label, last
        now = time.perf_counter()
        phases[label.split()[0]] += now - last
        label, last = step.label, now

    estimate, nbytes = run_to_end(gen, on_step)
    t3 = time.perf_counter()
    phases[label.split()[0]] += t3 - last
    peak = vm("VmHWM")
    anon, mapped = vm("RssAnon"), vm("RssFile")
    t4 = time.perf_counter()
    for a in model.tensors.values():
        np.abs(a).sum()
    t5 = time.perf_counter()
    print(json.dumps({
        "import_s": import_s, "warm_s": warm_s, "load_s": t2 - t1, "compress_s": t3 - t2,
        "read_pass_s": t5 - t4,
        "phases": dict(phases), "rss_import": rss_import, "rss_load": rss_load,
        "rss_peak_compress": peak, "rss_anon_end": anon, "rss_file_end": mapped,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "model_nbytes": model.nbytes, "file_nbytes": nbytes,
        "estimated_nbytes": estimate.file_nbytes,
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
