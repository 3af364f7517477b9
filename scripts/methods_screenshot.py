"""Render the Methods tab on the bundled LeNet-5 offscreen: docs/screenshots/methods.png.

    QT_QPA_PLATFORM=offscreen python scripts/methods_screenshot.py [OUT.png] [LAYER]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs/screenshots/methods.png")
    layer = sys.argv[2] if len(sys.argv) > 2 else "ip1.weight"
    app = QApplication.instance() or QApplication(sys.argv)
    from inspector.gui.main_window import MainWindow

    ini = Path(tempfile.mkdtemp()) / "window.ini"  # not the user's remembered layout
    window = MainWindow(settings=QSettings(str(ini), QSettings.Format.IniFormat))
    window.resize(1400, 860)
    window.show()
    window.open_model(ROOT / "sample_models/lenet5.onnx")
    _until(app, lambda: window.session.model is not None)
    window.session.select((layer,))
    window.tabs.setCurrentWidget(window.methods)
    view = window.methods
    _until(app, lambda: view.curves is not None and view.curves.layer == layer
           and not view.progress.isVisible())
    _until(app, lambda: False, 0.3)  # let the plot lay out
    window.tabs.grab().save(out)
    window.close()
    print(out)
    return 0


def _until(app: QApplication, done, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not done() and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    raise SystemExit(main())
