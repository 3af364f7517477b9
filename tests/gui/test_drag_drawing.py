"""What a threshold drag redraws (issue 10.8: the GUI stalled while dragging).

Each mouse move of a drag must repaint only what changed: the strips the band's edges swept,
not the whole band with the curve, bars and axes behind it, and no axis's tick labels.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect

import pyqtgraph as pg
import pytest

from inspector.gui.histogram import HistogramWidget

LAYER = "ip1.weight"


class PaintRecorder(QObject):
    """Collects the areas (pixels) a widget is asked to repaint, one per paint event."""

    def __init__(self) -> None:
        super().__init__()
        self.areas: list[int] = []

    def eventFilter(self, _watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            rects: list[QRect] = list(event.region())  # type: ignore[attr-defined]
            self.areas.append(sum(r.width() * r.height() for r in rects))
        return False


@pytest.fixture
def shown(qtbot, opened) -> tuple[HistogramWidget, PaintRecorder]:
    session, codec = opened
    widget = HistogramWidget(session)
    qtbot.addWidget(widget)
    session.select((LAYER,))
    session.set_estimate(codec.estimate(session.settings))
    widget.resize(900, 500)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.wait(200)  # the resize's re-binning (REBIN_MS) is done
    recorder = PaintRecorder()
    widget.plot.viewport().installEventFilter(recorder)
    return widget, recorder


def move(widget: HistogramWidget, x: float) -> None:
    line = widget.lines[1]
    line.setValue(x)
    line.sigDragged.emit(line)  # as one mouse move does


def band_pixels(widget: HistogramWidget) -> float:
    lo, hi = widget.band.getRegion()
    view = widget.plot.getPlotItem().getViewBox()
    return view.mapViewToDevice(pg.Point(hi, 0)).x() - view.mapViewToDevice(pg.Point(lo, 0)).x()


def test_a_move_repaints_the_swept_strips_not_the_whole_band(shown, qtbot) -> None:
    widget, recorder = shown
    high = widget.view_range()[1]
    t = 0.3 * high
    move(widget, t)
    qtbot.wait(100)
    width = widget.plot.viewport().width()
    assert band_pixels(widget) > 0.2 * width  # a wide band: the case that was slow
    recorder.areas.clear()
    move(widget, t * 1.01)  # a few pixels
    qtbot.waitUntil(lambda: bool(recorder.areas))
    qtbot.wait(20)
    view = widget.plot.viewport()
    whole = view.width() * view.height()
    assert sum(recorder.areas) < 0.1 * whole, (recorder.areas, whole)


class CountingPicture:
    """Stands in for an axis's recorded drawing (``AxisItem.picture``); counts replays."""

    def __init__(self, picture: object) -> None:
        self.picture = picture
        self.plays = 0

    def play(self, painter: object) -> None:
        self.plays += 1
        self.picture.play(painter)  # type: ignore[attr-defined]


def test_a_move_does_not_redraw_the_axes(shown, qtbot) -> None:
    widget, recorder = shown
    axes = [widget.plot.getPlotItem().getAxis(n) for n in ("left", "bottom")]
    assert all(axis.picture is not None for axis in axes)  # drawn once
    for axis in axes:
        axis.picture = CountingPicture(axis.picture)
    high = widget.view_range()[1]
    for i in range(5):
        move(widget, high * (0.3 + 0.01 * i))
        qtbot.wait(20)
    assert recorder.areas  # it did repaint
    assert [axis.picture.plays for axis in axes] == [0, 0]  # neither replayed nor re-made


def test_a_drag_only_grows_the_y_range_and_its_end_fits_it(shown, qtbot, opened) -> None:
    widget, _ = shown
    session, codec = opened
    item = widget.plot.getPlotItem()
    session.set_layers((LAYER,), "no floor", min_sqnr=None, value=0.1)
    session.set_estimate(codec.estimate(session.settings))
    high = widget.view_range()[1]
    move(widget, 0.05 * high)  # a drag starts
    top = item.getViewBox().viewRange()[1][1]
    for value in (0.9, 0.95, 0.99):  # estimates of a harsher pruning: far shorter bars
        session.set_layers((LAYER,), "drag", value=value)
        session.set_estimate(codec.estimate(session.settings))
        assert item.getViewBox().viewRange()[1][1] == top  # no re-layout, no full repaint
    widget.lines[1].sigPositionChangeFinished.emit(widget.lines[1])
    session.set_estimate(codec.estimate(session.settings))
    bars = max(widget.quantized.opts["height"])
    tallest = max(float(widget.shown_counts.max()), bars)
    assert item.getViewBox().viewRange()[1][1] <= 1.2 * tallest  # fitted again
