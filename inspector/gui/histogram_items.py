"""What the histogram panel draws besides its curve: colours, legend, outlier marks, texts."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF
from PySide6.QtGui import QBrush, QColor

import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.model.session import Session
from inspector.model.stats import LayerStats

from .util import TIMES, k_text

ORIGINAL = QColor(70, 130, 210)
BAND = QColor(220, 50, 50, 55)
LINE = QColor(215, 40, 40)
QUANTIZED = QColor(245, 140, 20, 190)
CENTROID = QColor(200, 90, 0)


def shape_text(shape: tuple[int, ...]) -> str:
    """``(300, 784)`` as ``"300 x 784"`` with a multiplication sign and no spaces."""
    return TIMES.join(str(d) for d in shape) or "scalar"


def stats_text(stats: LayerStats | None) -> str:
    """One line of a layer's statistics: range, mean, std, zeros, distinct values."""
    if stats is None:
        return ""
    zeros = 100.0 * stats.zeros / stats.size if stats.size else 0.0
    distinct = f"{stats.distinct:,}" if stats.distinct_exact else f"≥{stats.distinct:,}"
    return (
        f"min {stats.lo:.4g}   max {stats.hi:.4g}   mean {stats.mean:.4g}   "
        f"std {stats.std:.4g}   zeros {stats.zeros:,} ({zeros:.2f}%)   distinct {distinct}"
    )



def title_text(session: Session, name: str | None, dragged: float | None = None) -> str:
    """The panel's title: layer, shape, weights kept and K, the centroids the codebook has.

    ``dragged``: the threshold of a drag in progress (the estimate is not in yet).
    """
    s = session
    if name is None:
        return "No layer selected"
    info, stats = s.info(name), s.stats.get(name)
    head = f"{name} — {shape_text(info.shape)}"
    if stats is None or s.layer_settings(name).excluded:
        why = "" if stats is not None else f" ({info.kind}: not compressible)"
        return f"{head}, stored losslessly{why}"
    method = s.layer_settings(name).method
    if method != "deep":  # no threshold or codebook of deep's: say what the method made
        layer = s.estimate.layer(name) if s.estimate else None
        if layer is not None and layer.coded is None and layer.note:  # stored raw instead
            return f"{head}, method {method}: {layer.note}"
        if layer is None or layer.coded is None:  # no estimate yet, or the previous method's
            return f"{head}, method {method} (estimating…)"
        nonzero = 100.0 * (info.size - layer.coded.zeros) / info.size if info.size else 0.0
        return (f"{head}, method {method}: {layer.coded.payload_nbytes:,} bytes, "
                f"{nonzero:.2f}% nonzero")
    plan = None if dragged is not None else s.current_plan(name)
    if plan is not None:
        kept = 100.0 * plan.survivors / plan.size if plan.size else 0.0
        return f"{head}, kept {kept:.2f}%, {k_text(s.layer_settings(name).bits, plan)}"
    t = dragged if dragged is not None else s.threshold(name)
    kept = 100.0 * (1.0 - stats.sparsity_at(t))
    return f"{head}, kept ≈{kept:.2f}%, {k_text(s.layer_settings(name).bits, None)} (estimating…)"


def legend_html(compressed: bool, band: bool) -> str:
    """The legend row above the plot (a row of its own: it never hides a bar)."""
    entries = [("&#9632;", ORIGINAL, "original")]
    if band:
        entries.append(("&#9632;", LINE, "pruned band"))
    if compressed:
        entries += [("&#9632;", QUANTIZED, "quantized"), ("&#9650;", CENTROID, "centroids")]
    return "&nbsp;&nbsp;".join(
        f'<span style="color:{color.name()}">{mark}</span>&nbsp;{text}'
        for mark, color, text in entries
    )


