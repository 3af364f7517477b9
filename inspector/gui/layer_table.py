"""The layer table: one row per tensor with the paper's per-layer columns, mirroring the session.

The table model only formats what ``session.estimate`` already holds (no plan is ever computed
here); the widget adds sorting, a name filter and a row selection kept in step with
``session.selection``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from inspector.io.model_file import TensorInfo
from inspector.model.estimate import LayerEstimate
from inspector.model.health import layer_warning
from inspector.model.session import Session
from inspector.tasks import report

from .kind_menu import build_kind_menu, kind_tooltip
from .util import connect_session, k_note, k_text, signals_blocked

Index = QModelIndex | QPersistentModelIndex
SIZE_SAMPLE_ROWS = 64  # rows whose text sizes the columns
SORT_ROLE = Qt.ItemDataRole.UserRole
MISSING = -1.0  # sort key of a number a row does not have (raw layers, no estimate yet)

# (title, header tooltip, numeric)
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("Layer", "Tensor name in the model file.", False),
    ("Kind", "Role of the tensor: conv, fc, embedding are compressible; the rest stay raw.", False),
    ("Shape", "Tensor shape.", False),
    ("Params", "Number of weights.", True),
    ("Share", "Share of the model's original bytes.", True),
    ("Threshold", "Pruning threshold: weights with |w| below it are removed.", True),
    ("Kept", "Weights surviving pruning; 'raw' = stored losslessly.", True),
    ("Bits", "Cluster bits of the weight codes (K = codebook size actually used).", True),
    ("Idx bits", "Index bits: width of the relative sparse-index (gap) codes.", True),
    ("Bytes", "Estimated bytes of the layer in the compressed file.", True),
    ("Ratio", "Original bytes / compressed bytes of the layer.", True),
    (
        "SQNR",
        "Weight-space signal-to-noise ratio of the decoded layer (dB): a proxy for the damage "
        "done to the weights, not a measure of accuracy.",
        True,
    ),
)
(NAME, KIND, SHAPE, PARAMS, SHARE, THRESHOLD, KEPT, BITS, INDEX_BITS, BYTES, RATIO, SQNR) = range(
    len(COLUMNS)
)
ESTIMATED = (THRESHOLD, KEPT, BITS, INDEX_BITS, BYTES, RATIO, SQNR)
WARNING_COLOR = "#d9534f"  # the app's warning red: reads on light and dark backgrounds


@dataclass(frozen=True, slots=True)
class _Row:
    """What one row displays: texts, sort keys and tooltips per column, and whether it is raw."""

    texts: tuple[str, ...]
    keys: tuple[Any, ...]
    tips: tuple[str, ...]
    raw: bool
    broken: bool = False  # the proxy says this layer likely breaks the model


def _natural(name: str) -> str:
    """A sort key putting ``layer2`` before ``layer10``."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), name.lower())


def _format_sqnr(db: float) -> str:
    if math.isnan(db):
        return "-"
    return "∞ dB" if math.isinf(db) else f"{db:.1f} dB"


def _estimated(layer: LayerEstimate) -> tuple[list[str], list[Any], list[str]]:
    """Texts, sort keys and tooltips of the estimate columns of one layer."""
    info, plan, record = layer.info, layer.plan, layer.record
    r = report.row(info.name, info.kind, record, info.nbytes, plan)
    nbytes = record.payload_nbytes
    ratio = info.nbytes / nbytes if nbytes else math.inf
    size_texts, size_keys = [f"{nbytes:,}", f"{ratio:.1f}x"], [float(nbytes), ratio]
    if layer.coded is not None:  # another method: its name where deep shows the kept share
        texts = ["-", layer.method, "-", "-", *size_texts, _format_sqnr(layer.sqnr_db)]
        keys = [MISSING, 1.25, MISSING, MISSING, *size_keys, layer.sqnr_db]
        return texts, keys, [f"Coded by {layer.method}."] * len(ESTIMATED)
    if plan is None:  # raw: kept sorts above 100%, SQNR as lossless
        texts = ["-", "raw", "-", "-", *size_texts, "-"]
        keys = [MISSING, 1.5, MISSING, MISSING, *size_keys, math.inf]
        return texts, keys, ["Stored losslessly."] * len(ESTIMATED)
    k = int(plan.codebook.size)
    pruned = plan.mask.threshold >= 0  # the mask's "nothing pruned" is a negative threshold
    texts = [
        f"{plan.mask.threshold:.4g}" if pruned else "none",
        f"{100 * r.kept:.2f}%",
        f"{plan.settings.bits} ({k_text(plan.settings.bits, plan)})",
        f"{plan.settings.index_bits}",
        *size_texts,
        _format_sqnr(plan.sqnr_db),
    ]
    sqnr_key = MISSING if math.isnan(plan.sqnr_db) else plan.sqnr_db
    keys = [
        plan.mask.threshold,
        r.kept,
        plan.settings.bits * 1000.0 + k,
        float(plan.settings.index_bits),
        *size_keys,
        sqnr_key,
    ]
    tips = [
        f"|w| < {plan.mask.threshold:.6g} pruned ({plan.mask.ties} ties at the threshold)"
        if pruned else "Nothing pruned.",
        f"{plan.survivors:,} of {info.size:,} weights kept",
        f"{k_note(plan.settings.bits, plan)} Weight codes: {r.weight_bits_pq:.2f} "
        f"bits/weight fixed, {r.weight_bits_pqh:.2f} with Huffman",
        f"index codes: {r.index_bits_pq:.2f} bits/weight fixed, "
        f"{r.index_bits_pqh:.2f} with Huffman; {plan.fillers:,} filler entries",
        f"codebook {plan.codebook_nbytes:,} B, Huffman tables {plan.table_nbytes:,} B, "
        f"codes {plan.weights.code_nbytes + plan.gaps.code_nbytes:,} B",
        f"{info.nbytes:,} B -> {nbytes:,} B",
        f"relative weight error {plan.relative_error:.3g} (weight-space proxy, not accuracy)",
    ]
    return texts, keys, tips


