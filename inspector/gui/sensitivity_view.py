"""How much accuracy each layer loses when pruned or quantized alone (the sensitivity sweep).

Two plots side by side, as in the pruning paper's sensitivity figure: top-1 accuracy against
the fraction pruned, and against the cluster bits. Every swept layer is a thin line; the
selected layers are drawn bold, and the uncompressed accuracy is a dashed line. Layers of a
method swept along its rate knob (uniform's relative step) have a third plot, shown only when
the sweep has such layers: accuracy against log2 of the knob.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.core.settings import MAX_BITS, MIN_BITS
from inspector.model.accuracy import metric_name
from inspector.model.sensitivity import Sensitivity, SweepPoint
from inspector.model.session import Session

from .plot_panel import plain_axes
from .util import connect_session, theme_plot

OTHER = QColor(150, 150, 150, 140)
SELECTED = QColor(31, 119, 180)
BASELINE = QColor(200, 60, 60)
EMPTY_TEXT = (
    "No sensitivity sweep yet. With evaluation data open (File ▸ Open Evaluation Data), "
    "Tune ▸ Measure Sensitivity prunes and quantizes each layer alone and plots the accuracy."
)


class SensitivityWidget(QWidget):
    """Accuracy vs. fraction pruned and vs. bits, per layer, from ``settings.sensitivity``."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.prune_plot = self._plot("fraction pruned", "top-1 accuracy (%)", (0.0, 1.0))
        self.bits_plot = self._plot("cluster bits", "top-1 accuracy (%)", (MIN_BITS, MAX_BITS))
        self.knob_plot = self._plot("log2 of the rate knob (uniform: relative step)",
                                    "top-1 accuracy (%)", (-8.0, -1.0))
        self.knob_plot.hide()
        row = QHBoxLayout()
        row.addWidget(self.prune_plot, 1)
        row.addWidget(self.bits_plot, 1)
        row.addWidget(self.knob_plot, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(self.title)
        column.addLayout(row, 1)
        self._shown: tuple[Sensitivity | None, tuple[str, ...]] | None = None
        self._partial: Sensitivity | None = None  # the layers of a sweep under way
        connect_session(
            self,
            [
                (session.settings_changed, self._refresh),
                (session.selection_changed, self._refresh),
                (session.model_changed, self._refresh),
            ],
        )
        self._refresh()

    def _plot(self, x_label: str, y_label: str, x_range: tuple[float, float]) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        plain_axes(plot)
        item = plot.getPlotItem()
        item.setLabel("bottom", x_label)
        item.setLabel("left", y_label)
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setMouseEnabled(x=False, y=True)
        # The axes of what a sweep measures, also while there is none: an empty plot's own
        # 0..1 range read as "accuracy 0-1 %" against "0-1 cluster bits".
        item.setXRange(*x_range, padding=0.03)
        item.setYRange(0.0, 100.0, padding=0.02)
        item.disableAutoRange()
        theme_plot(self, plot)
        return plot

    @property
    def sensitivity(self) -> Sensitivity | None:
        """The sweep shown: the one under way, else the settings' own."""
        return self._partial or self.session.settings.sensitivity

    def show_partial(self, sweep: Sensitivity) -> None:
        """Draw the layers a running sweep has finished (view only; the session is unchanged)."""
        self._partial = sweep
        self._refresh()

    def end_partial(self) -> None:
        """The sweep has ended (done, cancelled or failed): show the settings' sweep again."""
        if self._partial is not None:
            self._partial = None
            self._refresh()

    def _refresh(self) -> None:
        sweep, selection = self.sensitivity, self.session.selection
        key = (sweep, selection)
        if key == self._shown:  # settings change often (drags); the sweep rarely
            return
        self._shown = key
        self.knob_plot.setVisible(sweep is not None and any(la.knob for la in sweep.layers))
        for plot in self.plots:
            plot.getPlotItem().clear()
        for plot in self.plots:  # the data's accuracies, or 0-100%
            plot.getPlotItem().enableAutoRange(y=sweep is not None)
            if sweep is None:
                plot.getPlotItem().setYRange(0.0, 100.0, padding=0.02)
        if sweep is None:
            self.title.setText(EMPTY_TEXT)
            return
        chosen = [la.name for la in sweep.layers if la.name in selection]
        measure = metric_name(sweep.metric)
        for plot in self.plots:
            plot.getPlotItem().setLabel("left", f"{measure} (%)")
        n = len(sweep.layers)
        running = f"Measuring: {n} layer{'s' * (n != 1)} so far. " if self._partial else ""
        self.title.setText(
            f"{running}Each layer pruned or quantized alone, {measure} measured on "
            f"{sweep.count:,} examples; uncompressed {100 * sweep.baseline_top1:.2f}%. Bold: "
            + (", ".join(chosen) if chosen else "no swept layer selected")
        )
        for plot in self.plots:
            line = pg.InfiniteLine(
                100 * sweep.baseline_top1, angle=0,
                pen=pg.mkPen(BASELINE, width=1, style=Qt.PenStyle.DashLine),
            )
            plot.getPlotItem().addItem(line)
        for layer in sweep.layers:  # the selected ones last, on top
            bold = layer.name in selection
            if not bold:
                self._draw(layer.prune, layer.bits, pg.mkPen(OTHER, width=1), layer.name,
                           layer.knob)
        for layer in sweep.layers:
            if layer.name in selection:
                self._draw(layer.prune, layer.bits, pg.mkPen(SELECTED, width=3), layer.name,
                           layer.knob)

    @property
    def plots(self) -> tuple[pg.PlotWidget, ...]:
        return (self.prune_plot, self.bits_plot, self.knob_plot)

    def _draw(
        self,
        prune: tuple[SweepPoint, ...],
        bits: tuple[SweepPoint, ...],
        pen: pg.QtGui.QPen,
        name: str,
        knob: tuple[SweepPoint, ...] = (),
    ) -> None:
        for plot, points in ((self.prune_plot, prune), (self.bits_plot, bits),
                             (self.knob_plot, knob)):
            if not points:
                continue
            x = [math.log2(p.at) if plot is self.knob_plot else p.at for p in points]
            y = [100 * p.top1 for p in points]
            curve = pg.PlotDataItem(x, y, pen=pen, symbol="o", symbolSize=4,
                                    symbolBrush=pen.color(), symbolPen=None, name=name)
            curve.setToolTip(name)
            plot.getPlotItem().addItem(curve)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            for plot in self.plots:
                theme_plot(self, plot)
        super().changeEvent(event)
