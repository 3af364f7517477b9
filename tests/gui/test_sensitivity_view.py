"""SensitivityWidget: its axes with and without a sweep, a sweep drawn as it arrives, the
time left in the progress, and a fine-tuned model that does not inherit the old sweep."""

from __future__ import annotations

import pytest

from inspector.core.settings import MAX_BITS, MIN_BITS
from inspector.gui.sensitivity_view import EMPTY_TEXT, SensitivityWidget
from inspector.gui.tuning import TuningController
from inspector.gui.util import eta_text
from inspector.model.sensitivity import LayerSensitivity, Sensitivity, SweepPoint
from inspector.tasks.sensitivity import SweepProgress


def sweep(*names: str) -> Sensitivity:
    layers = tuple(
        LayerSensitivity(
            name, "fc", 100,
            tuple(SweepPoint(f, 0.97 - 0.2 * f, 1.0 - f / 2) for f in (0.0, 0.5, 0.9)),
            tuple(SweepPoint(b, 0.9 + b / 100, 0.95) for b in (2, 4, 8)),
        )
        for name in names
    )
    return Sensitivity(0.97, 500, layers)


@pytest.fixture
def view(qtbot, opened) -> tuple[SensitivityWidget, object]:
    session, _ = opened
    widget = SensitivityWidget(session)
    qtbot.addWidget(widget)
    widget.resize(900, 400)
    widget.show()
    return widget, session


def x_range(plot) -> list[float]:
    return plot.getPlotItem().getViewBox().viewRange()[0]


def test_the_empty_tab_has_the_axes_of_a_sweep(view) -> None:
    w, _ = view
    assert w.title.text() == EMPTY_TEXT
    low, high = x_range(w.prune_plot)
    assert low <= 0.0 and 1.0 <= high < 1.1  # fraction pruned
    low, high = x_range(w.bits_plot)
    assert low <= MIN_BITS and MAX_BITS <= high < MAX_BITS + 0.5  # cluster bits, not 0-1
    for plot in (w.prune_plot, w.bits_plot):
        low, high = plot.getPlotItem().getViewBox().viewRange()[1]
        assert low <= 0.0 and 100.0 <= high < 105.0  # percent, not 0-1


def test_a_running_sweep_is_drawn_layer_by_layer_without_writing_the_session(view) -> None:
    w, session = view
    settings = session.settings
    w.show_partial(sweep("conv1.weight"))
    assert len(w.prune_plot.getPlotItem().listDataItems()) == 1
    assert w.title.text().startswith("Measuring: 1 layer so far.")
    w.show_partial(sweep("conv1.weight", "ip1.weight"))
    assert len(w.bits_plot.getPlotItem().listDataItems()) == 2
    assert session.settings is settings and not session.can_undo
    w.end_partial()
    assert w.title.text() == EMPTY_TEXT
    assert not w.prune_plot.getPlotItem().listDataItems()


def test_eta_text() -> None:
    assert eta_text(0, 10, 3.0) == ""  # no rate yet
    assert eta_text(10, 10, 3.0) == ""
    assert eta_text(4, 40, 6.0) == "about 54 s left"
    assert eta_text(10, 110, 60.0) == "about 10 min left"


def test_progress_says_the_time_left_and_forwards_partial_sweeps(qtbot, opened) -> None:
    session, _ = opened
    tuning = TuningController(session, accuracy=None)  # type: ignore[arg-type]
    labels: list[str] = []
    partials: list[Sensitivity] = []
    tuning.progress.connect(lambda _d, _t, label: labels.append(label))
    tuning.partial_sweep.connect(partials.append)
    tuning._clock.start()
    qtbot.wait(30)
    gen = tuning._worker.generation
    tuning._on_worker_progress(gen, SweepProgress(1, 10, "ip1.weight: prune 10%"))
    tuning._on_worker_progress(gen, SweepProgress(2, 10, "ip2.weight: 4 bits", sweep("a")))
    assert labels[0].startswith("ip1.weight: prune 10% (about ") and labels[0].endswith(" left)")
    assert partials == [sweep("a")]
    tuning.shutdown()


def test_a_fine_tuned_model_does_not_carry_the_old_sweep(qtbot, opened) -> None:
    session, _ = opened
    tuning = TuningController(session, accuracy=None)  # type: ignore[arg-type]
    opened_with: list[object] = []
    tuning.fine_tuned.connect(lambda _path, settings: opened_with.append(settings))
    old = session.settings.with_sensitivity(sweep("ip1.weight"))
    tuning._on_worker_finished(tuning._worker.generation, ("finetune", ("t.pt", old)))
    assert opened_with[0].sensitivity is None
    assert opened_with[0].layers == old.layers  # the rest of the settings stay
    tuning.shutdown()


def test_knob_curves_get_their_own_plot_only_when_swept(view) -> None:
    widget, session = view
    session.set_settings(session.settings.with_sensitivity(sweep("ip1.weight")), "sweep")
    assert widget.knob_plot.isHidden()
    knob = LayerSensitivity("ip2.weight", "fc", 640, (), (),
                            tuple(SweepPoint(2.0**-k, 0.97 - 0.05 * (8 - k), 1.0)
                                  for k in (8, 4, 1)), "rel_step")
    mixed = Sensitivity(0.97, 500, (*sweep("ip1.weight").layers, knob))
    session.set_settings(session.settings.with_sensitivity(mixed), "sweep")
    assert not widget.knob_plot.isHidden()
    curves = [i for i in widget.knob_plot.getPlotItem().listDataItems()]
    assert len(curves) == 1
    assert list(curves[0].getData()[0]) == [-8.0, -4.0, -1.0]
