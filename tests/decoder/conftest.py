"""The C decoder's two builds (plain and under sanitizers), made once for the folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DECODER = Path(__file__).resolve().parents[2] / "decoder"
CC = shutil.which("cc")
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def build(out: Path, extra: list[str]) -> Path:
    if CC is None:
        pytest.skip("no C compiler (cc) on this machine: C decoder untested")
    sources = sorted(str(p) for p in DECODER.glob("*.c"))
    cmd = [CC, "-std=c99", "-O1" if extra else "-O2", "-Wall", "-Wextra", "-pedantic", *extra,
           *sources, "-o", str(out), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode and extra:
        pytest.skip(f"cc cannot build with sanitizers here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr  # -Wall -Wextra -pedantic clean
    return out


@pytest.fixture(scope="session")
def dczdump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("cdec") / "dczdump", [])


@pytest.fixture(scope="session")
def dczdump_asan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("cdec_asan") / "dczdump", SANITIZE)
