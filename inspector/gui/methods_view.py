"""The Methods tab: the selected layer's size against its error under every method.

One curve per registered method over its natural knob (``tasks.methods_curve``): bits per
weight on a log axis against the weight-space SQNR, or against the measured accuracy when
evaluation data is open. The layer's current recipe is a star. Clicking a point emits
``point_clicked``; the controller (``methods_controller``) applies it. The widget only draws
what it is given and never writes the session.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.model.accuracy import metric_name
from inspector.tasks.methods_curve import EXACT_DB, CurvePoint, MethodCurves, Recipe

from .plot_panel import plain_axes
from .util import theme_plot

#: Method colours (matplotlib's tab10, then grey for any later method).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
CURRENT = QColor(220, 30, 30)
BIT_TICKS = (1 / 32, 1 / 16, 0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32)
EMPTY_TEXT = "Select a compressible layer to compare the methods on it."


class MethodsViewWidget(QWidget):
    """Size (bits per weight) against error for every method, for one layer."""

    point_clicked = Signal(str, object)  # layer name, tasks.methods_curve.Recipe
    shown = Signal()  # the tab became visible: the controller computes what it lacks

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(EMPTY_TEXT)
        self.title.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.plot = pg.PlotWidget()
        plain_axes(self.plot)
        item = self.plot.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setLabel("bottom", "bits per weight (payload)")
        item.setLabel("left", "weight-space SQNR (dB)")
        item.showGrid(x=True, y=True, alpha=0.15)
        # Bits per weight at powers of two: the log axis's own minor labels crowd together.
        item.getAxis("bottom").setTicks([[(math.log10(b), f"{b:g}") for b in BIT_TICKS]])
        # In a column of its own right of the plot area, so the legend never covers a point.
        self.legend = pg.LegendItem()
        item.layout.addItem(self.legend, 2, 3)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.progress)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 4, 4, 4)
        column.addLayout(top)
        column.addWidget(self.plot, 1)
        self.curves: MethodCurves | None = None
        self.scatters: dict[str, pg.ScatterPlotItem] = {}
        self.current_item: pg.ScatterPlotItem | None = None
        theme_plot(self, self.plot)

    # ------------------------------------------------------------------ drawing
    def y_of(self, p: CurvePoint) -> float:
        """The plotted error of ``p``: measured % when the curves are measured, else dB."""
        c = self.curves
        if c is not None and c.metric is not None and p.score is not None:
            return 100.0 * p.score
        return min(p.sqnr_db, EXACT_DB) if not math.isinf(p.sqnr_db) else EXACT_DB

    def show_curves(self, curves: MethodCurves | None, note: str = "") -> None:
        """Draw ``curves`` (None: nothing to compare) - a view update only."""
        self.curves = curves
        item = self.plot.getPlotItem()
        item.clear()
        self.legend.clear()
        self.scatters = {}
        self.current_item = None
        if curves is None:
            self.title.setText(note or EMPTY_TEXT)
            return
        measured = curves.metric is not None
        item.setLabel("left", f"{metric_name(curves.metric)} (%), this layer alone"
                      if measured else "weight-space SQNR (dB)")
        for n, (method, points) in enumerate(curves.curves):
            self._draw(method, points, pg.mkColor(COLOURS[n % len(COLOURS)]))
        cur = curves.current
        if cur is not None:
            self.current_item = pg.ScatterPlotItem(
                [self._x(cur)], [self.y_of(cur)], symbol="star", size=18,
                brush=pg.mkBrush(CURRENT), pen=pg.mkPen("k", width=1), name="current")
            self.current_item.setZValue(10)
            item.addItem(self.current_item)
            self.legend.addItem(self.current_item, "current")
        if measured and curves.baseline is not None:
            item.addItem(pg.InfiniteLine(100.0 * curves.baseline, angle=0, pen=pg.mkPen(
                CURRENT, width=1, style=Qt.PenStyle.DashLine)))
        self.title.setText(note or self._caption(curves))
        # Fit now, not at the next paint: a click must find each point where it is drawn.
        item.getViewBox().autoRange(padding=0.06)

    def _draw(self, method: str, points: tuple[CurvePoint, ...], colour: QColor) -> None:
        assert self.curves is not None
        x = [self._x(p) for p in points]
        y = [self.y_of(p) for p in points]
        item = self.plot.getPlotItem()
        if len(points) > 1:
            item.addItem(pg.PlotCurveItem(x, y, pen=pg.mkPen(colour, width=2)))
        scatter = pg.ScatterPlotItem(
            x, y, data=[p.recipe for p in points], symbol="o", size=9, brush=pg.mkBrush(colour),
            pen=pg.mkPen(colour), hoverable=True, tip=self._tip, name=method)
        scatter.sigClicked.connect(self._on_scatter_clicked)
        item.addItem(scatter)
        self.legend.addItem(scatter, method)
        self.scatters[method] = scatter

    def _x(self, p: CurvePoint) -> float:
        """log10 of the bits per weight: items other than PlotDataItem are drawn as given on
        a log axis (which labels v as 10^v)."""
        assert self.curves is not None
        return math.log10(max(self.curves.bits_per_weight(p), 1e-3))  # a log axis has no 0

    def _tip(self, x: float, y: float, data: Recipe) -> str:
        p = self.point_of(data)
        if p is None or self.curves is None:
            return data.label
        bits = self.curves.bits_per_weight(p)
        return (f"{data.label}: {p.payload_nbytes:,} bytes, {bits:.3g} bits/weight, "
                + (f"{y:.2f}%" if self.curves.metric else f"SQNR {p.sqnr_db:.1f} dB")
                + "\nclick to apply to " + self.curves.layer)

    def _caption(self, c: MethodCurves) -> str:
        cur = c.current
        where = "" if cur is None else (
            f"; now {cur.recipe.method}, {cur.payload_nbytes:,} bytes "
            f"({c.bits_per_weight(cur):.2f} bits/weight)")
        how = (f"{metric_name(c.metric)} with only this layer compressed"
               if c.metric else "weight-space SQNR")
        return f"{c.layer} ({c.size:,} weights): every method, size against {how}{where}. " \
               "Click a point to apply it."

    def point_of(self, recipe: Recipe) -> CurvePoint | None:
        """The drawn point of ``recipe``, if any."""
        if self.curves is None:
            return None
        for _, points in self.curves.curves:
            for p in points:
                if p.recipe == recipe:
                    return p
        return None

    def show_progress(self, done: int, total: int, label: str) -> None:
        busy = done < total
        self.progress.setVisible(busy)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setToolTip(label)

    # ---------------------------------------------------------------- handlers
    def _on_scatter_clicked(self, _item: pg.ScatterPlotItem, points: list, _ev: object) -> None:
        if self.curves is not None and len(points):
            self.point_clicked.emit(self.curves.layer, points[0].data())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.shown.emit()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            theme_plot(self, self.plot)
        super().changeEvent(event)
