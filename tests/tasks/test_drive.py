"""run_to_end: the one loop that drives a task generator to its result."""

from __future__ import annotations

from collections.abc import Generator

import pytest

from inspector.tasks.drive import run_to_end


class Cancelled(Exception):
    pass


def task(n: int, log: list[str], fail_at: int | None = None) -> Generator[int, None, str]:
    """Yields 0..n-1 and returns "done"; logs how it ended (as a task removes a half file)."""
    try:
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"step {i} failed")
            yield i
            log.append(f"after {i}")
    except GeneratorExit:
        log.append("closed")
        raise
    return "done"


def test_the_value_and_every_step_in_order() -> None:
    log: list[str] = []
    steps: list[int] = []
    assert run_to_end(task(3, log), steps.append) == "done"
    assert steps == [0, 1, 2]
    assert log == ["after 0", "after 1", "after 2"]  # ran to its end: nothing to close


def test_without_a_callback_and_without_steps() -> None:
    assert run_to_end(task(4, [])) == "done"
    assert run_to_end(task(0, [])) == "done"


def test_an_exception_from_the_callback_closes_the_task() -> None:
    log: list[str] = []
    steps: list[int] = []

    def cancel_at_second(step: int) -> None:
        steps.append(step)
        if step == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        run_to_end(task(5, log), cancel_at_second)
    assert steps == [0, 1]
    assert log == ["after 0", "closed"]  # not resumed after the cancellation, then closed


def test_should_stop_ends_the_run_with_none_and_closes_the_task() -> None:
    log: list[str] = []
    steps: list[int] = []
    result = run_to_end(task(5, log), steps.append, should_stop=lambda: len(steps) == 2)
    assert result is None
    assert steps == [0, 1] and log == ["after 0", "closed"]
    assert run_to_end(task(2, []), should_stop=lambda: False) == "done"


def test_an_error_of_the_task_propagates() -> None:
    log: list[str] = []
    with pytest.raises(ValueError, match="step 2 failed"):
        run_to_end(task(5, log, fail_at=2))
    assert log == ["after 0", "after 1"]
