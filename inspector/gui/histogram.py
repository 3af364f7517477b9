"""One layer's weight histogram with its pruned band, draggable threshold and codebook.

The curve is the layer's histogram over the visible range, re-binned from the layer's fine
histogram (``LayerStats.binned``) whenever the view changes. The default view leaves out the
outermost 0.1% of each tail; the weights beyond the view are counted at its edges. The band
``[-t, t]`` holds the weights pruning removes; its two edges are draggable lines that set the
layer's prune value (in its policy's units): Shift while dragging moves them at a tenth of
the speed, and the arrow keys nudge them (Shift: finer). The k-means centroids of the latest
estimate are marked on the x axis, and the quantized distribution (the survivors, each moved
to its centroid) is overlaid as thin bars.

Every move the widget makes itself (new bounds, the model's threshold) runs with the lines'
signals blocked, and only the mouse's ``sigDragged``/``sigPositionChangeFinished`` and the
keys write the session: a view update never changes a setting.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import QLabel, QWidget

import numpy as np
import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.core.layer import LayerPlan
from inspector.errors import SettingsError
from inspector.model.session import Session
from inspector.model.stats import LayerStats

from .histogram_items import (
    BAND,
    CENTROID,
    LINE,
    ORIGINAL,
    QUANTIZED,
    BandItem,
    BeyondMarks,
    legend_html,
    stats_text,
    title_text,
)
from .plot_panel import PlotPanelWidget
from .threshold_line import ThresholdLine
from .util import bold_label, connect_session, elastic, signals_blocked, single_shot, theme_plot

THROTTLE_MS = 30  # at most one settings change per this while a line is dragged
REBIN_MS = 40  # re-bin this long after the view stops changing (a zoom sends many)
NUDGE_STEPS = 400  # an arrow key moves the threshold by the visible width over this
FINE_NUDGE = 10  # Shift makes a nudge this many times smaller
VIEW_PAD = 0.05  # slack around the default view, as a fraction of its width
LOG_FLOOR = 0.5  # empty bins are drawn at this count on a log axis
DRAG_HEADROOM = 1.25  # while dragging, the y range grows to this much over the tallest bar


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
        self._step_open = False  # the current drag (or key repeat) has made its undo step
        self._pending: float | None = None  # threshold not yet sent to the session
        self._codebook: tuple[LayerPlan | None, object] = (None, None)  # plan and view drawn
        self._throttle = single_shot(self, THROTTLE_MS, self._on_throttle_timeout)
        self._rebin = single_shot(self, REBIN_MS, self._show_histogram)
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
        self.band = BandItem(BAND)
        self.band.setZValue(5)
        self.quantized = pg.BarGraphItem(x=[], height=[], width=0, brush=QUANTIZED, pen=None)
        self.quantized.setZValue(10)
        self.centroids = pg.ScatterPlotItem(
            symbol="t1", size=9, brush=CENTROID, pen=pg.mkPen(CENTROID.darker(150))
        )
        self.centroids.setZValue(20)
        tip = (
            "Drag to set the pruning threshold: the weights inside the band are removed. "
            "Shift+drag: fine. Arrow keys on the plot: nudge (Shift: finer)."
        )
        self.lines = tuple(
            ThresholdLine(0.0, movable=True, pen=pg.mkPen(LINE, width=2),
                          hoverPen=pg.mkPen(LINE, width=4))
            for _ in range(2)
        )
        for line in self.lines:
            line.setZValue(30)
            line.setToolTip(tip)
            line.sigDragged.connect(self._on_line_moved)  # the mouse only, never setValue
            line.sigPositionChangeFinished.connect(self._on_line_finished)
            item.addItem(line, ignoreBounds=True)
        item.addItem(self.curve)
        item.addItem(self.band, ignoreBounds=True)
        item.addItem(self.quantized, ignoreBounds=True)  # _fit_y covers it
        item.addItem(self.centroids)
        self.marks = BeyondMarks(item)
        self.legend = QLabel()  # a row above the plot: never hides a bar
        self.add_above_plot(self.legend)
        self.stats_label = QLabel()
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.add_above_plot(self.stats_label)
        elastic(self.title, self.legend, self.stats_label)  # the plot keeps its width
        item.getViewBox().sigXRangeChanged.connect(self._on_view_x_changed)
        self.plot.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.plot.installEventFilter(self)

    def _apply_palette(self) -> None:
        """pyqtgraph colours from the Qt palette: readable on light and dark themes."""
        _, text = theme_plot(self, self.plot)
        self.marks.set_color(text)
        self._legend_key = None
        self._show_legend(self.centroids.data.size > 0)

    # --------------------------------------------------------------- public API
    @property
    def stats(self) -> LayerStats | None:
        """The histogram shown, if any."""
        return self.session.stats.get(self.name) if self.name else None

    @property
    def threshold(self) -> float:
        """The threshold the lines show (the pruned band is ``[-threshold, threshold]``)."""
        return abs(self.lines[1].value())

    def view_range(self) -> tuple[float, float]:
        """The x range shown."""
        low, high = self.plot.getPlotItem().getViewBox().viewRange()[0]
        return float(low), float(high)

    def nudge(self, steps: int, fine: bool = False, repeat: bool = False) -> None:
        """Move the threshold by ``steps`` small steps (a tenth of one with ``fine``); as the
        arrow keys do. ``repeat``: the same undo step as the previous nudge."""
        if self.stats is None or not self.lines[1].isVisible():
            return
        low, high = self.view_range()
        step = (high - low) / NUDGE_STEPS / (FINE_NUDGE if fine else 1)
        t = min(max(self.threshold + steps * step, 0.0), self.lines[1].bounds()[1])
        self._end_drag()
        self._step_open = repeat
        self._show_band(t)
        self._pending = t
        self._send()

    # ---------------------------------------------------------------- handlers
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.plot and event.type() == QEvent.Type.KeyPress:
            key = event if isinstance(event, QKeyEvent) else None
            steps = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}.get(key.key()) if key else None
            if key is not None and steps is not None:
                fine = bool(key.modifiers() & Qt.KeyboardModifier.ShiftModifier)
                self.nudge(steps, fine=fine, repeat=key.isAutoRepeat())
                return True
        return super().eventFilter(watched, event)

    def _on_session_selection_changed(self) -> None:
        s = self.session
        shown = next((n for n in s.selection if n in s.stats), None)
        self.name = shown or (s.selection[0] if s.selection else None)
        self._end_drag()
        self._set_bounds()
        self.stats_label.setText(stats_text(self.stats))
        self._on_session_settings_changed()
        self._show_default_view()
        self._fit_y(force=True)

    def _on_session_settings_changed(self) -> None:
        """Band, lines, centroids and title from the session (lines stay put while dragged)."""
        stats, name = self.stats, self.name
        s = self.session.layer_settings(name) if name is not None else None
        compressed = stats is not None and s is not None and not s.excluded
        # Another method has no pruning threshold or codebook of deep's to draw (its title
        # says what it made); the lines and band would show deep's settings, unused.
        if not compressed or s.method != "deep":
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
        low, high = self.view_range()
        item.setLogMode(y=on)
        item.setXRange(low, high, padding=0)  # setLogMode zooms out to all the data
        item.setLabel("left", "count per bin (log)" if on else "count per bin")
        self._show_histogram()
        self._on_session_settings_changed()
        self._fit_y(force=True)

    def _on_view_x_changed(self, *_: object) -> None:
        self._rebin.start()  # a zoom or pan: new bins once it settles

    def _on_line_moved(self, line: pg.InfiniteLine) -> None:
        """A user drag (sigDragged comes from the mouse only): mirror and redraw now."""
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
        self._fit_y()  # the drag only grew the y range

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

    def _set_bounds(self) -> None:
        """The lines' drag limits: the layer's range (blocked: a clamp is not a drag)."""
        stats = self.stats
        span = 1.02 * float(max(abs(stats.lo), abs(stats.hi), 1e-12)) if stats else 1.0
        with signals_blocked(*self.lines):
            self.lines[0].setBounds((-span, 0.0))
            self.lines[1].setBounds((0.0, span))

    def _show_default_view(self) -> None:
        """Zoom to the layer's weights less the outliers, and the threshold."""
        stats = self.stats
        if stats is None:
            self._show_histogram()
            return
        low, high = stats.robust_view()
        if self.lines[1].isVisible():  # the threshold stays in view
            t = self.threshold
            low, high = min(low, -t), max(high, t)
            low, high = max(low, stats.lo), min(high, stats.hi) if high > stats.lo else high
        pad = VIEW_PAD * (high - low) or 1e-6
        self.plot.getPlotItem().setXRange(low - pad, high + pad, padding=0)
        self._rebin.stop()
        self._show_histogram()

    def _show_histogram(self) -> None:
        stats = self.stats
        if stats is None:
            self.curve.setData([], [])
            self._outside = (0, 0)
            self._show_beyond()
            return
        low, high = self.view_range()
        edges, counts = stats.binned(low, high)
        self.bin_width = float(edges[1] - edges[0]) if edges.size > 1 else 0.0
        self.shown_counts = counts
        y, floor = self._y(counts)
        self.curve.setFillLevel(self._view_y(floor))
        self.curve.setData(edges, y)
        if self.quantized.opts.get("x") is not None and len(self.quantized.opts["x"]):
            self.quantized.setOpts(width=1.5 * self.bin_width)  # thin at any zoom
        self._outside = stats.outside(low, high)
        self._fit_y(place=True)

    def _show_beyond(self) -> None:
        """The counts of weights beyond the view, in its top corners."""
        (low, high), (_, top) = self.plot.getPlotItem().getViewBox().viewRange()
        self.marks.show((low, high), top, getattr(self, "_outside", (0, 0)))

    def _show_band(self, t: float | None, moving: pg.InfiniteLine | None = None) -> None:
        """Band and lines at ``±t`` (hidden for None); ``moving`` is left where the user put it."""
        visible = t is not None
        self.band.setVisible(visible)
        for line in self.lines:
            line.setVisible(visible)
        if t is None:
            return
        t = max(t, 0.0)  # a negative threshold prunes nothing: the lines wait at 0 for a drag
        self.band.setRegion((-t, t))
        with signals_blocked(*self.lines):
            for line, x in zip(self.lines, (-t, t), strict=True):
                if line is not moving:
                    line.setValue(x)

    def _show_codebook(self, plan: LayerPlan | None) -> None:
        """Centroid markers on the x axis and the quantized distribution over the histogram.

        Drawn again only for another plan (or axis): both items span the plot, and a drag's
        settings changes re-show the same plan until its estimate lands.
        """
        stats = self.stats
        view = (self.log_y, self.name)
        if plan is self._codebook[0] and view == self._codebook[1]:
            return
        self._codebook = (plan, view)
        if plan is None or stats is None:
            self.centroids.setData(x=[], y=[])
            self.quantized.setOpts(x=[], height=[], y0=0)
        else:
            x = np.asarray(plan.codebook, dtype=np.float64)
            base = self._view_y(self._y(np.zeros(1))[1])
            self.centroids.setData(x=x, y=np.full(x.size, base))
            counts = np.asarray(plan.cluster_counts, dtype=np.float64)
            heights = [self._view_y(c) - base for c in counts]
            width = 1.5 * getattr(self, "bin_width", float(stats.edges[1] - stats.edges[0]))
            self.quantized.setOpts(x=x, height=heights, y0=base, width=width)
        self._show_legend(plan is not None)
        self._fit_y()

    def _fit_y(self, force: bool = False, place: bool = False) -> None:
        """Fit the y range to the histogram and the quantized bars, with slack.

        The range changes only when a bar would be cut off or the bars have shrunk to under
        half of it, and during a drag only grows: a new y range re-lays out the axis and
        repaints the whole plot (several ms), and a drag sends many slightly different
        estimates. The drag's end fits it again.
        """
        stats = self.stats
        if stats is None:
            return
        base = self._view_y(self._y(np.zeros(1))[1])
        bars = self.quantized.opts.get("height")
        heights = np.asarray([] if bars is None else bars, dtype=np.float64)
        shown = getattr(self, "shown_counts", stats.counts)
        tops = [self._view_y(float(np.max(shown, initial=1)))]
        if heights.size:  # the bars in view only: zoomed in, the others would flatten it
            low, high = self.view_range()
            x = np.asarray(self.quantized.opts["x"], dtype=np.float64)
            tops.append(base + float(np.max(heights[(x >= low) & (x <= high)], initial=0)))
        want = max(tops)
        high = self.plot.getPlotItem().getViewBox().viewRange()[1][1]
        if self._dragging and not force:  # grow only, with room: a drag's estimates vary
            if want > high:
                self.plot.getPlotItem().setYRange(base, base + DRAG_HEADROOM * (want - base),
                                                  padding=0.05)
                place = True
        elif force or want > high or want - base < 0.5 * (high - base):
            self.plot.getPlotItem().setYRange(base, want, padding=0.05)
            place = True
        if place:  # the outlier counts stay in the top corners
            self._show_beyond()

    def _show_legend(self, compressed: bool) -> None:
        key = (compressed, self.band.isVisible() or compressed)
        if key != getattr(self, "_legend_key", None):
            self._legend_key = key
            self.legend.setText(legend_html(*key))

    def _show_title(self) -> None:
        threshold = self.threshold if self._dragging else None
        text = title_text(self.session, self.name, threshold)
        self.title.setText(text)
        self.title.setToolTip(text)  # the label may be too narrow for all of it
