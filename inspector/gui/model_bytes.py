"""Where the file's bytes go: every layer's original bytes next to its compressed parts.

Per tensor, a grey bar of its original bytes stands beside a stacked bar of its share of the
file: index codes (gaps), weight codes, codebook and Huffman tables for a compressed layer, raw
bytes for a tensor stored losslessly. The bars' numbers come straight from the estimate.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QResizeEvent, QShowEvent
from PySide6.QtWidgets import QLabel, QToolTip, QWidget

import numpy as np
import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.model.estimate import LayerEstimate
from inspector.model.session import Session

from .plot_panel import PlotPanelWidget
from .util import TIMES, connect_session, human_bytes

# part -> (colour, legend text)
PARTS: dict[str, tuple[QColor, str]] = {
    "index": (QColor(60, 120, 210), "index codes"),
    "weights": (QColor(240, 140, 20), "weight codes"),
    "codebook": (QColor(50, 170, 90), "codebook"),
    "tables": (QColor(160, 80, 190), "Huffman tables"),
    "raw": (QColor(150, 110, 80), "raw (lossless)"),
}
BEFORE = QColor(150, 150, 150, 170)
SELECTED = QColor(120, 160, 255, 45)
BAR_WIDTH = 0.38
NAME_CHARS = 16  # tick labels are abbreviated to about this many characters


def layer_parts(layer: LayerEstimate) -> dict[str, int]:
    """A layer's bytes in the file by part; they sum to ``layer.payload_nbytes``."""
    plan = layer.plan
    if layer.coded is not None:  # another method: its payload is all value codes
        return {**dict.fromkeys(PARTS, 0), "weights": layer.payload_nbytes}
    if plan is None:
        return {**dict.fromkeys(PARTS, 0), "raw": layer.payload_nbytes}
    return {
        "index": plan.gaps.code_nbytes,
        "weights": plan.weights.code_nbytes,
        "codebook": plan.codebook_nbytes,
        "tables": plan.table_nbytes,
        "raw": 0,
    }


def short_name(name: str, chars: int = NAME_CHARS) -> str:
    """A tick label: no ``.weight``; past ``chars`` characters, words but the last shortened
    to their initial (numbers kept), then the middle elided.

    ``"encoder.layers.3.self_attn.q_proj.weight"`` -> ``"e.l.3.s.q_proj"``.
    """
    name = name.removesuffix(".weight")
    if len(name) > chars:
        *head, last = name.split(".")
        name = ".".join([p if p.isdigit() else p[:1] for p in head] + [last])
    if len(name) <= chars:
        return name
    half = (chars - 1) // 2
    return f"{name[:half]}…{name[-(chars - 1 - half) :]}"


