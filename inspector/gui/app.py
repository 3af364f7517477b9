"""Start the app: ``inspector [MODEL]`` or ``inspector gui MODEL [--config S.json] [--data EVAL]``.

``--screenshot OUT.png`` renders the main window offscreen once the model is loaded and
estimated, saves it and exits: for the README and for looking at the app from a script. In that
mode nothing waits for a click: an error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCREENSHOT_SIZE = (1400, 860)
COMPILING = "Compiling compression kernels (first start only)..."
# Harmless notices of Qt's offscreen platform that would bury the one line an error prints.
OFFSCREEN_NOISE = ("This plugin does not support",)


def quiet_raster_threads() -> None:
    """Make Qt draw on the GUI thread alone (before the first QApplication).

    Qt's raster engine splits every fill taller than about 100 pixels over a pool of helper
    threads and waits for all of them; on a loaded machine (two cores, other work, and our
    own estimate thread) a helper not yet scheduled held the GUI thread up to tens of ms per
    fill while a threshold was dragged (py-spy: a fifth of the drag's GUI time in that wait).
    Drawing these plots on one thread costs no more on an idle machine.
    """
    os.environ.setdefault("QT_NO_GUI_THREADPOOL", "1")


def run(
    model: str | None = None,
    config: str | None = None,
    screenshot: str | None = None,
    select: str | None = None,
    data: str | None = None,
    allow_code: bool = False,
    input_shape: tuple[int, ...] | None = None,
    target_ratio: float | None = None,
) -> int:
    """Show the main window (optionally opening ``model``); return the exit code.

    ``allow_code``: the command line's leave for ``model``'s code to run (TorchScript), so the
    app does not ask (a screenshot has nobody to ask). ``input_shape``: ``model``'s input,
    batch first, for the synthetic inputs measured without ``data`` (TorchScript records none).
    ``target_ratio``: once the model is estimated, solve that model-wide target ratio as the
    target control's Solve does (a screenshot then waits for its result).
    """
    headless = not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY"))
    if screenshot and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif headless and sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        # Qt would abort with a page of plugin errors: say it in one line instead.
        print(
            "inspector: error: no display to open the app on (DISPLAY is not set); use "
            "`inspector compress` (e.g. `make demo`) or `inspector gui MODEL --screenshot OUT.png`",
            file=sys.stderr,
        )
        return 2
    from .xcb_check import xcb_problem

    problem = xcb_problem()
    if problem:
        print(f"inspector: error: {problem}", file=sys.stderr)
        return 2
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .resources import resource_path

    quiet_raster_threads()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Inspector")
    app.setOrganizationName("inspector")
    with contextlib.suppress(OSError):  # the app works without its stylesheet
        app.setStyleSheet(resource_path("style.qss").read_text(encoding="utf-8"))
    qsettings = None
    if screenshot:  # reproducible pictures: no remembered layout or recent files
        _quiet_offscreen_notices()
        ini = Path(tempfile.mkdtemp(prefix="inspector-")) / "settings.ini"
        qsettings = QSettings(str(ini), QSettings.Format.IniFormat)
    window = MainWindow(settings=qsettings, on_error=_fail if screenshot else None)
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
        measured = data is not None or input_shape is not None
        _arm_screenshot(window, Path(screenshot), select, measured=measured,
                        solving=target_ratio is not None)
    window.show()
    if target_ratio is not None:
        _solve_when_estimated(window, target_ratio)
    if not screenshot:
        start_warm_up(window)
    gc.freeze()  # Qt's and pyqtgraph's objects live as long as the app (see workers.COLLECTOR)
    if model:
        open_given(window, model, config, data, allow_code, input_shape)
    elif screenshot:
        _save_later(window, Path(screenshot))
    return app.exec()


def open_given(
    window: Any,
    model: str,
    config: str | None = None,
    data: str | None = None,
    allow_code: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> None:
    """Open the command line's ``model`` in ``window`` with what the command line says of it
    (see :func:`run`)."""
    if allow_code:
        window.controller.consent.allow(model)
    if input_shape is not None:
        window.controller.accuracy.set_input_shape(model, input_shape)
    window.open_model(model, config, data)


def start_warm_up(window: Any, warm: Callable[..., int] | None = None) -> Any:
    """Load or compile the numba kernels in a worker; say so in the status bar if it compiles.

    ``make venv`` builds the kernel cache, so usually this only loads it (about a second, off
    the GUI thread). Returns the worker (``warm`` replaces ``tasks.warmup.warm_up`` in tests).
    """
    from PySide6.QtWidgets import QApplication

    from .workers import SerialWorker, Token

    if warm is None:
        from inspector.tasks.warmup import warm_up as warm
    worker = SerialWorker("warm-up", window)

    def job(token: Token) -> int:
        return warm(on_compile=lambda: token.report(COMPILING), check=token.check)

    def on_finished(_generation: int, compiled: int) -> None:
        if compiled and window.statusBar().currentMessage() == COMPILING:
            window.statusBar().showMessage("Compression kernels compiled", 5000)

    worker.progress.connect(lambda _generation, text: window.statusBar().showMessage(text))
    worker.finished.connect(on_finished)
    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(worker.shutdown)
    worker.submit(job)
    return worker


def _fail(_title: str, message: str) -> None:
    """Screenshot mode's errors: one line on stderr, then exit code 2 (no box to click)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    print(f"inspector: error: {message}", file=sys.stderr)
    # Deferred: an exit() before app.exec() has started (a bad --config) would be lost.
    QTimer.singleShot(0, lambda: QApplication.exit(2))


def _quiet_offscreen_notices() -> None:
    """Drop ``OFFSCREEN_NOISE`` from Qt's messages; print the rest as Qt would."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode: object, _context: object, message: str) -> None:
        if not message.startswith(OFFSCREEN_NOISE):
            print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def _solve_when_estimated(window: Any, ratio: float) -> None:
    """Press the target control's Solve for ``ratio`` once the first estimate lands."""
    session, bar = window.session, window.target_bar

    def on_estimate() -> None:
        if session.estimate is None:
            return
        session.estimate_changed.disconnect(on_estimate)
        bar.kind_combo.setCurrentIndex(bar.kind_combo.findData("ratio"))
        bar.value_spin.setValue(ratio)
        bar.solve_button.click()

    session.estimate_changed.connect(on_estimate)


def _arm_screenshot(window: Any, out: Path, select: str | None, measured: bool,
                    solving: bool = False) -> None:
    """Save once the estimate (and, with evaluation data, the accuracy; with a target, the
    solve's estimate) has landed."""
    session = window.session
    solved: list[object] = []
    if solving:
        window.controller.target.solved.connect(solved.append)
        window.controller.target.failed.connect(lambda m: _fail("", m))

    def ready() -> bool:
        if session.estimate is None or (solving and not solved):
            return False
        if solving and session.estimate.file_nbytes != solved[0].file_nbytes:
            return False  # the estimate of the settings before the solve
        return not measured or session.accuracy_is_current or bool(session.accuracy_note)

    def on_change() -> None:
        if not ready():
            return
        session.estimate_changed.disconnect(on_change)
        session.accuracy_changed.disconnect(on_change)
        if select:
            if select not in {i.name for i in session.infos}:
                _fail("", f"no layer named {select!r}")
                return
            session.select((select,))
        _save_later(window, out)

    session.estimate_changed.connect(on_change)
    session.accuracy_changed.connect(on_change)


def _save_later(window: object, out: Path) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def save() -> None:
        QApplication.processEvents()
        ok = window.grab().save(str(out))  # type: ignore[attr-defined]
        if not ok:
            print(f"inspector: error: {out}: cannot write the screenshot", file=sys.stderr)
        window.close()  # type: ignore[attr-defined]
        QApplication.exit(0 if ok else 2)

    QTimer.singleShot(300, save)
