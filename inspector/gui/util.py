"""Small helpers every widget shares: signal blocking, session wiring, labels, byte counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from PySide6.QtCore import QObject, QSignalBlocker, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from inspector.core.layer import LayerPlan

TIMES = "\N{MULTIPLICATION SIGN}"
UNITS = ("B", "KB", "MB", "GB", "TB")


@contextmanager
def signals_blocked(*objects: QObject) -> Iterator[None]:
    """Block the Qt signals of ``objects`` for the ``with`` body."""
    with ExitStack() as stack:
        for obj in objects:
            stack.enter_context(QSignalBlocker(obj))
        yield


def single_shot(parent: QObject, ms: int, slot: Callable[[], None]) -> QTimer:
    """A single-shot timer of ``ms`` calling ``slot``, started with ``start()``."""
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer


def connect_session(obj: QObject, pairs: list[tuple[Any, Callable[[], None]]]) -> None:
    """Connect psygnal ``(signal, slot)`` pairs, disconnecting them when ``obj`` is destroyed.

    Parameters
    ----------
    obj
        The widget (or Qt model) whose slots these are.
    pairs
        ``(psygnal signal, slot)`` pairs, e.g. ``(session.model_changed, self._on_...)``.
    """
    for signal, slot in pairs:
        signal.connect(slot)

    def disconnect(*_: object) -> None:
        for signal, slot in pairs:
            signal.disconnect(slot, missing_ok=True)

    obj.destroyed.connect(disconnect)


def bold_label(text: str = "") -> QLabel:
    """A bold label whose text the user can select (titles and values)."""
    label = QLabel(text)
    font = label.font()
    font.setBold(True)
    label.setFont(font)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def elastic(*labels: QLabel) -> None:
    """Let ``labels`` be narrower than their text (it is clipped, never wrapped).

    A label is at least as wide as its text: a long layer name would widen its panel, and
    the splitter beside it would move the plot at every change of selection.
    """
    for label in labels:
        label.setSizePolicy(QSizePolicy.Policy.Ignored, label.sizePolicy().verticalPolicy())
        label.setMinimumWidth(1)


def theme_plot(widget: QWidget, plot: Any) -> tuple[QColor, QColor]:
    """Colour a ``pg.PlotWidget`` from ``widget``'s palette (light and dark themes alike).

    Returns
    -------
    tuple of QColor
        The palette's ``(base, text)`` colours, for any further items to match.
    """
    base = widget.palette().color(QPalette.ColorRole.Base)
    text = widget.palette().color(QPalette.ColorRole.Text)
    plot.setBackground(base)
    for name in ("left", "bottom"):
        axis = plot.getPlotItem().getAxis(name)
        axis.setPen(text)
        axis.setTextPen(text)
    return base, text


def k_text(bits: int, plan: LayerPlan | None) -> str:
    """The codebook size everywhere the app shows one: the centroids the layer really has.

    ``"K = 31"`` once an estimate is in (``k_note`` says why it can be under ``2**bits``),
    ``"K ≤ 32"`` before.
    """
    if plan is None:
        return f"K ≤ {1 << bits}"
    return f"K = {plan.codebook.size}"


def k_note(bits: int, plan: LayerPlan | None) -> str:
    """Why K is what it is: ``2**bits`` codes, less the zero code fillers need, or fewer
    distinct survivors."""
    codes = 1 << bits
    head = f"{bits} bits: {codes} weight codes"
    if plan is None:
        return f"{head}; K, the centroids used, is known once the estimate is in."
    k = int(plan.codebook.size)
    parts = [f"{head}, K = {k} centroids"]
    if plan.fillers:
        parts.append(
            f"one code is the zero that the {plan.fillers:,} filler entries of gaps longer "
            f"than {1 << plan.settings.index_bits} decode to"
        )
    if k < codes - (plan.fillers > 0):
        parts.append(f"the surviving weights have only {k} distinct values")
    return "; ".join(parts) + "."


def eta_text(done: int, total: int, elapsed_s: float) -> str:
    """``"about 35 s left"`` from the steps done so far ("" until there is a rate to go by)."""
    if done <= 0 or total <= done or elapsed_s <= 0:
        return ""
    left = elapsed_s / done * (total - done)
    if left < 90:
        return f"about {max(1, round(left))} s left"
    return f"about {round(left / 60)} min left"


def human_bytes(n: int) -> str:
    """``n`` bytes with a decimal unit and 3 significant digits, e.g. ``"1.07 MB"``.

    Parameters
    ----------
    n
        A byte count.

    Returns
    -------
    str
        ``"512 B"``, ``"1.07 MB"``, ``"35.1 KB"``, ``"999 GB"``...
    """
    sign, value = ("-" if n < 0 else ""), float(abs(n))
    if value < 1000:
        return f"{sign}{int(value)} B"
    for unit in UNITS[1:]:
        value /= 1000.0
        for digits in (2, 1, 0):
            if value < 10 ** (3 - digits) - 0.5 * 10**-digits:
                return f"{sign}{value:.{digits}f} {unit}"
    return f"{sign}{value:.0f} {UNITS[-1]}"
