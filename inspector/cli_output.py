"""What every command prints besides its own text: the progress bar and JSON.

Its own module so that ``inspector.cli`` and the commands it registers (``cli_tune``,
``cli_finetune``) all use it without importing each other. Cheap to import: building the
parser must not load numpy.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Generator
from typing import Any, TypeVar

from inspector.tasks.drive import run_to_end

T = TypeVar("T")
BAR_WIDTH = 30
LABEL_WIDTH = 40


def run_with_bar(gen: Generator[Any, None, T], show: bool) -> T:
    """Drive a task generator, drawing a progress bar on stderr when asked."""
    result = run_to_end(gen, _draw if show else None)
    if show:
        sys.stderr.write("\r" + " " * 80 + "\r")
    return result


def _draw(step: Any) -> None:
    filled = BAR_WIDTH * step.done // max(step.total, 1)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    label = middle(step.label, LABEL_WIDTH)
    sys.stderr.write(f"\r[{bar}] {step.done}/{step.total} {label:<{LABEL_WIDTH}}")
    sys.stderr.flush()


def middle(text: str, width: int) -> str:
    """``text`` in ``width`` characters, cut in the middle: a name's two ends tell it apart."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return f"{text[:head]}…{text[len(text) - (width - 1 - head):]}"


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")
