"""App start: the kernel warm-up runs in a worker and speaks only when it compiles."""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QSettings

from inspector.gui import app
from inspector.gui.main_window import MainWindow


def make_window(qtbot, tmp_path) -> MainWindow:  # type: ignore[no-untyped-def]
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    return window


def test_compiling_kernels_shows_in_the_status_bar_without_blocking(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot, tmp_path)
    release = threading.Event()
    threads: list[str] = []

    def warm(on_compile: Callable[[], None], check: Callable[[], None]) -> int:
        threads.append(threading.current_thread().name)
        on_compile()
        release.wait(10)  # "compiling" until the test has seen the message
        check()
        return 3

    worker = app.start_warm_up(window, warm)
    # The GUI thread is free while the warm-up "compiles": the message arrives through events.
    qtbot.waitUntil(lambda: window.statusBar().currentMessage() == app.COMPILING, timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: "compiled" in window.statusBar().currentMessage(), timeout=5000)
    assert threads == ["inspector-warm-up"]
    worker.shutdown()


def test_a_warm_cache_says_nothing(qtbot, tmp_path) -> None:  # type: ignore[no-untyped-def]
    window = make_window(qtbot, tmp_path)
    window.statusBar().showMessage("Ready")
    worker = app.start_warm_up(window, lambda on_compile, check: 0)
    qtbot.waitUntil(lambda: not worker.busy, timeout=5000)
    qtbot.wait(50)  # let a (wrong) queued message arrive
    assert window.statusBar().currentMessage() == "Ready"
    worker.shutdown()
