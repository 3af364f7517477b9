"""The frame both plot tabs share: a title row with a "log y" box over a pyqtgraph plot."""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

import pyqtgraph as pg  # after PySide6, so pyqtgraph binds to it

from inspector.model.session import Session

from .util import theme_plot


def plain_axes(plot: pg.PlotWidget) -> None:
    """Axes without SI prefixes (labels carry their own units), drawn from a cached pixmap.

    An axis that picks SI prefixes relabels itself on every resize; in a small plot the label
    width change resizes the view again, forever (seen hanging a test). An axis's area (its
    ticks reach into the plot, its grid lines cross it) overlaps whatever moves in the plot,
    so each mouse move of a drag repainted it, replaying every tick label's text layout: the
    largest part of a drag's drawing. Cached, it is replayed only when its range or size
    changes (pyqtgraph then calls ``update()``, which drops the cache).
    """
    for name in ("left", "bottom"):
        axis = plot.getPlotItem().getAxis(name)
        axis.enableAutoSIPrefix(False)
        axis.setSIPrefixEnableRanges(())  # this pyqtgraph ignores the flag above
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class PlotPanelWidget(QWidget):
    """A title and a "log y" check box over a plot drawn in the Qt palette's colours.

    Subclasses add their items to ``self.plot``, implement ``_on_log_check_toggled`` and call
    ``_apply_palette`` once their items exist.

    Parameters
    ----------
    session
        The session the panel mirrors.
    title
        The label of the title row.
    log_tip
        Tooltip of the "log y" check box.
    parent
        Optional Qt parent.
    """

    def __init__(
        self, session: Session, title: QLabel, log_tip: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.title = title
        self.log_check = QCheckBox("log y")
        self.log_check.setToolTip(log_tip)
        self.log_check.toggled.connect(self._on_log_check_toggled)
        self.plot = pg.PlotWidget()
        plain_axes(self.plot)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.log_check)
        self._column = QVBoxLayout(self)
        self._column.setContentsMargins(4, 4, 4, 4)
        self._column.addLayout(top)
        self._column.addWidget(self.plot, 1)

    def add_above_plot(self, widget: QWidget) -> None:
        """Put ``widget`` in a row of its own between the title row and the plot."""
        self._column.insertWidget(self._column.count() - 1, widget)

    @property
    def log_y(self) -> bool:
        """Whether the y axis is logarithmic."""
        return self.log_check.isChecked()

    def set_log_y(self, on: bool) -> None:
        """Show the y axis on a logarithmic scale."""
        self.log_check.setChecked(on)

    def _on_log_check_toggled(self, on: bool) -> None:
        raise NotImplementedError

    def _apply_palette(self) -> None:
        """pyqtgraph colours from the Qt palette: readable on light and dark themes."""
        theme_plot(self, self.plot)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)