def _row(
    info: TensorInfo, total_nbytes: int, layer: LayerEstimate | None, raw: bool,
    kind: tuple[str, str] = ("", ""),
) -> _Row:
    """Everything one row shows; ``kind`` is the kind used and why (default: the file's)."""
    kind_text, kind_tip = kind if kind[0] else (info.kind, info.reason)
    share = info.nbytes / total_nbytes if total_nbytes else 0.0
    pct = 100 * share
    shape = "x".join(str(d) for d in info.shape) or "scalar"
    texts = [info.name, kind_text, shape, f"{info.size:,}", f"{pct:.1f}%"]
    if 0 < pct < 0.05:
        texts[SHARE] = "<0.1%"
    keys: list[Any] = [_natural(info.name), kind_text, float(info.size), float(info.size), share]
    tips = [f"{info.name} ({info.dtype})", kind_tip, "", "", f"{info.nbytes:,} B"]
    if layer is None:
        texts += [""] * len(ESTIMATED)
        keys += [MISSING] * len(ESTIMATED)
        tips += ["No estimate yet."] * len(ESTIMATED)
    else:
        more = _estimated(layer)
        texts, keys, tips = texts + more[0], keys + more[1], tips + more[2]
        raw = raw or not layer.lossy
        return _with_warning(_Row(tuple(texts), tuple(keys), tuple(tips), raw), layer)
    return _Row(tuple(texts), tuple(keys), tuple(tips), raw)


def _with_warning(row: _Row, layer: LayerEstimate) -> _Row:
    """``row`` marked broken, its SQNR tooltip explaining why, when the proxy says so."""
    why = layer_warning(layer.plan or layer.coded)
    if not why:
        return row
    tips = list(row.tips)
    tips[SQNR] = f"{why}.\n{tips[SQNR]}"
    return _Row(row.texts, row.keys, tuple(tips), row.raw, broken=True)


def _warning_brush(row: _Row, col: int) -> QBrush | None:
    """The warning colour of a broken layer's SQNR cell."""
    return QBrush(QColor(WARNING_COLOR)) if row.broken and col == SQNR else None


class LayerTableModel(QAbstractTableModel):
    """The session's tensors as table rows; reads ``session.estimate``, never computes it.

    Parameters
    ----------
    session
        The session whose tensors and estimate the rows show.
    parent
        Optional Qt parent.
    """

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._rows: list[_Row] = []
        self._rebuild()
        connect_session(
            self,
            [
                (session.model_changed, self._on_session_model_changed),
                (session.settings_changed, self._on_session_estimate_changed),
                (session.estimate_changed, self._on_session_estimate_changed),
            ],
        )

    # ------------------------------------------------------------ Qt model API
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.texts[col]
        if role == SORT_ROLE:
            return row.keys[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tips[col] or None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(col)
        if role == Qt.ItemDataRole.ForegroundRole and row.broken:
            return _warning_brush(row, col)
        if role == Qt.ItemDataRole.ForegroundRole and row.raw:
            return QBrush(QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText))
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][1]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _alignment(section)
        return None

    # ----------------------------------------------------------------- helpers
    def name(self, row: int) -> str:
        """Name of the tensor in source row ``row``."""
        return self.session.infos[row].name

    def row_of(self, name: str) -> int:
        """Source row of tensor ``name`` (-1 if absent)."""
        return next((i for i, info in enumerate(self.session.infos) if info.name == name), -1)

    def _rebuild(self) -> None:
        s = self.session
        total = sum(i.nbytes for i in s.infos)
        est = {r.info.name: r for r in s.estimate.layers} if s.estimate else {}
        self._rows = [
            _row(i, total, est.get(i.name), _excluded(s, i.name) or not i.lossy_ok,
                 (s.settings.kind_of(i.name, i.kind), kind_tooltip(s, i.name)))
            for i in s.infos
        ]

    def _on_session_model_changed(self) -> None:
        self.beginResetModel()
        self._rebuild()
        self.endResetModel()

    def _on_session_estimate_changed(self) -> None:
        if len(self.session.infos) != len(self._rows):  # pragma: no cover - model_changed first
            self._on_session_model_changed()
            return
        before = self._rows
        self._rebuild()
        # Only rows whose content changed: repainting the whole table (~10 ms) for every
        # estimate while a threshold is dragged starves the GUI thread.
        for row, (old, new) in enumerate(zip(before, self._rows, strict=True)):
            if old != new:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))


