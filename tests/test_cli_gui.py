"""The app's command line: leave to run a model's code, and SIGTERM (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen")


def _gui(*args: str) -> list[str]:
    return [sys.executable, "-m", "inspector.cli", "gui", *args]


def test_allow_code_measures_a_torchscript_model_without_asking(tmp_path: Path) -> None:
    """Without it the offscreen screenshot waited for an answer to the code question."""
    out = tmp_path / "shot.png"
    done = subprocess.run(
        _gui(str(SAMPLES / "lenet300_100_scripted.pt"), "--data",
             str(SAMPLES / "mnist_test.h5"), "--screenshot", str(out), "--allow-code"),
        env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000


def test_sigterm_ends_the_app(tmp_path: Path) -> None:
    """The CLI's SIGTERM handler raises in Python code, which Qt's event loop never runs:
    the app must keep SIGTERM's default and end."""
    app = subprocess.Popen(_gui(str(SAMPLES / "lenet5.pt")), env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4)  # in its event loop by now
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=20) == -signal.SIGTERM
    finally:
        if app.poll() is None:
            app.kill()
