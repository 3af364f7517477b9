"""Start the app: ``inspector [MODEL]`` or ``inspector gui MODEL [--config S.json]``.

``--screenshot OUT.png`` renders the main window offscreen once the model is loaded and
estimated, saves it and exits: for the README and for looking at the app from a script.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

SCREENSHOT_SIZE = (1400, 860)


def run(
    model: str | None = None,
    config: str | None = None,
    screenshot: str | None = None,
    select: str | None = None,
) -> int:
    """Show the main window (optionally opening ``model``); return the exit code."""
    if screenshot and not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .resources import resource_path

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("Inspector")
    app.setOrganizationName("inspector")
    with contextlib.suppress(OSError):  # the app works without its stylesheet
        app.setStyleSheet(resource_path("style.qss").read_text(encoding="utf-8"))
    qsettings = None
    if screenshot:  # reproducible pictures: no remembered layout or recent files
        ini = Path(tempfile.mkdtemp(prefix="inspector-")) / "settings.ini"
        qsettings = QSettings(str(ini), QSettings.Format.IniFormat)
    window = MainWindow(settings=qsettings)
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
        _arm_screenshot(window, Path(screenshot), select)
    window.show()
    if model:
        window.open_model(model, config)
    elif screenshot:
        _save_later(window, Path(screenshot))
    return app.exec()


def _arm_screenshot(window: object, out: Path, select: str | None) -> None:
    from PySide6.QtWidgets import QApplication

    session = window.session  # type: ignore[attr-defined]
    controller = window.controller  # type: ignore[attr-defined]

    def on_failed(message: str) -> None:
        print(f"inspector: error: {message}", file=sys.stderr)
        QApplication.exit(2)

    def on_estimate() -> None:
        if session.estimate is None:
            return
        session.estimate_changed.disconnect(on_estimate)
        if select:
            if select not in {i.name for i in session.infos}:
                on_failed(f"no layer named {select!r}")
                return
            session.select((select,))
        _save_later(window, out)

    controller.load_failed.connect(on_failed)
    session.estimate_changed.connect(on_estimate)


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