def _excluded(session: Session, name: str) -> bool:
    return session.layer_settings(name).excluded


def _alignment(column: int) -> Qt.AlignmentFlag:
    horizontal = Qt.AlignmentFlag.AlignRight if COLUMNS[column][2] else Qt.AlignmentFlag.AlignLeft
    return horizontal | Qt.AlignmentFlag.AlignVCenter


class LayerTableWidget(QWidget):
    """A filterable, sortable table of the session's layers; its row selection is the session's.

    Parameters
    ----------
    session
        The session to mirror; selecting rows selects its layers.
    parent
        Optional Qt parent.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.table_model = LayerTableModel(session, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(NAME)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("filter layers…")
        self.filter_edit.setClearButtonEnabled(True)
        self.view = QTableView()
        self._sized_for_estimate = False
        self._build_view()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view)
        self.filter_edit.textChanged.connect(self._on_filter_text_changed)
        self.view.selectionModel().selectionChanged.connect(self._on_view_selection_changed)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_view_context_menu)
        connect_session(
            self,
            [
                (session.model_changed, self._on_session_model_changed),
                (session.selection_changed, self._on_session_selection_changed),
                (session.estimate_changed, self._on_session_estimate_changed),
            ],
        )
        self._on_session_model_changed()
        self._on_session_selection_changed()

    def _build_view(self) -> None:
        v = self.view
        v.setModel(self.proxy)
        v.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        v.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        v.setAlternatingRowColors(True)
        v.setWordWrap(False)
        v.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        v.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        v.verticalHeader().hide()
        v.verticalHeader().setDefaultSectionSize(v.fontMetrics().height() + 8)
        header = v.horizontalHeader()
        header.setStretchLastSection(False)
        header.setHighlightSections(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSortIndicatorClearable(True)  # third click: back to the file's order
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        v.setSortingEnabled(True)

    def selected_names(self) -> tuple[str, ...]:
        """Names of the rows selected in the view, in view order."""
        rows = sorted(i.row() for i in self.view.selectionModel().selectedRows())
        return tuple(
            self.table_model.name(self.proxy.mapToSource(self.proxy.index(r, NAME)).row())
            for r in rows
        )

    # ---------------------------------------------------------------- handlers
    def _on_view_selection_changed(self, *_: object) -> None:
        self.session.select(self.selected_names())

    def _on_view_context_menu(self, pos: QPoint) -> None:
        names = self.selected_names()
        if names:
            menu = build_kind_menu(self.session, names, self)
            menu.exec(self.view.viewport().mapToGlobal(pos))
            menu.deleteLater()  # one menu per right-click: do not keep them all

    def _on_filter_text_changed(self, text: str) -> None:
        with signals_blocked(self.view.selectionModel()):
            self.proxy.setFilterFixedString(text)
        self._on_session_selection_changed()  # hidden rows leave the session's selection alone

    def _fit_columns(self) -> None:
        """Columns to their contents; the name column takes the room left over."""
        # Measuring every row's text cost ~1.4 ms a row (0.5-1.5 s for a 342-tensor detector,
        # on the GUI thread): a sample of rows gives the same widths.
        self.view.horizontalHeader().setResizeContentsPrecision(SIZE_SAMPLE_ROWS)
        self.view.resizeColumnsToContents()
        if self.table_model.columnCount() > NAME:  # sections exist only once columns do
            header = self.view.horizontalHeader()
            # re-entering Stretch makes the header recompute it after the resize above
            header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
            header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)

    def _on_session_model_changed(self) -> None:
        # Sized once its first estimate is in (below): sizing costs ~10 ms of text layout,
        # and opening a model is the moment the GUI thread is busiest.
        self._sized_for_estimate = False
        if self.session.estimate is not None or self.session.model is None:
            self._on_session_estimate_changed()

    def _on_session_estimate_changed(self) -> None:
        # The estimate columns are empty until the first estimate: size them once it is in.
        if self.session.estimate is not None and not self._sized_for_estimate:
            self._sized_for_estimate = True
            self._fit_columns()

    def _on_session_selection_changed(self) -> None:
        selection = QItemSelection()
        first = QModelIndex()
        for name in self.session.selection:
            source = self.table_model.index(self.table_model.row_of(name), 0)
            index = self.proxy.mapFromSource(source)
            if index.isValid():
                last = self.proxy.index(index.row(), len(COLUMNS) - 1)
                selection.select(index, last)
                first = first if first.isValid() else index
        model = self.view.selectionModel()
        with signals_blocked(model):
            model.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            if first.isValid():
                model.setCurrentIndex(first, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.view.viewport().update()
        if first.isValid():
            self.view.scrollTo(first)
