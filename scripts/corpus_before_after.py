"""Every corpus case through ``inspector info`` and ``inspector compress`` on other checkouts:
the counts of clean refusals, crashes, hangs, silent acceptances and code run, before and after.

    .venv/bin/python scripts/corpus_before_after.py --checkout before=/work/wt/old11 \\
        --checkout after=. [--timeout 30] [--json OUT.json] [--markdown]

The cases are this checkout's ``tests/corpus/manifest*.json``. Each checkout runs in a driver
process of its own (``PYTHONPATH`` = the checkout) that imports the libraries and compiles the
kernels once, then forks a child per case and command: the child runs the CLI's ``main`` in an
empty folder, with at most ``--timeout`` seconds and 4 GiB of memory beyond what the driver
already maps; a child that outlives its time is killed with its process group (a hang).

Outcomes of one run: ``refused`` (exit 2 with an ``inspector: error:`` line), ``accepted``
(exit 0), ``crash`` (a signal such as SIGSEGV, exit 1 "internal error", the memory limit, or a
traceback), ``hang`` (killed after the timeout), ``code ran`` (the file's payload ran: its
marker file appeared, or it set ``INSPECTOR_CORPUS_PWNED``). A run that printed more than one
line on stderr (library warnings) is also counted as ``noisy``. Judged against the manifest: a
refusal expected and ``accepted`` instead is a **silent acceptance**; a file marked ``reads``
and refused is a **wrong refusal**.

``--from-json A.json B.json`` prints the tables of runs saved earlier with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
PWNED = "INSPECTOR_CORPUS_PWNED"
MEMORY_NBYTES = 4 << 30  # per child, beyond the driver's own mappings
OUTCOMES = ("refused", "accepted", "crash", "hang", "code ran")
DEFECTS = ("crash", "hang", "code ran", "silent acceptance", "wrong refusal")
COUNTED = (*OUTCOMES, "silent acceptance", "wrong refusal", "noisy")


def cases(corpus: Path) -> list[dict[str, Any]]:
    """Every manifest entry, with the manifest it came from."""
    out = []
    for manifest in sorted(corpus.glob("manifest*.json")):
        for entry in json.loads(manifest.read_text())["entries"]:
            out.append({**entry, "manifest": manifest.name})
    return out


# ------------------------------------------------------------------ driver (in the checkout)


def drive(corpus: Path, timeout: float, only: list[str]) -> None:
    """Run every case (or those named in ``only``) in forked children; print one JSON line
    per run."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    _preload(corpus)
    base = _mapped_nbytes()
    for entry in cases(corpus):
        if only and entry["file"] not in only:
            continue
        for command in ("info", "compress"):
            result = _run_forked(corpus, entry, command, timeout, base)
            print(json.dumps({"file": entry["file"], "command": command, **result}), flush=True)


def _preload(corpus: Path) -> None:
    """Import what the readers import, and compile the kernels by compressing a valid file,
    so children start at once."""
    import contextlib
    import io

    for name in ("numpy", "torch", "onnx", "h5py", "safetensors", "numba"):
        with contextlib.suppress(Exception):
            __import__(name)
    from inspector.cli import main

    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):  # fmt: skip
        main(["compress", str(corpus / "any_npz_named.bin"), "-o", f"{tmp}/warm.dcz"])
        main(["info", f"{tmp}/warm.dcz"])  # the decoders' kernels too


def _mapped_nbytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _run_forked(
    corpus: Path, entry: dict[str, Any], command: str, timeout: float, base: int
) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="case_"))
    path = corpus / entry["file"]
    argv = ["info", str(path)] if command == "info" else [
        "compress", str(path), "-o", str(scratch / "out.dcz")]
    out, err, status = scratch / "stdout", scratch / "stderr", scratch / "status.json"
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its own group (killed whole), folder, limits and output files
        try:
            os.setpgid(0, 0)
            os.chdir(scratch)
            limit = base + MEMORY_NBYTES
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            for fd, name in ((1, out), (2, err)):
                os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600), fd)
            _as_if_memory(entry.get("memory_nbytes"))
            from inspector.cli import main

            code = main(argv)
            status.write_text(json.dumps({"code": code, "pwned": PWNED in os.environ}))
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)
    hung = _wait(pid, timeout)
    result: dict[str, Any] = {"seconds": round(time.monotonic() - start, 2)}
    if hung is not None:
        result.update(hung)
    elif status.exists():
        result.update(json.loads(status.read_text()))
    else:
        result["signal"] = "exited without finishing"
    result["stderr"] = err.read_text(errors="replace")[-2000:] if err.exists() else ""
    marker = entry.get("marker")
    result["marker"] = bool(marker) and any(scratch.rglob(marker))
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    return result


def _as_if_memory(nbytes: int | None) -> None:
    """An entry's ``memory_nbytes``: the machine memory every bound of the checkout sees (as
    tests/io/test_corpus.py does)."""
    if nbytes is None:
        return
    import inspector.format.container as container_module

    container_module.memory_nbytes = lambda: nbytes  # type: ignore[attr-defined]
    try:
        import inspector.format.verify as verify_module
    except ImportError:  # a checkout without the summed bound
        return
    verify_module.memory_nbytes = lambda: nbytes  # type: ignore[attr-defined]


