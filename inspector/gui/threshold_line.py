"""A draggable vertical line that tells a user's drag apart from a programmatic move.

pyqtgraph's ``InfiniteLine`` emits ``sigPositionChanged`` for every move, including the clamp
``setBounds`` applies and any ``setValue``; a widget that takes that signal for a drag writes
the model on every view update (issue 10: selecting a layer pruned it 100%). Only
``sigDragged`` and ``sigPositionChangeFinished`` come from the mouse, and only those are
meant to be connected. Holding Shift while dragging moves the line at a tenth of the speed.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

FINE_SPEED = 0.1  # line movement per cursor movement with Shift held


class ThresholdLine(pg.InfiniteLine):
    """A vertical ``InfiniteLine`` with a fine-drag modifier (Shift: 1/10 speed).

    Connect ``sigDragged`` (each user move) and ``sigPositionChangeFinished`` (the drag's
    end); ``sigPositionChanged`` also fires for programmatic moves and must not write a model.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, angle=90, **kwargs)
        self._anchor: tuple[float, float] | None = None  # (line x, cursor x) at the last mode
        self._fine = False
        self._cursor = 0.0  # the cursor's x at the previous move

    def mouseDragEvent(self, ev: Any) -> None:
        if not (self.movable and ev.button() == Qt.MouseButton.LeftButton):
            return
        ev.accept()
        cursor = float(self.mapToParent(ev.pos()).x())
        fine = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if ev.isStart():
            self.moving = True
            self.startPosition = self.pos()
            down = float(self.mapToParent(ev.buttonDownPos()).x())
            self._anchor, self._fine, self._cursor = (self.value(), down), fine, down
        if not self.moving or self._anchor is None:
            return
        if fine != self._fine:  # changing speed mid-drag must not make the line jump
            self._anchor, self._fine = (self.value(), self._cursor), fine
        self._cursor = cursor
        start, origin = self._anchor
        self.setValue(start + (FINE_SPEED if fine else 1.0) * (cursor - origin))
        self.sigDragged.emit(self)
        if ev.isFinish():
            self.moving = False
            self._anchor = None
            self.sigPositionChangeFinished.emit(self)
