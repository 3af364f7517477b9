"""Use the real app in a real X window for a while, as a user would, and keep screenshots.

Not a test: a check to run by hand (or by the lead before a release) that takes minutes.

    python scripts/xvfb_session.py [MODEL ...] [--minutes 10] [--shot-every 20] [--out DIR]

It starts Xvfb and a small window manager (openbox), launches ``inspector gui MODEL`` for real
(the xcb platform, not offscreen), and drives it only through the X server with xdotool: mouse
drags of the histogram's red threshold lines (found on a screenshot by their colour), clicks in
the layer table and arrow keys through its rows, undo/redo with the keyboard, and a switch to
the next model every ``--switch-every`` seconds through File > Open (Ctrl+O, the path typed into
the file dialog). A screenshot of the whole screen goes to ``--out`` every ``--shot-every``
seconds. At the end the app must still be running; it is closed with Ctrl+Q and its exit status
and any "Fatal Python error" or traceback on its stderr are reported (exit 1 if anything is
wrong). With no MODEL it cycles through every bundled sample format.

The app runs with a trace of every settings change (``TRACE``: each ``Session.set_settings``,
``undo`` and ``redo`` prints its label and time on stderr), matched against what the session
did at that time: a change during a click in the table, arrow keys or a model switch, or any
change during a drag that is not the dragged layer's pruning, is a setting changed that was not
asked for, and is reported (exit 1).

Needs (Debian): ``xvfb xdotool openbox imagemagick`` and the Qt xcb libraries listed in the
README ("Testing in a real window").
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = (
    "lenet5.pt", "lenet300_100_scripted.pt", "lenet5.onnx", "lenet5.keras", "lenet300_100.h5",
    "lenet300_100.safetensors", "digits_cnn_scripted.pt",
)
LINE_RGB = np.array([215, 40, 40])  # histogram.LINE: the threshold lines' colour
TOOLS = ("Xvfb", "xdotool", "import")
TRACE_TAG = "inspector-trace"
#: Run before the app: every settings change and its label on stderr, with the system-wide
#: monotonic clock this script also reads.
TRACE = f"""
import sys, time
from inspector.model.session import Session

def _trace(what):
    print(f"{TRACE_TAG} {{time.monotonic():.3f}} {{what}}", file=sys.stderr, flush=True)

_set = Session.set_settings

def set_settings(self, settings, label="change settings", merge=False):
    if settings != self.settings:
        _trace(f"set {{label}}")
    return _set(self, settings, label, merge)

def _logged(name):
    method = getattr(Session, name)

    def run(self):
        if getattr(self, "can_" + name):
            _trace(name)
        return method(self)
    return run

