"""The settings panel: prune, quantize, index and Huffman settings of the selected layers.

It shows the first selected compressible layer's resolved settings; a change applies to every
selected compressible layer. Model events update the controls inside signal blockers, so
nothing echoes back into the session. A slider drag is one undo step.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QWidget,
)

from inspector.core.layer import LayerPlan
from inspector.core.settings import (
    MAX_BITS,
    MAX_INDEX_BITS,
    MIN_BITS,
    MIN_INDEX_BITS,
    LayerSettings,
)
from inspector.errors import SettingsError
from inspector.model.session import Session
from inspector.model.stats import LayerStats

from .control_tips import INITS, POLICIES, TIPS
from .util import bold_label, connect_session, elastic, k_note, k_text, signals_blocked

STD_MAX, STD_STEP = 5.0, 0.01
SPARSITY_MAX, SPARSITY_STEP = 0.999, 0.001
THRESHOLD_STEPS = 1000


def value_scale(policy: str, stats: LayerStats | None) -> tuple[float, float, int]:
    """``(step, maximum, decimals)`` of a policy's value slider and spin box."""
    if policy == "std":
        return STD_STEP, STD_MAX, 2
    if policy == "sparsity":
        return SPARSITY_STEP, SPARSITY_MAX, 3
    top = stats.absmax if stats is not None and stats.absmax > 0 else 1.0
    step = top / THRESHOLD_STEPS
    return step, top, min(10, max(3, math.ceil(-math.log10(step)) + 1))


def floor_note(plan: LayerPlan) -> str:
    """What a fidelity floor made of the asked settings (``""`` without a floor)."""
    asked = plan.requested
    if asked is None or asked.min_sqnr is None:
        return ""
    s = plan.settings
    more = f"; {s.bits} bits instead of {asked.bits}" if s.bits != asked.bits else ""
    was = f" where {100 * asked.value:.4g}% was asked" if asked.policy == "sparsity" else ""
    return (f"SQNR floor {asked.min_sqnr:g} dB: prunes {100 * s.value:.2f}%{was}{more} "
            f"(SQNR {plan.sqnr_db:.1f} dB)")


