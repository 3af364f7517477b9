"""What the histogram panel draws besides its curve: colours, legend, outlier marks, texts."""

from __future__ import annotations

from PySide6.QtGui import QColor

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
