"""The app's single source of truth: model, settings (with undo), selection, latest results.

Plain Python with psygnal events, no Qt. Only the main thread changes a session; workers
return results that the main thread stores here (see ``inspector.gui.controller``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from psygnal import Signal

from inspector.core.layer import LayerPlan
from inspector.core.settings import FIELDS, LayerSettings, method_options
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.accuracy import Accuracy
from inspector.model.estimate import ModelEstimate
from inspector.model.resolved import ResolvedSettings
from inspector.model.settings import (
    COMPRESSIBLE_KINDS,
    PAPER_KINDS,
    SAFE_MIN_SQNR,
    ModelSettings,
)
from inspector.model.stats import LayerStats

UNDO_LIMIT = 200
SAFE_DROPS = frozenset({"policy", "value", "bits", "min_sqnr", "raise_bits"})


class Session:
    """One open model and everything the user chose for it."""

    model_changed = Signal()
    settings_changed = Signal()
    selection_changed = Signal()
    estimate_changed = Signal()
    undo_changed = Signal()
    accuracy_changed = Signal()

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.stats: dict[str, LayerStats] = {}
        self.settings = ModelSettings()
        self.selection: tuple[str, ...] = ()
        self.estimate: ModelEstimate | None = None
        self.settings_path: str | None = None
        #: Measured accuracy of the settings it was asked for (None: not measured).
        self.accuracy: Accuracy | None = None
        self.accuracy_settings: ModelSettings | None = None
        #: Where the accuracy comes from ("1,000 examples of mnist_test.h5"), or why there is none.
        self.accuracy_note = ""
        self._resolved = ResolvedSettings()
        self._infos: dict[str, TensorInfo] = {}
        self._undo: list[tuple[str, ModelSettings]] = []
        self._redo: list[tuple[str, ModelSettings]] = []

    # ------------------------------------------------------------------ model
    def open(
        self,
        model: LoadedModel,
        stats: dict[str, LayerStats],
        settings: ModelSettings | None = None,
    ) -> None:
        """Show ``model``; the first compressible layer is selected."""
        self.model = model
        self._infos = {i.name: i for i in model.infos}
        self._resolved.clear()
        self.stats = stats
        self.settings = settings or ModelSettings()
        self.estimate = None
        self.accuracy, self.accuracy_settings, self.accuracy_note = None, None, ""
        self._undo.clear()
        self._redo.clear()
        first = next((i.name for i in model.infos if self.is_compressible(i)), None)
        self.selection = (first,) if first else ()
        self.model_changed.emit()
        self.settings_changed.emit()
        self.selection_changed.emit()
        self.estimate_changed.emit()
        self.undo_changed.emit()
        self.accuracy_changed.emit()

    @property
    def infos(self) -> tuple[TensorInfo, ...]:
        return self.model.infos if self.model else ()

    def info(self, name: str) -> TensorInfo:
        if len(self._infos) != len(self.infos):
            self._infos = {i.name: i for i in self.infos}
        return self._infos[name]

    @staticmethod
    def is_compressible(info: TensorInfo) -> bool:
        """Whether a layer's kind can be compressed at all (conv, fc, embedding weights)."""
        return info.kind in COMPRESSIBLE_KINDS

    def compressible(self, name: str) -> bool:
        """Whether layer ``name`` is one the user tunes: its kind (the file's, or the user's
        ``"kind"``) is compressible, or the user included it, and its values allow it."""
        try:
            info = self.info(name)
        except KeyError:  # a name from another model
            return False
        if not info.lossy_ok:
            return False
        kind = self.settings.kind_of(name, info.kind)
        return kind in COMPRESSIBLE_KINDS or not self.layer_settings(name).excluded

    # --------------------------------------------------------------- settings
    def layer_settings(self, name: str) -> LayerSettings:
        """The resolved settings of layer ``name`` (memoised per layer: ``ResolvedSettings``)."""
        return self._resolved.get(self.settings, name, self.info(name).kind)

    def set_settings(
        self, settings: ModelSettings, label: str = "change settings", merge: bool = False
    ) -> None:
        """Replace the settings (undoable).

        ``merge``: fold into the previous undo step if it has the same label (a slider drag is
        one step, not one per pixel).
        """
        if settings == self.settings:
            return
        if not (merge and self._undo and self._undo[-1][0] == label and not self._redo):
            self._undo.append((label, self.settings))
            del self._undo[:-UNDO_LIMIT]
        self._redo.clear()
        self.settings = settings
        self.settings_changed.emit()
        self.undo_changed.emit()

    def set_layers(
        self, names: tuple[str, ...] | list[str], label: str, merge: bool = False, **changes: Any
    ) -> None:
        """Apply ``changes`` (LayerSettings fields) to each layer in ``names`` (undoable).

        Changes that would make a layer's settings invalid (e.g. a sparsity above 1 after a
        switch of policy) raise SettingsError and change nothing.
        """
        # One new settings object for all the names: one per name re-validated every
        # override each time (quadratic in the layers selected).
        layers = dict(self.settings.layers)
        for name in names:
            layers[name] = {**layers.get(name, {}), **changes}
        new = replace(self.settings, layers=layers)
        for name in names:
            new.resolve(name, self.info(name).kind)  # validates
        self.set_settings(new, label, merge)

    def set_method(
        self, names: tuple[str, ...] | list[str], method: str, label: str,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Give each layer in ``names`` the registered ``method`` (undoable), dropping the
        options its own entry held for another method (they would not be valid for this one);
        ``options`` (entry keys: the method's options, settings fields) are set in the same
        step.
        """
        declared = {o.name for o in method_options(method)}
        layers = dict(self.settings.layers)
        for name in names:
            entry = layers.get(name, {})
            kept = {k: v for k, v in entry.items() if k in FIELDS or k == "kind" or k in declared}
            layers[name] = {**kept, **(options or {}), "method": method}
        new = replace(self.settings, layers=layers)
        for name in names:
            new.resolve(name, self.info(name).kind)  # validates
        self.set_settings(new, label)

    def replace_layer(self, name: str, settings: LayerSettings, label: str) -> None:
        """Set every field of layer ``name`` (undoable)."""
        self.set_layers((name,), label, **settings.to_json())

    def apply_paper_defaults(self) -> None:
        """Deep Compression's bits (conv 8, fc 5) for every layer, keeping prune settings."""
        kinds = {**self.settings.kinds, **PAPER_KINDS}
        layers = {
            n: {k: v for k, v in d.items() if k not in ("bits", "index_bits")}
            for n, d in self.settings.layers.items()
        }
        self.set_settings(replace(self.settings, kinds=kinds, layers=layers), "paper defaults")

    def apply_safe_default(self, names: tuple[str, ...] | list[str]) -> None:
        """The safe default for layers ``names`` (undoable): their own pruning and bits give
        way to the fidelity floor, which prunes (and adds bits) only as far as it allows."""
        layers = dict(self.settings.layers)
        for name in names:
            own = {k: v for k, v in layers.get(name, {}).items() if k not in SAFE_DROPS}
            layers[name] = {**own, "min_sqnr": SAFE_MIN_SQNR}
        what = names[0] if len(names) == 1 else f"{len(names)} layers"
        self.set_settings(replace(self.settings, layers=layers), f"safe default {what}")

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo_label(self) -> str:
        return self._undo[-1][0] if self._undo else ""

    def redo_label(self) -> str:
        return self._redo[-1][0] if self._redo else ""

    def undo(self) -> None:
        if self._undo:
            label, previous = self._undo.pop()
            self._redo.append((label, self.settings))
            self.settings = previous
            self.settings_changed.emit()
            self.undo_changed.emit()

    def redo(self) -> None:
        if self._redo:
            label, following = self._redo.pop()
            self._undo.append((label, self.settings))
            self.settings = following
            self.settings_changed.emit()
            self.undo_changed.emit()

    # -------------------------------------------------------- selection, results
    def select(self, names: tuple[str, ...] | list[str]) -> None:
        names = tuple(names)
        if names != self.selection:
            self.selection = names
            self.selection_changed.emit()

    def set_estimate(self, estimate: ModelEstimate | None) -> None:
        self.estimate = estimate
        self.estimate_changed.emit()

    def set_accuracy(
        self, accuracy: Accuracy | None, settings: ModelSettings | None, note: str
    ) -> None:
        """Store a measured accuracy of ``settings`` (or, with None, why there is none)."""
        self.accuracy, self.accuracy_settings, self.accuracy_note = accuracy, settings, note
        self.accuracy_changed.emit()

    @property
    def accuracy_is_current(self) -> bool:
        """Whether the stored accuracy was measured with the settings now in force."""
        return self.accuracy is not None and self.accuracy_settings == self.settings

    def current_plan(self, name: str) -> LayerPlan | None:
        """The estimate's plan of layer ``name``, if made with the layer's current settings.

        Returns
        -------
        LayerPlan or None
            None when there is no estimate yet, the layer is stored losslessly, or the
            estimate is stale (the settings changed since it was requested).
        """
        layer = self.estimate.layer(name) if self.estimate else None
        if layer is None or layer.plan is None:
            return None
        return layer.plan if layer.plan.asked == self.layer_settings(name) else None

    def threshold(self, name: str) -> float:
        """The magnitude threshold layer ``name`` prunes up to.

        Exact (the plan's) when the estimate is current, else found from the layer's
        histogram; with neither, the absolute-threshold value or 0.
        """
        plan = self.current_plan(name)
        if plan is not None:
            return float(plan.mask.threshold)
        s = self.layer_settings(name)
        stats = self.stats.get(name)
        if stats is None:
            return s.value if s.policy == "threshold" else 0.0
        return stats.threshold_of(s.policy, s.value, s.std_of)