def _wait(pid: int, timeout: float) -> dict[str, Any] | None:
    """None when the child exits by itself; else what stopped it."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status):
                return {"signal": signal.Signals(os.WTERMSIG(status)).name}
            return None
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"hang": True}
        time.sleep(0.02)


# --------------------------------------------------------------------- judging and tables


def outcome(run: dict[str, Any]) -> str:
    """One of OUTCOMES for a run's record."""
    if run.get("marker") or run.get("pwned"):
        return "code ran"
    if run.get("hang"):
        return "hang"
    err = run.get("stderr", "")
    if "signal" in run or "Traceback" in err:
        return "crash"
    code = run.get("code")
    if code == 0:
        return "accepted"
    if code == 2 and "inspector: error: " in err:
        return "refused"
    return "crash"  # exit 1 ("internal error") or anything else


def verdict(entry: dict[str, Any], command: str, got: str) -> str:
    """The outcome judged against the manifest: ``ok`` or one of DEFECTS."""
    if got in ("crash", "hang", "code ran"):
        return got
    if command == "info":
        expect_refusal = entry["expect"] != "reads"
    else:
        expect_refusal = entry["expect"] != "reads" or "compress" in entry
    if expect_refusal:
        return "silent acceptance" if got == "accepted" else "ok"
    return "wrong refusal" if got == "refused" else "ok"


def run_checkout(
    checkout: Path, corpus: Path, timeout: float, only: list[str]
) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve()), "PYTHONHASHSEED": "0"}
    env.pop(PWNED, None)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--drive", "--corpus", str(corpus),
             "--timeout", str(timeout), *(f"--only={f}" for f in only)],
            cwd=tmp, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    runs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not runs:
        sys.stderr.write(proc.stderr[-3000:])
    return runs


def summarize(entries: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_file = {e["file"]: e for e in entries}
    counts: dict[str, dict[str, int]] = {c: dict.fromkeys(COUNTED, 0)
                                         for c in ("info", "compress")}  # fmt: skip
    per_case: dict[str, dict[str, str]] = {}
    for run in runs:
        entry = by_file[run["file"]]
        got = outcome(run)
        judged = verdict(entry, run["command"], got)
        counts[run["command"]][got] += 1
        if judged != "ok" and judged not in OUTCOMES:
            counts[run["command"]][judged] += 1
        counts[run["command"]]["noisy"] += len(run.get("stderr", "").splitlines()) > 1
        per_case.setdefault(run["file"], {})[run["command"]] = judged if judged != "ok" else got
    return {"counts": counts, "cases": per_case}


def markdown(entries: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> str:
    labels = list(results)
    head = "| outcome | " + " | ".join(f"{lab}: {c}" for lab in labels
                                       for c in ("info", "compress")) + " |"  # fmt: skip
    lines = [head, "|---" * (1 + 2 * len(labels)) + "|"]
    for key in COUNTED:
        cells = [str(results[lab]["counts"][c][key])
                 for lab in labels for c in ("info", "compress")]  # fmt: skip
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "| manifest (cases) | " + " | ".join(f"{lab}: defects info / compress"
                                                    for lab in labels) + " |",
              "|---" * (1 + len(labels)) + "|"]  # fmt: skip
    manifests: dict[str, list[str]] = {}
    for e in entries:
        manifests.setdefault(e["manifest"], []).append(e["file"])
    for name, files in manifests.items():
        cells = [" / ".join(str(sum(results[lab]["cases"].get(f, {}).get(c) in DEFECTS
                                    for f in files)) for c in ("info", "compress"))
                 for lab in labels]  # fmt: skip
        lines.append(f"| `{name}` ({len(files)}) | " + " | ".join(cells) + " |")
    defects = [f for f in (e["file"] for e in entries)
               if any(results[lab]["cases"].get(f, {}).get(c) in DEFECTS
                      for lab in labels for c in ("info", "compress"))]  # fmt: skip
    lines += ["", "| case | " + " | ".join(f"{lab}: info / compress" for lab in labels) + " |",
              "|---" * (1 + len(labels)) + "|"]  # fmt: skip
    for f in defects:
        cells = [" / ".join(results[lab]["cases"].get(f, {}).get(c, "-")
                            for c in ("info", "compress")) for lab in labels]  # fmt: skip
        lines.append(f"| `{f}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", action="append", default=[],
                        help="LABEL=PATH of a checkout to run (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--json", type=Path, help="write every run's record here")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--from-json", type=Path, nargs="+", default=[],
                        help="tables of runs saved with --json, instead of running")
    parser.add_argument("--only", action="append", default=[],
                        help="run only this corpus file (repeatable)")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        drive(args.corpus, args.timeout, args.only)
        return 0
    entries = cases(args.corpus)
    results, raw = {}, {}
    for saved in args.from_json:
        for label, runs in json.loads(saved.read_text())["runs"].items():
            raw[label], results[label] = runs, summarize(entries, runs)
    for spec in args.checkout:
        label, _, path = spec.partition("=")
        runs = run_checkout(Path(path or label), args.corpus, args.timeout, args.only)
        raw[label] = runs
        results[label] = summarize(entries, runs)
        print(f"{label}: {len(runs)} runs of {len(entries)} cases x 2 commands", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"runs": raw, "results": results}, indent=1))
    if args.markdown:
        print(markdown(entries, results))
    else:
        print(json.dumps({lab: r["counts"] for lab, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
