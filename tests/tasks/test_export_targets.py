"""Export targets (issue 11, class 7), as the app's Export dialog uses them: every kind of
export refuses a symlink or a special file before doing any work and leaves it as it was, and
cleans up what an export killed earlier left in the folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inspector.errors import InputError
from inspector.io import read_model
from inspector.io.model_file import LoadedModel
from inspector.model.settings import ModelSettings
from inspector.tasks.drive import run_to_end
from inspector.tasks.export import COMPRESSED, DECOMPRESSED, SETTINGS, export

SAMPLE = Path(__file__).resolve().parents[2] / "sample_models" / "lenet300_100.safetensors"
SUFFIX = {COMPRESSED: ".dcz", DECOMPRESSED: ".npz", SETTINGS: ".json"}


@pytest.fixture
def model(tmp_path: Path) -> LoadedModel:
    path = tmp_path / "src" / SAMPLE.name
    path.parent.mkdir()
    path.write_bytes(SAMPLE.read_bytes())
    return read_model(path)


@pytest.mark.parametrize("kind", [COMPRESSED, DECOMPRESSED, SETTINGS])
def test_a_symlink_or_fifo_target_is_refused_and_kept(model, tmp_path, kind) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / f"link{SUFFIX[kind]}"
    link.symlink_to(target)
    fifo = tmp_path / f"pipe{SUFFIX[kind]}"
    os.mkfifo(fifo)
    for out, problem in ((link, "symbolic link"), (fifo, "not a regular file")):
        with pytest.raises(InputError, match=problem):
            run_to_end(export(kind, model, ModelSettings(), out))
    assert link.is_symlink() and target.read_text() == "keep me" and fifo.is_fifo()


def test_an_export_removes_what_a_killed_export_left(model, tmp_path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its pid is now free: the writer of this leftover is gone
    left = tmp_path / f".m.{child.pid}-0123456789ab.partial.dcz"
    left.write_bytes(b"half an export")
    old = time.time() - 3600
    os.utime(left, (old, old))
    result = run_to_end(export(COMPRESSED, model, ModelSettings(), tmp_path / "m.dcz"))
    assert result.verified and not left.exists()
