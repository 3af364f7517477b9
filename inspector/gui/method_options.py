"""The selected layers' method and its options: controls built from the method's declared
options (:class:`~inspector.core.stages.base.Option`), so a new method needs no edit here.

Like every control, a user action writes the session; a model event (a new selection, new
settings, a new estimate) updates the widgets inside signal blockers and never writes back.
The estimate itself is computed by the controller's workers as for any settings change.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from inspector.core.stages import registry
from inspector.core.stages.base import Option
from inspector.errors import SettingsError
from inspector.model.session import Session

from .util import connect_session, signals_blocked

_BIG = 1e9  # a spin box's bound where an option declares none


def method_summary(session: Session, name: str) -> str:
    """What the estimate says of layer ``name`` under its method (``""`` without one)."""
    est = session.estimate.layer(name) if session.estimate is not None else None
    if est is None:
        return ""
    if est.note:
        return est.note
    sqnr = est.sqnr_db
    fidelity = "exact" if math.isinf(sqnr) else f"SQNR {sqnr:.1f} dB"
    return f"{est.method}: {est.payload_nbytes:,} bytes, {fidelity}"


class MethodOptionsWidget(QWidget):
    """A "Method" choice for the selected compressible layers, and its options' editors."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.method_combo = QComboBox()
        registry.method("deep")  # loads the registry
        for name in sorted(registry.METHODS, key=lambda n: (n != "deep", n)):
            self.method_combo.addItem(name, name)
        self.method_combo.setToolTip("How the selected layers are coded: deep (prune, "
                                     "k-means, Huffman) or another registered method")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #d03030;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.form = QFormLayout(self)
        self.form.setContentsMargins(6, 0, 6, 6)
        self.form.addRow("Method", self.method_combo)
        self.form.addRow(self.summary)
        self.form.addRow(self.error_label)
        self.editors: dict[str, QWidget] = {}
        self._shown_method = ""
        self.method_combo.currentIndexChanged.connect(self._on_method_combo_changed)
        connect_session(self, [
            (session.settings_changed, self._on_session_changed),
            (session.selection_changed, self._on_session_changed),
            (session.model_changed, self._on_session_changed),
            (session.estimate_changed, self._on_session_estimate_changed),
        ])
        self._on_session_changed()

    def targets(self) -> tuple[str, ...]:
        s = self.session
        return tuple(n for n in s.selection if s.compressible(n))

    # ------------------------------------------------------------ model writes
    def _write(self, action: Any) -> None:
        try:
            action()
        except SettingsError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            self._on_session_changed()  # back to what the session holds
            return
        self.error_label.hide()

    def _on_method_combo_changed(self, _index: int) -> None:
        names, method = self.targets(), self.method_combo.currentData()
        if names:
            label = f"method {method} for " + (names[0] if len(names) == 1
                                               else f"{len(names)} layers")
            self._write(lambda: self.session.set_method(names, method, label))

    def _on_option_changed(self, option: Option, value: Any) -> None:
        names = self.targets()
        if names:
            label = f"{option.name} of " + (names[0] if len(names) == 1
                                            else f"{len(names)} layers")
            self._write(lambda: self.session.set_layers(names, label, **{option.name: value}))

    # ------------------------------------------------------------ model -> view
    def _on_session_changed(self) -> None:
        names = self.targets()
        self.setEnabled(bool(names))
        if not names:
            self._rebuild("")
            self.summary.clear()
            return
        s = self.session.layer_settings(names[0])
        with signals_blocked(self.method_combo, *self.editors.values()):
            self.method_combo.setCurrentIndex(self.method_combo.findData(s.method))
        if s.method != self._shown_method:
            self._rebuild(s.method)
        for name, editor in self.editors.items():
            with signals_blocked(editor):
                _show(editor, s.options[name])
        self.method_combo.setEnabled(not s.excluded)
        for editor in self.editors.values():
            editor.setEnabled(not s.excluded)
        self._on_session_estimate_changed()

    def _on_session_estimate_changed(self) -> None:
        names = self.targets()
        self.summary.setText(method_summary(self.session, names[0]) if names else "")

    def _rebuild(self, method: str) -> None:
        """The option rows of ``method`` (none for deep: its settings are the panel above)."""
        while self.form.rowCount() > 3:
            self.form.removeRow(3)
        self.editors = {}
        self._shown_method = method
        if not method:
            return
        for option in registry.method(method).options:
            editor = self._editor(option)
            editor.setToolTip(option.help)
            self.editors[option.name] = editor
            self.form.addRow(option.label or option.name, editor)

    def _editor(self, o: Option) -> QWidget:
        if o.kind is bool:
            box = QCheckBox()
            box.toggled.connect(lambda on: self._on_option_changed(o, bool(on)))
            return box
        if o.kind is str:
            combo = QComboBox()
            for choice in o.choices:
                combo.addItem(choice, choice)
            combo.currentIndexChanged.connect(
                lambda _i: self._on_option_changed(o, combo.currentData()))
            return combo
        # A nullable number's "none" is one step below its range, shown as the word (Qt's
        # special value text): a None option must not look like its smallest value.
        if o.kind is int:
            spin = QSpinBox()
            low = int(o.lo if o.lo is not None else -_BIG) - int(o.nullable)
            spin.setRange(low, int(o.hi if o.hi is not None else _BIG))
            spin.setKeyboardTracking(False)
            if o.nullable:
                spin.setSpecialValueText("none")
            spin.valueChanged.connect(lambda v: self._on_option_changed(
                o, None if o.nullable and v == spin.minimum() else int(v)))
            return spin
        dspin = QDoubleSpinBox()
        dspin.setDecimals(6)
        low = o.lo if o.lo is not None else -_BIG
        dspin.setRange(low - 1e-6 if o.nullable else low, o.hi if o.hi is not None else _BIG)
        dspin.setKeyboardTracking(False)
        if o.nullable:
            dspin.setSpecialValueText("none")
        dspin.valueChanged.connect(lambda v: self._on_option_changed(
            o, None if o.nullable and v == dspin.minimum() else float(v)))
        return dspin


def _show(editor: QWidget, value: Any) -> None:
    if isinstance(editor, QCheckBox):
        editor.setChecked(bool(value))
    elif isinstance(editor, QComboBox):
        editor.setCurrentIndex(editor.findData(value))
    elif isinstance(editor, QSpinBox | QDoubleSpinBox):
        if value is not None:
            editor.setValue(value)
        elif editor.specialValueText():  # a nullable option's "none"
            editor.setValue(editor.minimum())
