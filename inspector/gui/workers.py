"""Background work for the app: one thread per kind of job, newest request wins.

A job is a plain function ``fn(token) -> result`` (usually a ``tasks`` generator driven by
``drive``). ``submit`` returns a generation number; results and progress come back as Qt
signals on the main thread, tagged with it, so the receiver drops anything stale. A new
submission cancels the running job of the same worker (its token raises ``Cancelled`` at the
next progress step) and replaces any pending one.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Signal

from inspector.errors import InspectorError
from inspector.tasks.drive import run_to_end

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a job whose token was cancelled."""


class Token:
    """Cancellation flag and progress channel of one job."""

    def __init__(self, worker: SerialWorker | None = None, generation: int = 0) -> None:
        self._event = threading.Event()
        self._worker = worker
        self.generation = generation

    def report(self, step: Any) -> None:
        """Send a progress step (a ``tasks.codec.Progress``) to the main thread."""
        if self._worker is not None and not self.cancelled:
            self._worker.progress.emit(self.generation, step)

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled


Job = Callable[[Token], Any]


class SerialWorker(QObject):
    """Runs jobs one at a time on its own daemon thread."""

    progress = Signal(int, object)  # generation, tasks.codec.Progress
    finished = Signal(int, object)  # generation, result
    failed = Signal(int, str)  # generation, one-line message
    cancelled = Signal(int)  # generation

    def __init__(self, name: str, parent: QObject | None = None, nice: int = 0) -> None:
        super().__init__(parent)
        self.name = name
        self._nice = nice
        self.generation = 0
        self._lock = threading.Condition()
        self._pending: tuple[int, Job, Token] | None = None
        self._running: Token | None = None
        self._stopped = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name=f"inspector-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: Job, cancel_running: bool = True) -> int:
        """Queue ``job`` in place of any pending one; return its generation.

        ``cancel_running=False`` lets the running job finish (its result is still delivered):
        while a slider moves, a slightly older estimate on screen beats none at all.
        """
        with self._lock:
            self.generation += 1
            if cancel_running and self._running is not None:
                self._running.cancel()
            self._pending = (self.generation, job, Token(self, self.generation))
            self._lock.notify()
            return self.generation

    def cancel(self) -> None:
        """Cancel the running job and drop the pending one."""
        with self._lock:
            self.generation += 1
            self._pending = None
            if self._running is not None:
                self._running.cancel()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy or self._pending is not None

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything and stop the thread."""
        with self._lock:
            self._stopped = True
            self._pending = None
            if self._running is not None:
                self._running.cancel()
            self._lock.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        if self._nice:
            lower_thread_priority(self._nice)
        while True:
            with self._lock:
                while self._pending is None and not self._stopped:
                    self._lock.wait()
                if self._stopped:
                    return
                generation, job, token = self._pending
                self._pending = None
                self._running = token
                self._busy = True
            self._run(generation, job, token)
            with self._lock:
                self._running = None
                self._busy = False

    def _run(self, generation: int, job: Job, token: Token) -> None:
        try:
            result = job(token)
        except Cancelled:
            self.cancelled.emit(generation)
        except InspectorError as exc:
            self.failed.emit(generation, str(exc))
        except MemoryError:
            self.failed.emit(generation, "not enough memory for this operation")
        except Exception as exc:  # a bug must not kill the worker or reach the user raw
            self.failed.emit(generation, f"internal error: {type(exc).__name__}: {exc}")
        else:
            if token.cancelled:
                self.cancelled.emit(generation)
            else:
                self.finished.emit(generation, result)


def lower_thread_priority(nice: int) -> bool:
    """Give the calling thread ``nice`` more niceness than its process (Linux: per thread).

    The app's threads share one scheduling group: while a threshold is dragged, the estimate
    thread and the GUI thread both want a core, and on a loaded two-core machine the GUI
    thread waited for the estimator's turn (stalls of tens of ms). Niced, the estimator takes
    what the GUI thread leaves. Returns whether the priority changed (not on other systems).
    """
    get_id = getattr(threading, "get_native_id", None)
    if not sys.platform.startswith("linux") or get_id is None:
        return False
    try:
        tid = get_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError:
        return False
    return True


class _Collector:
    """Pauses Python's cyclic garbage collector while any job that loads a model runs.

    Loading imports torch and builds many long-lived objects; the full collections that
    triggers scanned them all for 50-130 ms at a time, holding the GIL, so the GUI thread froze
    (measured). What survives a load is frozen (``gc.freeze``): later full collections skip it.
    The collector is process-wide, so overlapping jobs share one pause.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                gc.disable()
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    gc.freeze()
                    gc.enable()


#: For jobs that load models or libraries (see :class:`_Collector`).
COLLECTOR = _Collector()


def drive(gen: Generator[Any, None, T], token: Token) -> T:
    """Run a ``tasks`` generator to its return value, reporting and checking ``token``.

    Cancelling closes the generator, so it can clean up (e.g. no half-written file).
    """
    def on_step(step: Any) -> None:
        token.check()
        token.report(step)

    return run_to_end(gen, on_step)