class ModelBytesWidget(PlotPanelWidget):
    """Bytes before and after compression for every tensor of the model.

    Parameters
    ----------
    session
        The session to mirror; clicking a layer's bars selects it.
    parent
        Optional Qt parent.

    Attributes
    ----------
    names
        The tensors shown, in file order (x = index).
    before
        Original bytes per tensor.
    parts
        Bytes in the file per part (``PARTS`` keys) and tensor.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        title = QLabel()
        title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        tip = "Logarithmic byte axis: small layers stay visible."
        super().__init__(session, title, tip, parent)
        self.names: tuple[str, ...] = ()
        self._stale = False
        self.before = np.zeros(0, np.int64)
        self.parts: dict[str, np.ndarray] = {p: np.zeros(0, np.int64) for p in PARTS}
        self._build()
        self._apply_palette()
        connect_session(
            self,
            [
                (session.model_changed, self._on_session_estimate_changed),
                (session.estimate_changed, self._on_session_estimate_changed),
                (session.selection_changed, self._on_session_selection_changed),
            ],
        )
        self.set_log_y(True)  # compressed layers are 10-50x smaller: linear bars vanish
        self._on_session_estimate_changed()

    # ----------------------------------------------------------------- building
    def _build(self) -> None:
        item = self.plot.getPlotItem()
        item.setLabel("left", "bytes")
        item.showGrid(x=False, y=True, alpha=0.15)
        item.setMouseEnabled(x=True, y=False)
        self.before_bars = pg.BarGraphItem(x=[], height=[], width=BAR_WIDTH, brush=BEFORE, pen=None)
        item.addItem(self.before_bars)
        self.bars: dict[str, pg.BarGraphItem] = {}
        for part, (color, _) in PARTS.items():
            self.bars[part] = pg.BarGraphItem(
                x=[], height=[], width=BAR_WIDTH, brush=color, pen=None
            )
            item.addItem(self.bars[part])
        self.highlight = pg.LinearRegionItem(
            (0.0, 0.0), movable=False, brush=SELECTED, pen=pg.mkPen(None)
        )
        self.highlight.setZValue(-10)
        item.addItem(self.highlight, ignoreBounds=True)
        self.legend = QLabel()  # a row above the plot: never hides a bar
        self.legend.setText(
            "&nbsp;&nbsp;".join(
                f'<span style="color:{color.name()}">&#9632;</span>&nbsp;{text}'
                for color, text in [(BEFORE, "original"), *PARTS.values()]
            )
        )
        self.plot.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self.plot.scene().sigMouseMoved.connect(self._on_scene_moved)
        self.add_above_plot(self.legend)

    # --------------------------------------------------------------- public API
    def after(self) -> np.ndarray:
        """Bytes in the file per tensor (the stacked bars' tops)."""
        return sum(self.parts.values(), np.zeros(len(self.names), np.int64))

    # ---------------------------------------------------------------- handlers
    def _on_session_estimate_changed(self) -> None:
        est = self.session.estimate
        layers = est.layers if est is not None else ()
        self.names = tuple(r.info.name for r in layers)
        self.before = np.array([r.original_nbytes for r in layers], np.int64)
        split = [layer_parts(r) for r in layers]
        self.parts = {p: np.array([d[p] for d in split], np.int64) for p in PARTS}
        self._stale = not self.isVisible()
        if not self._stale:  # a hidden tab draws when shown: a drag repaints less
            self._redraw()

    def _redraw(self) -> None:
        self._stale = False
        self._show_title()
        self._draw()
        self._on_session_selection_changed()
        item = self.plot.getPlotItem()
        item.setXRange(-0.6, max(len(self.names), 1) - 0.4, padding=0)
        item.enableAutoRange(y=True)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._stale:
            self._redraw()

    def _on_session_selection_changed(self) -> None:
        """Shade the first selected tensor's bars."""
        first = next((n for n in self.session.selection if n in self.names), None)
        self.highlight.setVisible(first is not None)
        if first is not None:
            i = self.names.index(first)
            self.highlight.setRegion((i - 0.5, i + 0.5))

    def _on_log_check_toggled(self, on: bool) -> None:
        item = self.plot.getPlotItem()
        item.setLogMode(y=on)
        self._draw()
        item.enableAutoRange(y=True)

    def _on_scene_clicked(self, event: object) -> None:
        index = self._index_at(event.scenePos())  # type: ignore[attr-defined]
        if index is not None:
            self.session.select((self.names[index],))

    def _on_scene_moved(self, pos: QPointF) -> None:
        index = self._index_at(pos)
        if index is None:
            QToolTip.hideText()
            return
        parts = ", ".join(
            f"{PARTS[p][1]} {human_bytes(int(v[index]))}" for p, v in self.parts.items() if v[index]
        )
        text = (
            f"{self.names[index]}\noriginal {human_bytes(int(self.before[index]))} → "
            f"{human_bytes(int(self.after()[index]))}\n{parts}"
        )
        QToolTip.showText(self.plot.mapToGlobal(self.plot.mapFromScene(pos)), text, self.plot)

    # ----------------------------------------------------------------- helpers
    def _index_at(self, scene_pos: QPointF) -> int | None:
        view = self.plot.getPlotItem().getViewBox()
        if not self.names or not view.sceneBoundingRect().contains(scene_pos):
            return None
        index = round(view.mapSceneToView(scene_pos).x())
        return index if 0 <= index < len(self.names) else None

    def _segments(self, bottom: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y0, height)`` of bars from ``bottom`` to ``top`` bytes in view coordinates."""
        if not self.log_y:
            return bottom.astype(float), (top - bottom).astype(float)
        lo = np.log10(np.maximum(bottom, 1).astype(float))
        return lo, np.log10(np.maximum(top, 1).astype(float)) - lo

    def _draw(self) -> None:
        x = np.arange(len(self.names), dtype=float)
        zero = np.zeros(len(self.names), np.int64)
        y0, h = self._segments(zero, self.before)
        self.before_bars.setOpts(x=x - BAR_WIDTH / 2, y0=y0, height=h)
        bottom = zero
        for part, bar in self.bars.items():
            top = bottom + self.parts[part]
            y0, h = self._segments(bottom, top)
            bar.setOpts(x=x + BAR_WIDTH / 2, y0=y0, height=h)
            bottom = top
        self._set_ticks()

    def _set_ticks(self) -> None:
        """Layer names under the bars; every n-th only when they would overlap."""
        labels = [short_name(n) for n in self.names]
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(t) for t in labels), default=0) + 10
        room = max(self.plot.getPlotItem().getViewBox().width(), 100.0)
        step = max(1, math.ceil(len(labels) * widest / room))
        ticks = [(float(i), t) for i, t in enumerate(labels) if i % step == 0]
        minor = [(float(i), "") for i in range(len(labels)) if i % step]
        self.plot.getPlotItem().getAxis("bottom").setTicks([ticks, minor])

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._set_ticks()

    def _show_title(self) -> None:
        est = self.session.estimate
        if est is None:
            self.title.setText("No estimate yet")
            return
        layers = int(self.after().sum())
        self.title.setText(
            f"File {human_bytes(est.file_nbytes)} = layers {human_bytes(layers)} + container "
            f"{human_bytes(est.container_nbytes)};  original "
            f"{human_bytes(est.original_nbytes)} ({est.ratio:.1f}{TIMES} smaller)"
        )
