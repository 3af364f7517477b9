"""SerialWorker: newest request wins, stale results are tagged, cancellation, errors."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator

import pytest

from inspector.errors import InputError
from inspector.gui.workers import SerialWorker, Token, drive


@pytest.fixture
def worker(qtbot) -> Generator[SerialWorker, None, None]:
    w = SerialWorker("test")
    yield w
    w.shutdown()


def test_result_arrives_on_the_main_thread_with_its_generation(qtbot, worker) -> None:
    seen: list[tuple[int, object, bool]] = []
    worker.finished.connect(
        lambda g, r: seen.append((g, r, threading.current_thread() is threading.main_thread()))
    )
    gen = worker.submit(lambda token: 42)
    qtbot.waitUntil(lambda: bool(seen))
    assert seen == [(gen, 42, True)]


def test_a_new_submission_cancels_the_running_job(qtbot, worker) -> None:
    started = threading.Event()
    release = threading.Event()
    cancelled: list[int] = []
    finished: list[tuple[int, object]] = []
    worker.cancelled.connect(cancelled.append)
    worker.finished.connect(lambda g, r: finished.append((g, r)))

    def slow(token: Token) -> str:
        started.set()
        release.wait(5)
        token.check()
        return "old"

    first = worker.submit(slow)
    assert started.wait(5)
    second = worker.submit(lambda token: "new")
    release.set()
    qtbot.waitUntil(lambda: bool(finished))
    assert cancelled == [first]
    assert finished == [(second, "new")]


def test_errors_become_one_line_messages(qtbot, worker) -> None:
    failed: list[tuple[int, str]] = []
    worker.failed.connect(lambda g, m: failed.append((g, m)))

    def bad_input(token: Token) -> None:
        raise InputError("truncated file", "m.pt")

    def bug(token: Token) -> None:
        raise KeyError("x")

    g1 = worker.submit(bad_input)
    qtbot.waitUntil(lambda: len(failed) == 1)
    g2 = worker.submit(bug)
    qtbot.waitUntil(lambda: len(failed) == 2)
    assert failed[0] == (g1, "m.pt: truncated file")
    assert failed[1][0] == g2 and failed[1][1].startswith("internal error: KeyError")


def test_drive_reports_progress_and_closes_the_generator_on_cancel(qtbot, worker) -> None:
    closed = threading.Event()
    steps: list[object] = []
    worker.progress.connect(lambda g, s: steps.append(s))
    gate = threading.Event()

    def gen() -> Generator[int, None, str]:
        try:
            for i in range(1000):
                yield i
                gate.wait(5)
            return "done"
        finally:
            closed.set()

    worker.submit(lambda token: drive(gen(), token))
    qtbot.waitUntil(lambda: bool(steps))
    worker.cancel()
    gate.set()
    assert closed.wait(5)
    assert not worker.busy or qtbot.waitUntil(lambda: not worker.busy) is None


def test_the_collector_pause_is_shared_and_freezes_survivors() -> None:
    import gc

    from inspector.gui.workers import COLLECTOR

    assert gc.isenabled()
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with COLLECTOR.paused():
        survivor = [[i] for i in range(10)]  # lists: objects the collector tracks
        with COLLECTOR.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer job still runs
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(survivor)
    gc.unfreeze()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_estimate_thread_yields_to_the_gui_thread(qtbot) -> None:
    from PySide6.QtCore import QObject

    from inspector.gui.controller import ESTIMATE_NICE, Controller
    from inspector.model.session import Session

    def nice_of_this_thread(_token: Token) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    parent = QObject()
    controller = Controller(Session(), parent)
    try:
        with qtbot.waitSignal(controller.estimator.finished) as done:
            controller.estimator.submit(nice_of_this_thread)
        gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert done.args[1] == min(gui + ESTIMATE_NICE, 19) and ESTIMATE_NICE > 0
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui  # untouched
    finally:
        controller.shutdown()
