"""What keeps the command line's promise of one line and untouched files, whatever happens
around it: outputs checked before any work, SIGTERM handled as Ctrl-C, library warnings kept
off the terminal."""

from __future__ import annotations

import contextlib
import signal
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inspector.atomic import check_output

EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is: every ``finally`` and atomic writer cleans up."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` instead of killing the process."""

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def quiet_libraries(active: bool) -> Iterator[None]:
    """Warnings (torch's, numpy's...) dropped while inside: the output stays ours alone."""
    if not active:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def check_outputs(inputs: dict[str, Path | None], *outputs: Path | None) -> None:
    """Each output a regular file or a new name (:func:`~inspector.atomic.check_output`), none
    an input (keyed by what it is: ``"the source model"``) nor another output of the command.

    Raises
    ------
    InputError
        One line naming the output.
    """
    protect: list[tuple[str | Path, str]] = [
        (path, what) for what, path in inputs.items() if path is not None
    ]
    for out in outputs:
        if out is not None:
            check_output(out, protect)
            protect.append((out, f"{out.name}, another output of this command"))
