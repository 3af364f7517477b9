"""One layer's weight histogram with its pruned band, draggable threshold and codebook.

The curve is the layer's 512-bin histogram (``LayerStats``). The band ``[-t, t]`` holds the
weights pruning removes; its two edges are draggable lines that set the layer's prune value
(in its policy's units). The k-means centroids of the latest estimate are marked on the x axis,
and the quantized distribution (the survivors, each moved to its centroid) is overlaid as thin
bars in the same units as the histogram: the count one histogram bin would hold.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

import numpy as np
import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.core.layer import LayerPlan
from inspector.errors import SettingsError
from inspector.model.session import Session
from inspector.model.stats import LayerStats

from .plot_panel import PlotPanelWidget
from .util import TIMES, bold_label, connect_session, signals_blocked, theme_plot

THROTTLE_MS = 30  # at most one settings change per this while a line is dragged
LOG_FLOOR = 0.5  # empty bins are drawn at this count on a log axis
ORIGINAL = QColor(70, 130, 210)
BAND = QColor(220, 50, 50, 55)
LINE = QColor(215, 40, 40)
QUANTIZED = QColor(245, 140, 20, 190)
CENTROID = QColor(200, 90, 0)


def shape_text(shape: tuple[int, ...]) -> str:
    """``(300, 784)`` as ``"300 x 784"`` with a multiplication sign and no spaces."""
    return TIMES.join(str(d) for d in shape) or "scalar"


class HistogramWidget(PlotPanelWidget):
    """The first selected layer's weights: histogram, pruned band, centroids, quantized bars.

    Parameters
    ----------
    session
        The session to mirror; dragging a threshold line sets the layer's prune value.
    parent
        Optional Qt parent.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        tip = "Logarithmic count axis: shows the sparse tails."
        super().__init__(session, bold_label(), tip, parent)
        self.name: str | None = None  # the layer shown
        self._dragging = False
        self._step_open = False  # the current drag has made its undo step
        self._pending: float | None = None  # threshold not yet sent to the session
        self._throttle = QTimer(self)
        self._throttle.setSingleShot(True)
        self._throttle.setInterval(THROTTLE_MS)
        self._throttle.timeout.connect(self._on_throttle_timeout)
        self._build()
        self._apply_palette()
        s = session
        connect_session(
            self,
            [
                (s.model_changed, self._on_session_selection_changed),
                (s.selection_changed, self._on_session_selection_changed),
                (s.settings_changed, self._on_session_settings_changed),
                (s.estimate_changed, self._on_session_settings_changed),
            ],
        )
        self._on_session_selection_changed()

    # ----------------------------------------------------------------- building
    def _build(self) -> None:
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "weight value")
        item.setLabel("left", "count per bin")
        item.showGrid(x=False, y=True, alpha=0.15)
        self.curve = pg.PlotDataItem(
            stepMode="center",
            fillLevel=0,
            pen=pg.mkPen(ORIGINAL, width=1),
            brush=QColor(ORIGINAL.red(), ORIGINAL.green(), ORIGINAL.blue(), 110),
        )
        self.band = pg.LinearRegionItem((0.0, 0.0), movable=False, brush=BAND, pen=pg.mkPen(None))
        self.band.setZValue(5)
        self.band_sample = pg.BarGraphItem(x=[0], height=[0], width=0, brush=BAND, pen=None)
        self.quantized = pg.BarGraphItem(x=[], height=[], width=0, brush=QUANTIZED, pen=None)
        self.quantized.setZValue(10)
        self.centroids = pg.ScatterPlotItem(
            symbol="t1", size=9, brush=CENTROID, pen=pg.mkPen(CENTROID.darker(150))
        )
        self.centroids.setZValue(20)
        tip = "Drag to set the pruning threshold: the weights inside the band are removed."
        self.lines = tuple(
            pg.InfiniteLine(
                0.0,
                angle=90,
                movable=True,
                pen=pg.mkPen(LINE, width=2),
                hoverPen=pg.mkPen(LINE, width=4),
            )
            for _ in range(2)
        )
        for line in self.lines:
            line.setZValue(30)
            line.setToolTip(tip)
            line.sigPositionChanged.connect(self._on_line_moved)
            line.sigPositionChangeFinished.connect(self._on_line_finished)
            item.addItem(line, ignoreBounds=True)
        item.addItem(self.curve)
        item.addItem(self.band, ignoreBounds=True)
        item.addItem(self.quantized, ignoreBounds=True)  # _fit_y covers it
        item.addItem(self.centroids)
        self.legend = item.addLegend(offset=(-8, 8))

    def _apply_palette(self) -> None:
        """pyqtgraph colours from the Qt palette: readable on light and dark themes."""
        base, text = theme_plot(self, self.plot)
        self.legend.setLabelTextColor(text)
        for _, label in self.legend.items:  # labels drawn before keep their old colour
            label.setText(label.text, color=text)
        self.legend.setBrush(QColor(base.red(), base.green(), base.blue(), 200))
        self.legend.setPen(QColor(text.red(), text.green(), text.blue(), 80))

    # --------------------------------------------------------------- public API
    @property
    def stats(self) -> LayerStats | None:
        """The histogram shown, if any."""
        return self.session.stats.get(self.name) if self.name else None

    @property
    def threshold(self) -> float:
        """The threshold the lines show (the pruned band is ``[-threshold, threshold]``)."""
        return abs(self.lines[1].value())

    # ---------------------------------------------------------------- handlers
    def _on_session_selection_changed(self) -> None:
        s = self.session
        shown = next((n for n in s.selection if n in s.stats), None)
        self.name = shown or (s.selection[0] if s.selection else None)
        self._end_drag()
        self._show_histogram()
        self._on_session_settings_changed()
        stats = self.stats
        if stats is not None:
            edges = stats.edges
            self.plot.getPlotItem().setXRange(float(edges[0]), float(edges[-1]), padding=0.02)
        self._fit_y(force=True)

    def _on_session_settings_changed(self) -> None:
        """Band, lines, centroids and title from the session (lines stay put while dragged)."""
        stats, name = self.stats, self.name
        compressed = stats is not None and not self.session.layer_settings(name).excluded
        if not compressed:
            self._show_codebook(None)
            self._show_band(None)
            self._show_title()
            return
        if not self._dragging:
            self._show_band(self.session.threshold(name))
        layer = self.session.estimate.layer(name) if self.session.estimate else None
        self._show_codebook(layer.plan if layer else None)
        self._show_title()

    def _on_log_check_toggled(self, on: bool) -> None:
        item = self.plot.getPlotItem()
        item.setLogMode(y=on)
        item.setLabel("left", "count per bin (log)" if on else "count per bin")
        self._show_histogram()
        self._on_session_settings_changed()
        self._fit_y(force=True)

    def _on_line_moved(self, line: pg.InfiniteLine) -> None:
        """A user drag (the widget's own moves are signal-blocked): mirror and redraw now."""
        if self.stats is None:
            return
        self._dragging = True
        t = abs(line.value())
        self._show_band(t, moving=line)
        self._show_title()
        self._pending = t
        if not self._throttle.isActive():
            self._send()
            self._throttle.start()

    def _on_throttle_timeout(self) -> None:
        if self._pending is not None:
            self._send()
            self._throttle.start()

    def _on_line_finished(self, _line: pg.InfiniteLine) -> None:
        if not self._dragging:
            return
        self._throttle.stop()
        self._pending = self.threshold
        self._send()
        self._end_drag()
        self._on_session_settings_changed()

    # ----------------------------------------------------------------- helpers
    def _end_drag(self) -> None:
        self._throttle.stop()
        self._dragging = self._step_open = False
        self._pending = None

    def _send(self) -> None:
        """Set the shown layer's prune value to the pending threshold (one undo step a drag)."""
        t, self._pending = self._pending, None
        name, stats = self.name, self.stats
        if t is None or stats is None:
            return
        s = self.session.layer_settings(name)
        value = stats.value_of(s.policy, t, s.std_of)
        if s.policy == "sparsity":
            value = min(value, 1.0)
        before = self.session.settings
        try:
            self.session.set_layers(
                (name,), f"prune {name}", merge=self._step_open, value=float(value)
            )
        except SettingsError as exc:
            self.title.setText(f"{name}: {exc}")
            return
        if self.session.settings is not before:
            self._step_open = True

    def _y(self, counts: np.ndarray) -> tuple[np.ndarray, float]:
        """Counts as the plot draws them, and the baseline, in data units."""
        if self.log_y:
            return np.maximum(counts, LOG_FLOOR), LOG_FLOOR
        return np.asarray(counts), 0.0

    def _view_y(self, y: float) -> float:
        """A count in the view's coordinates (log10 on a log axis)."""
        return math.log10(max(y, LOG_FLOOR)) if self.log_y else y

    def _show_histogram(self) -> None:
        stats = self.stats
        if stats is None:
            self.curve.setData([], [])
            return
        y, floor = self._y(stats.counts)
        self.curve.setFillLevel(self._view_y(floor))
        self.curve.setData(stats.edges, y)
        span = 1.02 * float(max(abs(stats.edges[0]), abs(stats.edges[-1]), 1e-12))
        self.lines[0].setBounds((-span, 0.0))
        self.lines[1].setBounds((0.0, span))

    def _show_band(self, t: float | None, moving: pg.InfiniteLine | None = None) -> None:
        """Band and lines at ``±t`` (hidden for None); ``moving`` is left where the user put it."""
        visible = t is not None
        self.band.setVisible(visible)
        for line in self.lines:
            line.setVisible(visible)
        if t is None:
            return
        self.band.setRegion((-t, t))
        with signals_blocked(*self.lines):
            for line, x in zip(self.lines, (-t, t), strict=True):
                if line is not moving:
                    line.setValue(x)

    def _show_codebook(self, plan: LayerPlan | None) -> None:
        """Centroid markers on the x axis and the quantized distribution over the histogram."""
        stats = self.stats
        if plan is None or stats is None:
            self.centroids.setData(x=[], y=[])
            self.quantized.setOpts(x=[], height=[], y0=0)
        else:
            x = np.asarray(plan.codebook, dtype=np.float64)
            base = self._view_y(self._y(np.zeros(1))[1])
            self.centroids.setData(x=x, y=np.full(x.size, base))
            counts = np.asarray(plan.cluster_counts, dtype=np.float64)
            heights = [self._view_y(c) - base for c in counts]
            width = 1.5 * float(stats.edges[1] - stats.edges[0])
            self.quantized.setOpts(x=x, height=heights, y0=base, width=width)
        self._show_legend(plan is not None)
        self._fit_y()

    def _fit_y(self, force: bool = False) -> None:
        """Fit the y range to the histogram and the quantized bars, with slack.

        The range changes only when a bar would be cut off or the bars have shrunk to under
        half of it: a new y range re-lays out the axis (several ms), and a drag sends many
        slightly different estimates.
        """
        stats = self.stats
        if stats is None:
            return
        base = self._view_y(self._y(np.zeros(1))[1])
        heights = self.quantized.opts.get("height")
        tops = [self._view_y(float(np.max(stats.counts, initial=1)))]
        if heights is not None and len(heights):
            tops.append(base + float(np.max(heights)))
        want = max(tops)
        high = self.plot.getPlotItem().getViewBox().viewRange()[1][1]
        if force or want > high or want - base < 0.5 * (high - base):
            self.plot.getPlotItem().setYRange(base, want, padding=0.05)

    def _show_legend(self, compressed: bool) -> None:
        # Rebuilding a legend costs ~8 ms of text layout: only when its entries change.
        key = (compressed, self.band.isVisible() or compressed)
        if key == getattr(self, "_legend_key", None):
            return
        self._legend_key = key
        self.legend.clear()
        self.legend.addItem(self.curve, "original")
        if self.band.isVisible() or compressed:
            self.legend.addItem(self.band_sample, "pruned band")
        if compressed:
            self.legend.addItem(self.quantized, "quantized")
            self.legend.addItem(self.centroids, "centroids")

    def _show_title(self) -> None:
        s, name, stats = self.session, self.name, self.stats
        if name is None:
            self.title.setText("No layer selected")
            return
        info = s.info(name)
        head = f"{name} — {shape_text(info.shape)}"
        if stats is None or s.layer_settings(name).excluded:
            why = "" if stats is not None else f" ({info.kind}: not compressible)"
            self.title.setText(f"{head}, stored losslessly{why}")
            return
        plan = None if self._dragging else s.current_plan(name)
        if plan is not None:
            kept = 100.0 * plan.survivors / plan.size if plan.size else 0.0
            self.title.setText(f"{head}, kept {kept:.2f}%, K={plan.codebook.size}")
            return
        t = self.threshold if self._dragging else s.threshold(name)
        kept = 100.0 * (1.0 - stats.sparsity_at(t))
        bits = s.layer_settings(name).bits
        self.title.setText(f"{head}, kept ≈{kept:.2f}%, K≤{1 << bits} (estimating…)")
