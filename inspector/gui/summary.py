"""The summary strip: original and compressed size, ratio, weights kept and accuracy.

Shows what ``session.estimate`` holds; while a new estimate is being computed the previous
figures stay visible, greyed, next to a small busy indicator.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QSizePolicy, QWidget

from inspector.model.accuracy import Accuracy
from inspector.model.health import BROKEN_SQNR_DB, summary_warning
from inspector.model.session import Session
from inspector.tasks import report

from .util import bold_label, connect_session, human_bytes

DASH = "\N{EN DASH}"
WARNING_STYLE = "color: #d9534f; font-weight: bold;"  # the app's warning red
WARNING_TIP = (
    f"A layer whose weight-space SQNR is below {BROKEN_SQNR_DB:g} dB is mostly noise after "
    "decoding (the broken layers' SQNR cells are coloured in the table). Without evaluation "
    "data the accuracy above is only a proxy: open evaluation data to measure it, or go back "
    "to the safe default (each layer pruned only as far as a 30 dB floor allows)."
)
PROXY_TIP = (
    "Weight-space signal-to-noise ratio over the compressed layers: "
    "10·log10(Σw² / Σ(w - ŵ)²). It says how much the weights changed, not how accurate "
    "the compressed model is; that needs evaluation data."
)

AGREEMENT_TIP = (
    "Measured by running the original and the compressed model on the same inputs, without "
    "labels: how often their top-1 predictions agree, and the mean cosine between their "
    "outputs. On synthetic inputs (seeded random, from the model's input shape) it says how "
    "faithfully the compressed model follows the original, not how accurate it is on real data."
)


def exact_bytes(n: int) -> str:
    """``"1.07 MB (1,066,440 B)"``; bytes below 1000 are shown once (``"512 B"``)."""
    return human_bytes(n) if abs(n) < 1000 else f"{human_bytes(n)} ({n:,} B)"


def proxy_accuracy(sqnr_db: float) -> str:
    """The accuracy line when no evaluation data exists: the weight-space SQNR."""
    if math.isnan(sqnr_db):
        return f"SQNR {DASH} (no compressed layers)"
    value = "∞ dB (lossless)" if math.isinf(sqnr_db) else f"{sqnr_db:.1f} dB"
    return f"SQNR {value} — weight-space proxy (no evaluation data)"


def measured_accuracy(acc: Accuracy, note: str) -> str:
    """The accuracy line of a measurement: top-1, the drop, agreement and what it ran on.

    Without labels (an inputs-only file, or synthetic inputs) there is no accuracy: the line
    says it is the agreement with the original, and on what.
    """
    if not acc.labelled:  # how the inputs were made is in the tooltip: the line stays short
        top1 = "" if math.isnan(acc.agreement) else f"top-1 {100 * acc.agreement:.1f}%, "
        return (f"agreement with the original: {top1}output cosine {acc.cosine:.3f} "
                f"— measured on {note.split(' (')[0]}")
    drop = (acc.baseline_top1 - acc.top1) * 100
    change = f"{-drop:+.2f} pt" if abs(drop) >= 0.005 else "no change"
    return (
        f"top-1 {100 * acc.top1:.2f}% ({change} vs {100 * acc.baseline_top1:.2f}% "
        f"uncompressed), agrees {100 * acc.agreement:.1f}% — measured on {note}"
    )


class SummaryWidget(QWidget):
    """A compact panel of the whole model's figures.

    Parameters
    ----------
    session
        The session whose model and estimate the panel shows.
    parent
        Optional Qt parent.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.accuracy_kind = "proxy"
        self._measured: str | None = None
        self._accuracy_busy = False
        self._estimating = False
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 4)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(4)
        self.original = self._add(grid, 0, 0, "Original")
        self.compressed = self._add(grid, 0, 2, "Compressed")
        self.ratio = self._add(grid, 0, 5, "Ratio")
        self.kept = self._add(grid, 1, 0, "Weights kept")
        self.accuracy = self._add(grid, 1, 2, "Accuracy", span=5)
        self.accuracy.setMinimumWidth(1)  # a long accuracy line never widens the window
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setTextVisible(False)
        self.busy.setFixedSize(60, 10)
        self.busy.setToolTip("updating…")
        policy = self.busy.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # showing it never moves the numbers
        self.busy.setSizePolicy(policy)
        self.busy.hide()
        grid.addWidget(self.busy, 0, 4, Qt.AlignmentFlag.AlignVCenter)
        self.warning = self._warning_label(grid)
        grid.setColumnStretch(7, 1)
        grid.setRowStretch(3, 1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        connect_session(
            self,
            [
                (session.model_changed, self._on_session_model_changed),
                (session.estimate_changed, self._on_session_estimate_changed),
                (session.accuracy_changed, self._on_session_accuracy_changed),
                (session.settings_changed, self._on_session_accuracy_changed),
            ],
        )
        self._on_session_estimate_changed()

    def _add(self, grid: QGridLayout, row: int, col: int, caption: str, span: int = 1) -> QLabel:
        """A caption and its value label at ``(row, col)``; returns the value label."""
        label = QLabel(caption + ":")
        value = bold_label(DASH)
        value.setObjectName(caption.lower().replace(" ", "_"))
        grid.addWidget(label, row, col, Qt.AlignmentFlag.AlignRight)
        grid.addWidget(value, row, col + 1, 1, span)
        return value

    @staticmethod
    def _warning_label(grid: QGridLayout) -> QLabel:
        """The warning line under the figures (hidden while there is nothing to warn of).

        Its row keeps its height while hidden: a drag's estimates come and go with warnings,
        and a row appearing and vanishing resized the plots below on each (a re-layout and a
        full repaint, with every axis's ticks made again: the worst stalls of a drag).
        """
        label = QLabel()
        label.setObjectName("warning")
        label.setStyleSheet(WARNING_STYLE)
        label.setToolTip(WARNING_TIP)
        label.setMinimumWidth(1)  # never widens the window
        policy = label.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        label.setSizePolicy(policy)
        label.hide()
        grid.addWidget(label, 2, 0, 1, 8)
        return label

    def _show_warning(self) -> None:
        """Warn of likely broken layers while accuracy is only the proxy."""
        s = self.session
        text = "" if s.accuracy_is_current else summary_warning(s.estimate)
        self.warning.setText(f"\N{WARNING SIGN} {text}" if text else "")
        self.warning.setVisible(bool(text))

    @property
    def values(self) -> tuple[QLabel, ...]:
        """The value labels, in reading order."""
        return (self.original, self.compressed, self.ratio, self.kept, self.accuracy)

    # --------------------------------------------------------------- public API
    def set_busy(self, busy: bool) -> None:
        """Show (or hide) that a new estimate is on its way; the old figures stay, greyed."""
        self._estimating = busy
        self.busy.setVisible(busy or self._accuracy_busy)
        for label in self.values[:-1]:
            label.setEnabled(not busy)
        self._on_session_accuracy_changed()

    def is_busy(self) -> bool:
        """Whether the size estimate is being recomputed."""
        return self._estimating

    def set_accuracy_busy(self, busy: bool) -> None:
        """Show that the accuracy is being measured; the last figure stays, greyed."""
        self._accuracy_busy = busy
        self.busy.setVisible(busy or self._estimating)
        self._on_session_accuracy_changed()

    def set_accuracy(self, text: str, kind: str) -> None:
        """Replace the accuracy line.

        Parameters
        ----------
        text
            What to show, e.g. ``"top-1 71.2% (ImageNet val, 1000 images)"``.
        kind
            ``"measured"`` (from evaluation data: kept until the model changes or
            ``clear_accuracy`` is called) or ``"proxy"`` (shown until the next estimate).
            The kind is added to the text unless the text already names it.
        """
        if kind not in ("measured", "proxy"):
            raise ValueError(f"kind must be 'measured' or 'proxy', got {kind!r}")
        self.accuracy_kind = kind
        self._measured = text if kind == "measured" else None
        shown = text if kind in text.lower() else f"{text} ({kind})"
        self.accuracy.setText(shown)
        tip = PROXY_TIP if kind == "proxy" else "Measured on evaluation data."
        if kind == "measured" and "agreement with the original" in text:
            tip = AGREEMENT_TIP
        self.accuracy.setToolTip(tip)

    def clear_accuracy(self) -> None:
        """Go back to the weight-space proxy of the current estimate."""
        self._measured = None
        self._show_proxy()

    # ---------------------------------------------------------------- handlers
    def _on_session_model_changed(self) -> None:
        self._measured = None
        self._on_session_estimate_changed()

    def _on_session_accuracy_changed(self) -> None:
        self._show_warning()
        s = self.session
        if s.accuracy is None:
            self.accuracy.setEnabled(not self._estimating)
            if self._measured is not None:
                self.clear_accuracy()
            if s.accuracy_note and self.accuracy_kind == "proxy":
                self.accuracy.setToolTip(f"{PROXY_TIP}\n\nNot measured: {s.accuracy_note}")
            return
        self.set_accuracy(measured_accuracy(s.accuracy, s.accuracy_note), "measured")
        if not s.accuracy.labelled:
            self.accuracy.setToolTip(f"{AGREEMENT_TIP}\n\nMeasured on {s.accuracy_note}.")
        current = s.accuracy_is_current and not self._accuracy_busy
        self.accuracy.setEnabled(current and not self._estimating)
        if not current:
            self.accuracy.setToolTip("Being measured again for the current settings…")

    def _on_session_estimate_changed(self) -> None:
        self._show_warning()
        s, est = self.session, self.session.estimate
        original = est.original_nbytes if est else (s.model.nbytes if s.model else None)
        self.original.setText(DASH if original is None else exact_bytes(original))
        if est is None:
            for label in self.values[1:]:
                label.setText(DASH)
            self.accuracy.setToolTip("")
            return
        self.compressed.setText(exact_bytes(est.file_nbytes))
        self.ratio.setText(_ratio_text(est.ratio))
        total = report.totals(report.rows_of_estimate(est), est.file_nbytes)
        params = total["compressed_params"]
        self.kept.setText(f"{100 * total['kept']:.2f}% of {params:,}" if params else DASH)
        self.kept.setToolTip(
            f"Weights surviving pruning, over the {params:,} weights of the compressed layers"
            if params
            else "No layer is compressed."
        )
        if self._measured is None:
            self._show_proxy()

    def _show_proxy(self) -> None:
        est = self.session.estimate
        if est is None:
            self.accuracy.setText(DASH)
            return
        self.set_accuracy(proxy_accuracy(est.sqnr_db), "proxy")


def _ratio_text(ratio: float) -> str:
    if math.isinf(ratio):
        return DASH
    return f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.2f}x larger"