Session.set_settings = set_settings
Session.undo, Session.redo = _logged("undo"), _logged("redo")
from inspector.cli import main
sys.exit(main(sys.argv[1:]))
"""
EXPECTED = {"drag": ("set prune ",), "undo/redo": ("undo", "redo")}
SLACK_S = 1.0  # a change this long after an action still belongs to it (throttled sends)


def main() -> int:
    args = parse_args()
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"xvfb_session: missing {', '.join(missing)} (apt-get install xvfb xdotool "
              "openbox imagemagick)", file=sys.stderr)
        return 2
    models = [str(Path(m).resolve()) for m in args.models] or [
        str(ROOT / "sample_models" / n) for n in SAMPLES if (ROOT / "sample_models" / n).exists()
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="inspector-xvfb-home-"))
    display = f":{args.display}"
    env = dict(os.environ, DISPLAY=display, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    env.pop("WAYLAND_DISPLAY", None)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(start_x(args, display))
        if shutil.which("openbox"):
            procs.append(subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
            time.sleep(1.0)
        return Session(args, env, models).run()
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(home, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="models to cycle through (default: the samples)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--shot-every", type=float, default=20.0, help="seconds between screenshots")
    p.add_argument("--switch-every", type=float, default=60.0, help="seconds per model")
    p.add_argument("--out", type=Path, default=Path("build/xvfb_session"))
    p.add_argument("--display", type=int, default=97)
    p.add_argument("--size", default="1600x1000")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def start_x(args: argparse.Namespace, display: str) -> subprocess.Popen:
    socket = Path(f"/tmp/.X11-unix/X{args.display}")
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", f"{args.size}x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if socket.exists():
            return xvfb
        time.sleep(0.1)
    xvfb.kill()
    raise SystemExit(f"xvfb_session: Xvfb did not start on {display}")


class Session:
    """One app process driven for ``--minutes``."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], models: list[str]) -> None:
        self.args, self.env, self.models = args, env, models
        self.rng = random.Random(args.seed)
        self.log = (args.out / "app_stderr.log").open("w")
        self.shots = 0
        self.actions: dict[str, int] = {}
        self.app: subprocess.Popen | None = None
        self.window = ""
        self.spans: list[tuple[float, float, str]] = []  # (start, end, action) as done

    # ------------------------------------------------------------------ driving
    def run(self) -> int:
        cmd = [sys.executable, "-c", TRACE, "gui", self.models[0]]
        self.app = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=self.log,
                                    cwd=ROOT)
        self.window = self.xdo("search", "--sync", "--onlyvisible", "--name", "Inspector",
                               timeout=120).split()[0]
        self.xdo("windowactivate", "--sync", self.window)
        # The whole screen less the window manager's title bar, so the status bar is on it.
        width, height = self.xdo("getdisplaygeometry").split()
        self.xdo("windowmove", self.window, "0", "30")  # below the title bar
        self.xdo("windowsize", self.window, str(int(width) - 8), str(int(height) - 36))
        self.wait_title(Path(self.models[0]).name)
        end = time.monotonic() + 60 * self.args.minutes
        next_shot = next_switch = time.monotonic()
        model_index = 0
        while time.monotonic() < end and self.app.poll() is None:
            now = time.monotonic()
            if now >= next_shot:
                self.screenshot()
                next_shot = now + self.args.shot_every
            if now >= next_switch and now > 0 and len(self.models) > 1 and self.shots > 1:
                model_index = (model_index + 1) % len(self.models)
                self.open_model(self.models[model_index])
                next_switch = now + self.args.switch_every
            elif next_switch <= now:
                next_switch = now + self.args.switch_every
            self.one_action()
        self.screenshot()
        return self.finish()

    def one_action(self) -> None:
        r = self.rng.random()
        start = time.monotonic()
        if r < 0.5:
            kind = "drag" if self.drag_line() else "keys"
        elif r < 0.8:
            self.table_rows()
            kind = "table"
        else:
            self.undo_redo()
            kind = "undo/redo"
        self.spans.append((start, time.monotonic(), kind))

    def geometry(self) -> tuple[int, int, int, int]:
        out = self.xdo("getwindowgeometry", "--shell", self.window)
        g = dict(line.split("=") for line in out.split())
        return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])

    def drag_line(self) -> bool:
        """Find the red threshold lines on screen and drag one sideways, in small steps
        (False: no line, an arrow key instead)."""
        x0, y0, w, h = self.geometry()
        shot = self.grab()
        region = shot[y0 : y0 + h, x0 : x0 + w].astype(int)
        red = np.abs(region - LINE_RGB).sum(axis=2) < 60
        column = red.sum(axis=0)
        xs = np.flatnonzero(column > 0.12 * h)
        if xs.size == 0:  # a layer without a band (bias, norm, buffer): walk the table on
            self.count("drag: no line visible")
            key = self.rng.choice(["Down", "Up"])  # a few rows: a real model's tensors
            for _ in range(self.rng.randint(1, 6)):  # alternate weights and norms
                self.xdo("key", key)
                time.sleep(0.1)
            return False
        x = int(self.rng.choice(xs))
        ys = np.flatnonzero(red[:, x])
        y = int(np.median(ys))
        dx = self.rng.choice([-1, 1]) * self.rng.randint(5, 80)
        self.xdo("mousemove", str(x0 + x), str(y0 + y))
        self.xdo("mousedown", "1")
        for i in range(1, 9):
            self.xdo("mousemove", str(x0 + x + dx * i // 8), str(y0 + y))
            time.sleep(0.03)
        self.xdo("mouseup", "1")
        self.count("drag")
        time.sleep(0.2)
        return True

    def table_rows(self) -> None:
        """Click a row in the layer table (the window's lower part), then walk with arrows."""
        x0, y0, w, h = self.geometry()
        y = y0 + int(h * self.rng.uniform(0.74, 0.9))
        self.xdo("mousemove", str(x0 + int(w * 0.15)), str(y))
        self.xdo("click", "1")
        keys = [self.rng.choice(["Down", "Up"]) for _ in range(self.rng.randint(1, 6))]
        for key in keys:
            self.xdo("key", key)
            time.sleep(0.15)
        self.count("table")

    def undo_redo(self) -> None:
        self.xdo("key", "ctrl+z")
        time.sleep(0.2)
        if self.rng.random() < 0.7:
            self.xdo("key", "ctrl+shift+z")
        self.count("undo/redo")
        time.sleep(0.2)

    def open_model(self, path: str) -> None:
        """File > Open with the keyboard: Ctrl+O, type the path, Enter."""
        start = time.monotonic()
        try:
            self._open_model(path)
        finally:
            self.spans.append((start, time.monotonic(), f"open {Path(path).name}"))

    def _open_model(self, path: str) -> None:
        self.xdo("windowactivate", "--sync", self.window)
        self.xdo("key", "ctrl+o")
        time.sleep(1.5)
        self.xdo("type", "--delay", "15", path)
        self.xdo("key", "Return")
        if self.wait_title(Path(path).name):
            self.count("open")
        else:
            self.xdo("key", "Escape")
            self.count("open failed")

    def wait_title(self, name: str, seconds: float = 60) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if name in self.xdo("getwindowname", self.window):
                time.sleep(1.0)  # the first estimate
                return True
            time.sleep(0.3)
        return False

    # ------------------------------------------------------------------ helpers
    def grab(self) -> np.ndarray:
        tmp = self.args.out / "_probe.png"
        subprocess.run(["import", "-window", "root", str(tmp)], env=self.env, check=True)
        return np.asarray(Image.open(tmp).convert("RGB"))

    def screenshot(self) -> None:
        out = self.args.out / f"shot_{self.shots:04d}.png"
        subprocess.run(["import", "-window", "root", str(out)], env=self.env, check=False)
        self.shots += 1

    def xdo(self, *argv: str, timeout: float = 20) -> str:
        done = subprocess.run(["xdotool", *argv], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        return done.stdout.strip()

    def count(self, what: str) -> None:
        self.actions[what] = self.actions.get(what, 0) + 1

    def finish(self) -> int:
        assert self.app is not None
        alive = self.app.poll() is None
        if alive:
            self.xdo("windowactivate", "--sync", self.window)
            self.xdo("key", "ctrl+q")
            try:
                self.app.wait(30)
            except subprocess.TimeoutExpired:
                self.app.kill()
                self.app.wait()
        self.log.close()
        log = (self.args.out / "app_stderr.log").read_text(errors="replace")
        fatal = [ln for ln in log.splitlines() if "Fatal Python error" in ln or "Traceback" in ln]
        unasked = self.unasked_changes(log)
        print(f"actions: {self.actions}")
        print(f"screenshots: {self.shots} in {self.args.out}")
        print(f"alive at the end: {alive}; exit status: {self.app.returncode}")
        changes = sum(1 for ln in log.splitlines() if ln.startswith(TRACE_TAG))
        print(f"settings changes traced: {changes}; not asked for: {len(unasked)}")
        for line in unasked[:10]:
            print(f"unasked: {line}")
        for line in fatal[:5]:
            print(f"stderr: {line}")
        ok = alive and self.app.returncode == 0 and not fatal and not unasked
        return 0 if ok else 1

    def unasked_changes(self, log: str) -> list[str]:
        """Traced settings changes that no action of this session asked for."""
        out = []
        for line in log.splitlines():
            if not line.startswith(TRACE_TAG):
                continue
            _, stamp, what = line.split(" ", 2)
            t = float(stamp)
            during = [kind for a, b, kind in self.spans if a <= t <= b + SLACK_S]
            if not any(what.startswith(EXPECTED.get(kind, ())) for kind in during):
                out.append(f"{what!r} during {', '.join(during) or 'no action'}")
        return out


if __name__ == "__main__":
    sys.exit(main())
