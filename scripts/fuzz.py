"""Run the fuzzing properties of ``tests/io/test_fuzz*.py`` for much longer, by hand.

The test suite runs each property on 200 examples, so it stays fast; this runs the very same
properties on as many as you ask (readers that start torch, ONNX or a child process get a fifth,
respectively a fiftieth, of them), with no per-test time limit:

    .venv/bin/python scripts/fuzz.py                       # 100000 examples per property
    .venv/bin/python scripts/fuzz.py --examples 5000 -k dcz
    .venv/bin/python scripts/fuzz.py -k "caffe or safetensors" --examples 1000000

``-k`` selects properties by name as pytest does (``dcz``, ``sniffers``, ``safetensors``,
``caffe``, ``zip``, ``fast_readers``, ``library_readers``, ``child_process``; the bounds of
``test_fuzz_bounds.py``: ``decodes_as_its_records_say``, ``reads_each_byte_once``,
``views_of_one_storage``, ``layer_names``; and from ``test_fuzz_code.py``: ``decompress_writes``,
``strided_record``, ``sparse_indices``, ``refused_as_code``, ``deflated``), or a test's whole
name, to run one property alone: its statistics (examples run, failures) print when it ends,
so a long campaign is best one property per run. The ``.dcz`` properties start from a
version-1 file and a version-2 file with every position code and a metadata block. A failure prints
the smallest damaged input hypothesis could find and is kept in ``.hypothesis/``, so the next
run (and the test suite on this machine) tries it first. Turn a real finding into a corpus file
(scripts/make_corpus.py) so every checkout replays it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = sorted((ROOT / "tests" / "io").glob("test_fuzz*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz inspector's readers for a long time.")
    parser.add_argument("--examples", type=int, default=100_000,
                        help="examples per property (default 100000)")
    parser.add_argument("-k", default="", help="only the properties matching this expression")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "pytest", *map(str, TESTS), "-q", "-x", "--timeout=0",
               "--hypothesis-show-statistics", "-p", "no:cacheprovider"]  # fmt: skip
    if args.k:
        command += ["-k", args.k]
    env = {**os.environ, "INSPECTOR_FUZZ_EXAMPLES": str(args.examples)}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
