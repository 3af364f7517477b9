"""Running a task generator to its end: :func:`run_to_end`, the one loop every caller uses.

Tasks are generators over a frozen request: they yield progress (``tasks.codec.Progress``)
between steps and return their result. The CLI draws the steps as a progress bar, the app's
workers report them and check for cancellation, tests collect them: each passes a callback
here instead of writing the loop again.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar, overload

S = TypeVar("S")
T = TypeVar("T")


@overload
def run_to_end(gen: Generator[S, Any, T], on_step: Callable[[S], object] | None = None) -> T: ...


@overload
def run_to_end(
    gen: Generator[S, Any, T],
    on_step: Callable[[S], object] | None = None,
    *,
    should_stop: Callable[[], bool] | None,
) -> T | None: ...


def run_to_end(
    gen: Generator[S, Any, T],
    on_step: Callable[[S], object] | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> T | None:
    """Run ``gen`` to its return value.

    Parameters
    ----------
    gen
        A task generator: yields steps (progress), returns the result.
    on_step
        Called with each step as it is yielded; an exception it raises (a cancellation) ends
        the run and propagates.
    should_stop
        Asked after each step; once it says true the run ends and None is returned.

    The generator is closed however the run ends, so a task can clean up (no half-written
    file) when it is stopped or cancelled.
    """
    try:
        while True:
            step = next(gen)
            if on_step is not None:
                on_step(step)
            if should_stop is not None and should_stop():
                return None
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()