class BeyondMarks:
    """Two labels at the top corners of a plot counting the weights left and right of view.

    Parameters
    ----------
    item
        The ``pg.PlotItem`` to draw in.
    """

    def __init__(self, item: pg.PlotItem) -> None:
        self.labels = tuple(pg.TextItem(anchor=(a, 0.0)) for a in (0.0, 1.0))
        for label in self.labels:
            label.setZValue(40)
            item.addItem(label, ignoreBounds=True)

    def set_color(self, color: QColor) -> None:
        for label in self.labels:
            label.setColor(color)

    def show(self, x_range: tuple[float, float], top: float, outside: tuple[int, int]) -> None:
        """Label each edge of ``x_range`` (at height ``top``) with its count, if any."""
        formats = ("◀ {:,} {} beyond", "{:,} {} beyond ▶")
        for label, x, n, text in zip(self.labels, x_range, outside, formats, strict=True):
            label.setVisible(n > 0)
            if n > 0:
                label.setText(text.format(n, "weight" if n == 1 else "weights"))
                label.setPos(x, top)

    def texts(self) -> list[str]:
        """The labels shown."""
        return [label.toPlainText() for label in self.labels if label.isVisible()]


class _Fill(pg.GraphicsObject):
    """``[lo, hi]`` filled over the view's height; a move repaints only what the edges swept.

    Its bounding rect is the whole view, so a move never changes it (a new bounding rect
    repaints all of the old one). Qt keeps one dirty rect per item (the union of its
    updates), so a fill whose two edges both move repaints everything between them.
    """

    def __init__(self, brush: QBrush, parent: pg.GraphicsObject) -> None:
        super().__init__(parent)
        self._brush = brush
        self.region = (0.0, 0.0)
        self._bounds: QRectF | None = None

    def set_region(self, lo: float, hi: float) -> None:
        (old_lo, old_hi), self.region = self.region, (lo, hi)
        view = self.boundingRect()
        pad = 2 * (self.pixelWidth() or 0.0)  # antialiased edges
        for a, b in ((old_lo, lo), (old_hi, hi)):
            if a != b and not view.isEmpty():
                left, right = min(a, b) - pad, max(a, b) + pad
                self.update(QRectF(left, view.top(), right - left, view.height()))

    def viewTransformChanged(self) -> None:
        self._bounds = None  # a new view: a new bounding rect (and a full repaint anyway)
        self.prepareGeometryChange()
        super().viewTransformChanged()

    def boundingRect(self) -> QRectF:
        if self._bounds is None:
            view = self.viewRect()
            self._bounds = QRectF() if view is None else QRectF(view).normalized()
        return self._bounds

    def paint(self, painter: Any, *_: Any) -> None:
        view = self.boundingRect()
        left, right = max(self.region[0], view.left()), min(self.region[1], view.right())
        if right > left:
            painter.fillRect(QRectF(left, view.top(), right - left, view.height()), self._brush)


class BandItem(pg.GraphicsObject):
    """The pruned band ``[lo, hi]``, filled over the view's whole height, as two halves.

    A drag moves both edges of the band ``[-t, t]`` at once; each half has one fixed edge (the
    middle), so a move repaints only the two thin strips the edges swept. pyqtgraph's
    ``LinearRegionItem`` repainted the whole band, and the curve, bars and axes behind it, on
    every mouse move: at 90% sparsity the band covers most of the plot.

    Parameters
    ----------
    brush
        The fill.
    """

    def __init__(self, brush: QColor) -> None:
        super().__init__()
        self.setFlag(self.GraphicsItemFlag.ItemHasNoContents)
        fill = QBrush(brush)
        self._halves = (_Fill(fill, self), _Fill(fill, self))

    def getRegion(self) -> tuple[float, float]:
        """The band's edges, low first."""
        return self._halves[0].region[0], self._halves[1].region[1]

    def setRegion(self, region: tuple[float, float]) -> None:
        """Move the band's edges to ``region``."""
        lo, hi = sorted(float(x) for x in region)
        mid = 0.5 * (lo + hi)
        self._halves[0].set_region(lo, mid)
        self._halves[1].set_region(mid, hi)

    def boundingRect(self) -> QRectF:
        return QRectF()

    def paint(self, *_: Any) -> None:
        pass  # the halves draw
