"""``warm_up`` builds every numba specialisation the real pipeline later asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.tasks import warmup

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter (so nothing the test run compiled counts): warm up, note every
# kernel's signatures, then do what a user does (open the bundled samples, estimate under
# several settings, compress, decompress) and print the signatures that were added after the
# warm-up. Loading a kernel from the disk cache also adds its signature, so this does not
# depend on what the cache already holds.
CHILD = r"""
import json, sys, tempfile
from pathlib import Path
import numba
from inspector import cli
from inspector.core import bitpack, cluster, huffman, huffman_table, kernels
from inspector.model.settings import ModelSettings
from inspector.tasks.drive import run_to_end
from inspector.tasks.load import open_model
from inspector.tasks.warmup import warm_up

def signatures():
    out = {}
    for mod in (bitpack, cluster, huffman, huffman_table, kernels):
        for name, obj in vars(mod).items():
            if isinstance(obj, numba.core.registry.CPUDispatcher):
                out[f"{mod.__name__}.{name}"] = {str(s) for s in obj.signatures}
    return out

warm_up()
before = signatures()
root = Path(sys.argv[1])
tmp = Path(tempfile.mkdtemp())
for sample in ("lenet5.pt", "digits_cnn.onnx", "lenet300_100.h5", "lenet300_100.safetensors"):
    path = root / "sample_models" / sample
    gen = open_model(path)
    opened = run_to_end(gen)
    for defaults in ({}, {"policy": "std", "value": 1.0}, {"huffman": False, "index_bits": 3}):
        opened.codec.estimate(ModelSettings.from_json({"version": 1, "defaults": defaults}))
    out = tmp / (path.stem + ".dcz")
    assert cli.main(["compress", str(path), "-o", str(out), "--bits", "6"]) == 0
    assert cli.main(["decompress", str(out), "-o", str(tmp / (path.stem + ".npz"))]) == 0
after = signatures()
added = {k: sorted(v - before.get(k, set())) for k, v in after.items()}
print(json.dumps({k: v for k, v in added.items() if v}))
"""


@pytest.mark.timeout(600)  # a cold numba cache compiles everything once (~20 s on 2 cores)
def test_warm_up_covers_what_the_pipeline_uses() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT)],
        capture_output=True, text=True, timeout=540, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    added = json.loads(done.stdout.strip().splitlines()[-1])
    assert added == {}, f"kernels compiled after the warm-up: {added}"


def test_warm_up_reports_compiles_only_on_a_cache_miss() -> None:
    calls: list[int] = []
    compiled = warmup.warm_up(on_compile=lambda: calls.append(1))
    # Now everything is compiled in this process: a second run compiles nothing, says nothing.
    assert warmup.warm_up(on_compile=lambda: calls.append(2)) == 0
    assert calls == ([1] if compiled else [])
