"""The Methods tab: curves computed in a worker, one per method with exact sizes; a click
applies exactly that recipe to exactly that layer (one undo step); a layer change mid-sweep
drops the stale sweep."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import Qt

import numpy as np
import pytest

from inspector.core.layer import LayerCodec
from inspector.core.stages import registry
from inspector.gui.accuracy import AccuracyController
from inspector.gui.methods_controller import MethodsController
from inspector.gui.methods_view import MethodsViewWidget
from inspector.tasks import methods_curve
from inspector.tasks.codec import ModelCodec
from inspector.tasks.methods_curve import layer_settings


@pytest.fixture
def tab(qtbot, opened):
    session, _ = opened
    view = MethodsViewWidget()
    qtbot.addWidget(view)
    view.resize(900, 420)
    control = MethodsController(session, view, AccuracyController(session))
    view.show()
    yield view, control, session
    control.shutdown()


def wait_curves(qtbot, view, layer: str) -> None:
    qtbot.waitUntil(lambda: view.curves is not None and view.curves.layer == layer
                    and not view.progress.isVisible(), timeout=60_000)


def test_the_curves_come_from_a_worker_one_per_method_with_exact_sizes(
        qtbot, tab, monkeypatch) -> None:
    view, control, session = tab
    threads: set[str] = set()
    plan_point = methods_curve.plan_point

    def recorded(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return plan_point(*args, **kwargs)

    monkeypatch.setattr(methods_curve, "plan_point", recorded)
    name = session.selection[0]
    control.request()
    wait_curves(qtbot, view, name)
    assert threads == {"inspector-methods"}  # never the GUI thread
    registry.method("deep")
    assert {m for m, _ in view.curves.curves} == set(registry.METHODS)
    assert set(view.scatters) == set(registry.METHODS)
    legend = {label.text for _, label in view.legend.items}
    assert legend == set(registry.METHODS) | {"current"}
    weights = np.asarray(session.model.tensors[name])
    flat = np.ascontiguousarray(weights, np.float32).reshape(-1)
    base = session.layer_settings(name)
    for method, points in view.curves.curves:
        assert len(view.scatters[method].points()) == len(points)
        for p in points:
            s = layer_settings(p.recipe, base)
            if method == "deep":
                expected = LayerCodec(weights).plan(s).payload_nbytes
            else:
                lm = registry.method(method).bind(flat, weights.shape)
                expected = lm.plan(s.options).payload_nbytes
            assert p.payload_nbytes == expected, p.recipe.label
    knobs = {m: len(ps) for m, ps in view.curves.curves}
    assert knobs["deep"] > 1 and knobs["uniform"] > 1 and knobs["int8"] == 1


def click(qtbot, view, scatter, index: int) -> None:
    box = scatter.getViewBox()
    spot = scatter.points()[index]
    # The items' transforms follow the view box's range when it next paints: paint first.
    view.plot.viewport().repaint()
    qtbot.wait(20)
    at = view.plot.mapFromScene(box.mapViewToScene(spot.pos()))
    # pyqtgraph's scene takes a click from a press and a later release at a hovered spot
    qtbot.mouseMove(view.plot.viewport(), at)
    qtbot.mousePress(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.mouseRelease(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=at, delay=50)


def test_a_click_applies_that_recipe_to_that_layer_alone_and_undo_restores(qtbot, tab) -> None:
    view, control, session = tab
    name = session.selection[0]
    control.request()
    wait_curves(qtbot, view, name)
    before = session.settings
    others = {i.name: session.layer_settings(i.name) for i in session.infos
              if i.name != name and session.compressible(i.name)}
    # view updates (a redraw, a new selection and back) never write the session
    view.show_curves(view.curves)
    assert session.settings is before and not session.can_undo
    scatter = view.scatters["uniform"]
    index = 4
    recipe = scatter.points()[index].data()
    point = view.point_of(recipe)
    click(qtbot, view, scatter, index)
    assert session.can_undo and session.undo_label() == f"{recipe.label} for {name}"
    s = session.layer_settings(name)
    assert s.method == "uniform" and s.options["rel_step"] == recipe.at and s.min_sqnr is None
    for other, was in others.items():
        assert session.layer_settings(other) == was
    est = ModelCodec(session.model).layer(session.info(name), session.settings)
    assert est.record.payload_nbytes == point.payload_nbytes  # the estimate is the point's
    qtbot.waitUntil(lambda: view.curves.current.recipe.method == "uniform")  # the star follows
    assert view.curves.current.payload_nbytes == point.payload_nbytes
    session.undo()
    assert session.settings == before


def test_a_layer_change_mid_sweep_drops_the_stale_sweep(qtbot, tab, monkeypatch) -> None:
    view, control, session = tab
    plan_point = methods_curve.plan_point
    planned: list[str] = []

    def slow(codec, name, *args, **kwargs):
        planned.append(name)
        time.sleep(0.02)
        return plan_point(codec, name, *args, **kwargs)

    monkeypatch.setattr(methods_curve, "plan_point", slow)
    shown: list[str] = []
    show = view.show_curves
    monkeypatch.setattr(view, "show_curves",
                        lambda c, note="": (shown.append(c.layer) if c else None, show(c, note)))
    first, second = "conv1.weight", "ip2.weight"
    session.select((first,))
    control.request()
    qtbot.waitUntil(lambda: first in planned, timeout=10_000)
    session.select((second,))
    wait_curves(qtbot, view, second)
    assert first not in shown
    assert planned.count(first) < len(methods_curve.recipes(session.layer_settings(first))) + 1
    qtbot.wait(100)
    assert view.curves.layer == second