class ControlsWidget(QWidget):
    """Edits the compression settings of the session's selected layers.

    Parameters
    ----------
    session
        The session to mirror and edit.
    parent
        Optional Qt parent.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._step_open = False  # a slider drag has started its undo step
        self._build()
        self._connect()
        self._on_session_changed()

    # ----------------------------------------------------------------- building
    def _build(self) -> None:
        self.title = bold_label()
        self.policy_combo = QComboBox()
        for policy, (text, _) in POLICIES.items():
            self.policy_combo.addItem(text, policy)
        self.value_slider = QSlider(Qt.Orientation.Horizontal)
        self.value_spin = QDoubleSpinBox()
        self.value_spin.setKeyboardTracking(False)
        self.value_spin.setMinimumWidth(90)
        self.prune_info = QLabel()
        self.bits_slider = QSlider(Qt.Orientation.Horizontal)
        self.bits_slider.setRange(MIN_BITS, MAX_BITS)
        self.bits_slider.setPageStep(1)
        self.bits_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.bits_spin = QSpinBox()
        self.bits_spin.setRange(MIN_BITS, MAX_BITS)
        self.bits_spin.setKeyboardTracking(False)
        self.clusters_label = QLabel("K ≤ 32")
        self.clusters_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("K ≤ 256  "))
        self.init_combo = QComboBox()
        for init, text in INITS.items():
            self.init_combo.addItem(text, init)
        self.index_spin = QSpinBox()
        self.index_spin.setRange(MIN_INDEX_BITS, MAX_INDEX_BITS)
        self.index_spin.setKeyboardTracking(False)
        self.index_info = QLabel()
        self.huffman_check = QCheckBox("Huffman coding")
        self.exclude_check = QCheckBox("Exclude (store losslessly)")
        self.paper_button = QPushButton("Paper defaults (conv 8 bits, fc 5 bits)")
        self.prune90_button = QPushButton("Paper: prune 90% (needs fine-tuning)")
        self.safe_button = QPushButton("Safe default")  # the tooltip says which floor
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #d03030;")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        elastic(self.title, self.prune_info, self.index_info)  # the panel keeps its width
        self._layout()
        self._set_tooltips()

    def _layout(self) -> None:
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.setVerticalSpacing(4)
        grid.addWidget(self.title, 0, 0, 1, 4)
        grid.addWidget(QLabel("Prune"), 1, 0)
        grid.addWidget(self.policy_combo, 1, 1)
        grid.addWidget(self.value_slider, 1, 2)
        grid.addWidget(self.value_spin, 1, 3)
        grid.addWidget(self.prune_info, 2, 1, 1, 3)
        grid.addWidget(QLabel("Cluster bits"), 3, 0)
        grid.addWidget(self.clusters_label, 3, 1)
        grid.addWidget(self.bits_slider, 3, 2)
        grid.addWidget(self.bits_spin, 3, 3)
        grid.addWidget(QLabel("k-means init"), 4, 0)
        grid.addWidget(self.init_combo, 4, 1)
        grid.addWidget(QLabel("Index bits"), 5, 0)
        grid.addWidget(self.index_spin, 5, 1)
        grid.addWidget(self.index_info, 5, 2, 1, 2)
        checks = QHBoxLayout()
        checks.addWidget(self.huffman_check)
        checks.addSpacing(16)
        checks.addWidget(self.exclude_check)
        checks.addStretch(1)
        grid.addLayout(checks, 6, 1, 1, 3)
        for row, presets in enumerate(((self.paper_button, self.safe_button),
                                       (self.prune90_button,)), start=7):
            buttons = QHBoxLayout()  # two short rows: the panel never widens for them
            for button in presets:
                buttons.addWidget(button)
            buttons.addStretch(1)
            grid.addLayout(buttons, row, 0, 1, 4)
        grid.addWidget(self.error_label, 9, 0, 1, 4)
        grid.setColumnStretch(2, 1)
        grid.setRowStretch(10, 1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

    def _set_tooltips(self) -> None:
        for attrs, tip in TIPS.items():
            for attr in attrs.split():
                getattr(self, attr).setToolTip(tip)

    def _connect(self) -> None:
        self.policy_combo.currentIndexChanged.connect(self._on_policy_changed)
        self.value_slider.valueChanged.connect(self._on_value_slider_changed)
        self.value_slider.sliderPressed.connect(self._on_slider_pressed)
        self.value_slider.sliderReleased.connect(self._on_slider_released)
        self.value_spin.valueChanged.connect(self._on_value_spin_changed)
        self.bits_slider.valueChanged.connect(self._on_bits_slider_changed)
        self.bits_slider.sliderPressed.connect(self._on_slider_pressed)
        self.bits_slider.sliderReleased.connect(self._on_slider_released)
        self.bits_spin.valueChanged.connect(self._on_bits_spin_changed)
        self.init_combo.currentIndexChanged.connect(self._on_init_changed)
        self.index_spin.valueChanged.connect(self._on_index_spin_changed)
        self.huffman_check.toggled.connect(self._on_huffman_toggled)
        self.exclude_check.toggled.connect(self._on_exclude_toggled)
        self.paper_button.clicked.connect(self._on_paper_clicked)
        self.prune90_button.clicked.connect(self._on_prune90_clicked)
        self.safe_button.clicked.connect(self._on_safe_clicked)
        s = self.session
        connect_session(
            self,
            [
                (s.model_changed, self._on_session_changed),
                (s.settings_changed, self._on_session_changed),
                (s.selection_changed, self._on_session_changed),
                (s.estimate_changed, self._on_session_estimate_changed),
            ],
        )

    # --------------------------------------------------------------- public API
    def targets(self) -> tuple[str, ...]:
        """The selected layers a change applies to (the compressible ones)."""
        s = self.session
        return tuple(n for n in s.selection if s.compressible(n))

    @property
    def editors(self) -> tuple[QWidget, ...]:
        """Every control that edits a setting."""
        return (
            self.policy_combo,
            self.value_slider,
            self.value_spin,
            self.bits_slider,
            self.bits_spin,
            self.init_combo,
            self.index_spin,
            self.huffman_check,
            self.exclude_check,
            self.paper_button,
            self.prune90_button,
            self.safe_button,
        )

    # ------------------------------------------------------------ model writes
    def _apply(self, label: str, merge: bool = False, **changes: Any) -> None:
        """Set ``changes`` on the target layers; a SettingsError goes to the red label."""
        names = self.targets()
        if not names:
            return
        before = self.session.settings
        try:
            self.session.set_layers(names, label, merge=merge, **changes)
        except SettingsError as exc:
            self._show_error(str(exc))
            self._on_session_changed()  # back to what the model holds
            return
        self._show_error("")
        if self.session.settings is not before and self._dragging():
            self._step_open = True

    def _dragging(self) -> bool:
        return self.value_slider.isSliderDown() or self.bits_slider.isSliderDown()

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def _label(self, what: str) -> str:
        names = self.targets()
        return f"{what} {names[0]}" if len(names) == 1 else f"{what} {len(names)} layers"

    def _set_value(self, value: float) -> None:
        policy = self.policy_combo.currentData()
        merge = self._dragging() and self._step_open
        self._apply(self._label("prune"), merge, policy=policy, value=value)

    # ---------------------------------------------------------------- handlers
    def _on_policy_changed(self, _index: int) -> None:
        """Switch policy keeping each layer's pruning: its threshold in the new units."""
        policy = self.policy_combo.currentData()
        s = self.session
        new = s.settings
        try:
            for name in self.targets():
                old = s.layer_settings(name)
                if old.policy == policy:
                    continue
                stats = s.stats.get(name)
                threshold = s.threshold(name)
                value = stats.value_of(policy, threshold, old.std_of) if stats else 0.0
                new = new.with_layer(name, policy=policy, value=float(value))
                new.resolve(name, s.info(name).kind)
            s.set_settings(new, self._label("prune policy"))
        except SettingsError as exc:
            self._show_error(str(exc))
            self._on_session_changed()
            return
        self._show_error("")

    def _on_slider_pressed(self) -> None:
        self._step_open = False

    def _on_slider_released(self) -> None:
        self._step_open = False

    def _on_value_slider_changed(self, position: int) -> None:
        step, _, decimals = self._scale()
        value = round(position * step, decimals + 2)
        with signals_blocked(self.value_spin):
            self.value_spin.setValue(value)
        self._set_value(value)

    def _on_value_spin_changed(self, value: float) -> None:
        self._set_value(float(value))

    def _on_bits_slider_changed(self, bits: int) -> None:
        merge = self._dragging() and self._step_open
        self._apply(self._label("bits"), merge, bits=bits)

    def _on_bits_spin_changed(self, bits: int) -> None:
        self._apply(self._label("bits"), bits=bits)

    def _on_init_changed(self, _index: int) -> None:
        self._apply(self._label("k-means init"), init=self.init_combo.currentData())

    def _on_index_spin_changed(self, bits: int) -> None:
        self._apply(self._label("index bits"), index_bits=bits)

    def _on_huffman_toggled(self, on: bool) -> None:
        self._apply(self._label("huffman"), huffman=on)

    def _on_exclude_toggled(self, on: bool) -> None:
        self._apply(self._label("exclude" if on else "include"), excluded=on)

    def _on_paper_clicked(self) -> None:
        try:
            self.session.apply_paper_defaults()
        except SettingsError as exc:
            self._show_error(str(exc))
            return
        self._show_error("")

    def _on_prune90_clicked(self) -> None:
        self._apply(self._label("prune 90%"), policy="sparsity", value=0.9)

    def _on_safe_clicked(self) -> None:
        if self.targets():
            self.session.apply_safe_default(self.targets())

    # ------------------------------------------------------------ model -> view
    def _scale(self) -> tuple[float, float, int]:
        names = self.targets()
        stats = self.session.stats.get(names[0]) if names else None
        return value_scale(self.policy_combo.currentData(), stats)

    def _on_session_changed(self) -> None:
        names, selected = self.targets(), self.session.selection
        with signals_blocked(*self.editors):
            self._show_title(names)
            if names:
                self._show_settings(names[0])
            elif selected:  # only lossless tensors: the first one's own settings, greyed
                self._show_settings(selected[0], editable=False)
            else:  # blank, never the previous layer's values
                self._show_blank()

    def _show_blank(self) -> None:
        """No layer: every editor disabled and empty."""
        for w in self.editors:
            w.setEnabled(False)
        for combo in (self.policy_combo, self.init_combo):
            combo.setCurrentIndex(-1)
        for spin in (self.value_spin, self.bits_spin, self.index_spin):
            spin.setSpecialValueText(" ")  # shown at the minimum
            spin.setValue(spin.minimum())
        for slider in (self.value_slider, self.bits_slider):
            slider.setValue(slider.minimum())
        for check in (self.huffman_check, self.exclude_check):
            check.setChecked(False)
        for label in (self.prune_info, self.index_info, self.clusters_label):
            label.clear()

    def _show_title(self, names: tuple[str, ...]) -> None:
        selected = self.session.selection
        if len(names) > 1:
            text = f"{len(names)} layers selected (showing {names[0]})"
        elif names:
            text = names[0]
        elif selected:
            text = f"{selected[0]}: not compressible (stored losslessly)"
        else:
            text = "No layer selected"
        if len(selected) > len(names) and names:
            text += f"  (+{len(selected) - len(names)} tensors stored losslessly)"
        self.title.setText(text)
        self.title.setToolTip(text)  # the label may be too narrow for all of it

    def _shown_settings(self, name: str) -> LayerSettings:
        """What the controls show of a layer: where a fidelity floor chose its pruning and
        bits, the choice (a drag then starts from what the file will hold)."""
        plan = self.session.current_plan(name)
        if plan is not None and plan.requested is not None:
            return plan.settings
        return self.session.layer_settings(name)

    def _show_settings(self, name: str, editable: bool = True) -> None:
        """Show layer ``name``'s settings (``editable=False``: greyed, a lossless tensor)."""
        s = self._shown_settings(name)
        for spin in (self.value_spin, self.bits_spin, self.index_spin):
            spin.setSpecialValueText("")  # a real value, even at the minimum
        self.policy_combo.setCurrentIndex(self.policy_combo.findData(s.policy))
        step, top, decimals = value_scale(s.policy, self.session.stats.get(name))
        self.value_spin.setDecimals(decimals)
        self.value_spin.setSingleStep(step)
        self.value_spin.setRange(0.0, max(top, s.value))
        self.value_spin.setValue(s.value)
        steps = round(top / step)
        self.value_slider.setRange(0, steps)
        self.value_slider.setPageStep(max(1, steps // 20))
        self.value_slider.setValue(min(steps, round(s.value / step)))
        tip = POLICIES[s.policy][1]
        self.value_slider.setToolTip(tip)
        self.value_spin.setToolTip(tip)
        self.bits_slider.setValue(s.bits)
        self.bits_spin.setValue(s.bits)
        self.init_combo.setCurrentIndex(self.init_combo.findData(s.init))
        self.index_spin.setValue(s.index_bits)
        self.index_info.setText(f"gaps up to {1 << s.index_bits} per entry")
        self.huffman_check.setChecked(s.huffman)
        self.exclude_check.setChecked(s.excluded)
        deep = s.method == "deep"  # another method's options are its own panel's
        for w in self.editors:
            kept = (not s.excluded and deep) or w in (self.exclude_check, self.paper_button)
            w.setEnabled(editable and kept)
        self._show_prune_info(name)

    def _on_session_estimate_changed(self) -> None:
        names = self.targets()
        plan = self.session.current_plan(names[0]) if names else None
        if plan is not None and plan.requested is not None:
            self._on_session_changed()  # a floor's choice is known only now
        elif names:
            self._show_prune_info(names[0])

    def _show_prune_info(self, name: str) -> None:
        s = self.session
        bits, plan = s.layer_settings(name).bits, s.current_plan(name)
        self.clusters_label.setText(k_text(bits, plan))  # the same K as the table's
        self.clusters_label.setToolTip(k_note(bits, plan))
        if s.layer_settings(name).excluded or name not in s.stats:
            self.prune_info.setText("stored losslessly")
            self.prune_info.setToolTip("")  # not the previous layer's floor
            return
        plan = s.current_plan(name)
        self.prune_info.setToolTip("" if plan is None else floor_note(plan))
        stats = s.stats[name]
        t = s.threshold(name)
        if plan is not None and t < 0:  # the mask's "nothing pruned"
            text = f"prunes nothing: all {plan.size:,} weights kept"
        elif plan is not None:
            pruned = 1.0 - plan.survivors / plan.size if plan.size else 0.0
            text = f"prunes |w| ≤ {t:.4g}: {100 * pruned:.2f}% of {plan.size:,} weights"
        else:
            text = f"prunes |w| ≤ ≈{t:.4g}: ≈{100 * stats.sparsity_at(t):.1f}% (estimating…)"
        self.prune_info.setText(text)
