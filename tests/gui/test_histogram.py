"""HistogramWidget (one layer's weights, draggable threshold) and ModelBytesWidget."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt

import numpy as np
import pyqtgraph as pg
import pytest

from inspector.gui.histogram import LOG_FLOOR, HistogramWidget
from inspector.gui.model_bytes import PARTS, ModelBytesWidget, short_name
from inspector.io.model_file import LoadedModel, TensorInfo
from inspector.model.session import Session
from inspector.model.settings import ModelSettings
from inspector.tasks.codec import ModelCodec
from inspector.tasks.load import layer_stats

LAYER = "ip1.weight"


@pytest.fixture
def histogram(qtbot, opened) -> tuple[HistogramWidget, Session, ModelCodec]:
    session, codec = opened
    widget = HistogramWidget(session)
    qtbot.addWidget(widget)
    session.select((LAYER,))
    return widget, session, codec


def settle(session: Session, codec: ModelCodec) -> None:
    session.set_estimate(codec.estimate(session.settings))


def move(line, x: float) -> None:
    """What one mouse move of a drag does: the line moves, then says it was dragged."""
    line.setValue(x)
    line.sigDragged.emit(line)


def drag(line, positions: list[float]) -> None:
    """What a mouse drag of ``line`` emits: moves, then one 'finished'."""
    for x in positions:
        move(line, x)
    line.sigPositionChangeFinished.emit(line)


def test_curve_is_the_layers_histogram_over_the_view(histogram) -> None:
    w, session, _ = histogram
    x, y = w.curve.getOriginalDataset()
    stats = session.stats[LAYER]
    edges, counts = stats.binned(*w.view_range())
    np.testing.assert_array_equal(x, edges)
    np.testing.assert_array_equal(y, counts)
    assert y.sum() + sum(stats.outside(*w.view_range())) == stats.size
    assert 4 <= y.size <= 2 * np.sqrt(stats.size)  # not 512 bins for 12,800 weights


def test_band_and_lines_at_the_exact_threshold(histogram) -> None:
    w, session, _ = histogram
    t = session.estimate.layer(LAYER).plan.mask.threshold
    assert w.band.getRegion() == pytest.approx((-t, t))
    assert [line.value() for line in w.lines] == pytest.approx([-t, t])
    assert w.band.isVisible()


def test_centroids_and_quantized_bars(histogram) -> None:
    w, session, _ = histogram
    plan = session.estimate.layer(LAYER).plan
    assert len(w.centroids.data) == plan.codebook.size
    np.testing.assert_allclose(w.centroids.data["x"], plan.codebook)
    np.testing.assert_allclose(w.quantized.opts["x"], plan.codebook)
    np.testing.assert_allclose(w.quantized.opts["height"], plan.cluster_counts)


def test_title(histogram) -> None:
    w, session, _ = histogram
    plan = session.estimate.layer(LAYER).plan
    kept = 100 * plan.survivors / plan.size
    shape = "64\N{MULTIPLICATION SIGN}200"
    assert w.title.text() == f"{LAYER} — {shape}, kept {kept:.2f}%, K = {plan.codebook.size}"


def test_dragging_a_line_sets_the_value_in_one_undo_step(histogram) -> None:
    w, session, codec = histogram
    stats = session.stats[LAYER]
    pos = w.lines[1]
    move(pos, 0.05)
    assert w.lines[0].value() == pytest.approx(-0.05)  # mirrored at once
    assert w.band.getRegion() == pytest.approx((-0.05, 0.05))
    drag(pos, [0.06, 0.07])
    s = session.layer_settings(LAYER)
    assert s.policy == "sparsity"
    assert s.value == pytest.approx(stats.value_of("sparsity", 0.07))
    assert session.undo_label() == f"prune {LAYER}"
    settle(session, codec)
    t = session.estimate.layer(LAYER).plan.mask.threshold
    assert t == pytest.approx(0.07, abs=2 * (stats.edges[1] - stats.edges[0]))
    session.undo()
    assert session.layer_settings(LAYER).value == 0.9
    assert not session.can_undo


def test_a_mouse_drag_is_one_undo_step(histogram, qtbot, monkeypatch) -> None:
    w, session, _ = histogram
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)  # every move counts
    w.resize(900, 400)
    w.show()
    qtbot.waitExposed(w)
    view, port = w.plot.getPlotItem().getViewBox(), w.plot.viewport()

    def at(x: float) -> QPoint:
        y = sum(view.viewRange()[1]) / 2
        return w.plot.mapFromScene(view.mapViewToScene(QPointF(x, y)))

    start, end = at(w.lines[1].value()), at(0.05)
    qtbot.mouseMove(port, start)
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, 9):
        qtbot.mouseMove(port, start + (end - start) * (i / 8))
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=end)
    t = w.lines[1].value()
    assert t == pytest.approx(0.05, abs=0.002)
    assert w.lines[0].value() == pytest.approx(-t)
    value = session.stats[LAYER].value_of("sparsity", t)
    assert session.layer_settings(LAYER).value == pytest.approx(value)
    session.undo()
    assert session.layer_settings(LAYER).value == 0.9 and not session.can_undo


def test_dragging_the_negative_line_in_std_units(histogram) -> None:
    w, session, _ = histogram
    session.set_layers((LAYER,), "std", policy="std", value=1.0)
    drag(w.lines[0], [-0.03, -0.04])
    assert w.lines[1].value() == pytest.approx(0.04)
    std = session.stats[LAYER].std
    assert session.layer_settings(LAYER).value == pytest.approx(0.04 / std)


def test_model_events_do_not_move_a_dragged_line(histogram) -> None:
    w, session, codec = histogram
    move(w.lines[1], 0.05)  # the drag has begun
    settle(session, codec)
    session.set_layers((LAYER,), "elsewhere", bits=4)
    assert w.lines[1].value() == pytest.approx(0.05)
    assert w.band.getRegion() == pytest.approx((-0.05, 0.05))
    w.lines[1].sigPositionChangeFinished.emit(w.lines[1])
    session.set_layers((LAYER,), "code", value=0.5)  # after the drag the model moves it
    t = session.stats[LAYER].threshold_of("sparsity", 0.5)
    assert w.lines[1].value() == pytest.approx(t)


def test_log_y(histogram) -> None:
    w, session, _ = histogram
    w.set_log_y(True)
    assert w.plot.getPlotItem().ctrl.logYCheck.isChecked()
    _, y = w.curve.getOriginalDataset()
    assert y.min() == LOG_FLOOR  # empty bins drawn at the floor, not log(0)
    np.testing.assert_array_equal(y[w.shown_counts > 0], y[y > LOG_FLOOR])
    plan = session.estimate.layer(LAYER).plan
    assert len(w.centroids.data) == plan.codebook.size
    np.testing.assert_allclose(
        w.quantized.opts["height"], np.log10(plan.cluster_counts) - np.log10(LOG_FLOOR)
    )
    w.set_log_y(False)
    np.testing.assert_array_equal(w.curve.getOriginalDataset()[1], w.shown_counts)


def test_excluded_and_lossless_layers(histogram) -> None:
    w, session, codec = histogram
    session.set_layers((LAYER,), "exclude", excluded=True)
    settle(session, codec)
    assert not w.band.isVisible() and not any(line.isVisible() for line in w.lines)
    assert len(w.centroids.data) == 0
    assert "stored losslessly" in w.title.text()
    session.select(("conv1.bias",))
    assert "not compressible" in w.title.text()
    x, _ = w.curve.getOriginalDataset()
    assert x is None or len(x) == 0


def test_histogram_renders(histogram, tmp_path) -> None:
    w, _, _ = histogram
    w.resize(900, 400)
    w.show()
    assert w.grab().save(str(tmp_path / "histogram.png"))


# ------------------------------------------------------------------ model bytes
@pytest.fixture
def model_bytes(qtbot, opened) -> tuple[ModelBytesWidget, Session, ModelCodec]:
    session, codec = opened
    widget = ModelBytesWidget(session)
    qtbot.addWidget(widget)
    widget.show()
    return widget, session, codec


def test_bars_sum_to_the_estimate(model_bytes) -> None:
    w, session, codec = model_bytes
    for _ in range(2):
        est = session.estimate
        assert w.names == tuple(r.info.name for r in est.layers)
        np.testing.assert_array_equal(w.before, [r.original_nbytes for r in est.layers])
        np.testing.assert_array_equal(w.after(), [r.payload_nbytes for r in est.layers])
        assert int(w.after().sum()) + est.container_nbytes == est.file_nbytes
        raw = [r.payload_nbytes if r.plan is None else 0 for r in est.layers]
        np.testing.assert_array_equal(w.parts["raw"], raw)
        session.set_layers(("ip1.weight",), "x", bits=3, huffman=False)
        settle(session, codec)


def test_drawn_bars_are_the_parts(model_bytes) -> None:
    w, _, _ = model_bytes
    w.set_log_y(False)
    np.testing.assert_array_equal(w.before_bars.opts["height"], w.before)
    bottom = np.zeros(len(w.names))
    for part in PARTS:
        np.testing.assert_array_equal(w.bars[part].opts["y0"], bottom)
        np.testing.assert_array_equal(w.bars[part].opts["height"], w.parts[part])
        bottom = bottom + w.parts[part]
    np.testing.assert_array_equal(bottom, w.after())
    w.set_log_y(True)
    top = w.bars["raw"].opts["y0"] + w.bars["raw"].opts["height"]
    np.testing.assert_allclose(top, np.log10(w.after()))


def test_hidden_view_draws_when_shown(model_bytes) -> None:
    w, session, codec = model_bytes
    w.hide()
    before = w.bars["weights"].opts["height"].copy()
    session.set_layers(("ip1.weight",), "x", bits=2)
    settle(session, codec)
    assert w._stale  # a hidden tab does not redraw during a drag
    np.testing.assert_array_equal(w.bars["weights"].opts["height"], before)
    w.show()
    assert not w._stale
    assert not np.array_equal(w.bars["weights"].opts["height"], before)


def test_no_estimate_and_short_names(model_bytes) -> None:
    w, session, _ = model_bytes
    session.set_estimate(None)
    assert w.names == () and w.title.text() == "No estimate yet"
    assert short_name("features.0.weight") == "features.0"
    assert short_name("encoder.layers.11.attn.q_proj.weight") == "e.l.11.a.q_proj"
    assert short_name("encoder.layers.3.self_attn.q_proj.weight") == "e.l.3.s.q_proj"
    assert short_name("a_very_long_module_name.weight") == "a_very_…ule_name"


def test_model_bytes_renders(model_bytes, tmp_path) -> None:
    w, _, _ = model_bytes
    w.resize(900, 400)
    w.show()
    assert w.grab().save(str(tmp_path / "model_bytes.png"))


# ------------------------------------------------------ outliers, zoom, fine moves
def outlier_session() -> tuple[Session, ModelCodec]:
    """One fc layer: 10^5 normal weights (std 0.1) and 12 outliers at about 100x."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.1, 100_000).astype(np.float32)
    w[rng.choice(w.size, 12, replace=False)] = rng.choice([-1, 1], 12) * rng.uniform(9, 11, 12)
    arrays = {"fc.weight": w.reshape(400, 250)}
    infos = (TensorInfo("fc.weight", "fc", (400, 250), "float32"),)
    model = LoadedModel("outliers.pt", "pytorch", arrays, infos, {})
    codec = ModelCodec(model)
    session = Session()
    # The paper's 90% puts the threshold in the tail, where a drag or a nudge is judged.
    paper = ModelSettings().with_defaults(policy="sparsity", value=0.9, min_sqnr=None)
    session.open(model, {"fc.weight": layer_stats("fc.weight", codec.codec("fc.weight"))}, paper)
    session.set_estimate(codec.estimate(session.settings))
    return session, codec


@pytest.fixture
def outliers(qtbot) -> tuple[HistogramWidget, Session, ModelCodec]:
    session, codec = outlier_session()
    widget = HistogramWidget(session)
    qtbot.addWidget(widget)
    widget.resize(900, 400)
    widget.show()
    qtbot.waitExposed(widget)
    return widget, session, codec


def test_the_default_view_leaves_out_the_outliers_and_counts_them(outliers) -> None:
    w, session, _ = outliers
    low, high = w.view_range()
    assert -0.6 < low < -0.3 and 0.3 < high < 0.6  # about 3.3 std, not +-11
    assert low == pytest.approx(-high, rel=0.01)  # symmetric about 0
    below, above = session.stats["fc.weight"].outside(low, high)
    assert 12 <= below + above < 200
    texts = w.marks.texts()
    assert f"◀ {below:,} weights beyond" in texts and f"{above:,} weights beyond ▶" in texts
    _, y = w.curve.getOriginalDataset()
    assert y.size >= 100  # the 10^5 weights in view get their own bins


def test_zooming_in_re_bins_the_view(outliers, qtbot) -> None:
    w, session, _ = outliers
    stats = session.stats["fc.weight"]
    w.plot.getPlotItem().setXRange(0.0, 0.05, padding=0)
    qtbot.waitUntil(lambda: w.curve.getOriginalDataset()[0][0] >= -0.001, timeout=2000)
    x, y = w.curve.getOriginalDataset()
    assert x[0] == pytest.approx(0.0, abs=1e-3) and x[-1] == pytest.approx(0.05, abs=1e-3)
    assert y.size >= 50  # finer bins than the whole view had
    assert abs(int(y.sum()) - round(0.199 * stats.size)) < 0.02 * stats.size


def test_arrow_keys_nudge_the_threshold_by_a_small_step(outliers, qtbot) -> None:
    w, session, _ = outliers
    low, high = w.view_range()
    t0 = w.threshold
    w.plot.setFocus()
    qtbot.keyClick(w.plot, Qt.Key.Key_Right)
    step = w.threshold - t0
    assert step == pytest.approx((high - low) / 400, rel=0.01)
    assert session.undo_label() == "prune fc.weight"
    qtbot.keyClick(w.plot, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert w.threshold == pytest.approx(t0 + 0.9 * step, rel=1e-3)
    stats = session.stats["fc.weight"]
    assert session.layer_settings("fc.weight").value == pytest.approx(
        stats.value_of("sparsity", w.threshold)
    )
    assert abs(stats.sparsity_at(w.threshold) - stats.sparsity_at(t0)) < 0.005


class FakeDrag:
    """A pyqtgraph MouseDragEvent at view x ``x`` (what the line's mouseDragEvent reads)."""

    def __init__(self, line, x: float, down: float, start=False, finish=False, shift=False):
        self.x, self.down, self.start, self.finish, self.line = x, down, start, finish, line
        self.mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier(0)

    def button(self):
        return Qt.MouseButton.LeftButton

    def modifiers(self):
        return self.mods

    def pos(self):
        return self.line.mapFromParent(QPointF(self.x, 0))

    def buttonDownPos(self):
        return self.line.mapFromParent(QPointF(self.down, 0))

    def isStart(self):
        return self.start

    def isFinish(self):
        return self.finish

    def accept(self):
        pass


def test_shift_drag_moves_the_line_at_a_tenth_of_the_speed(outliers) -> None:
    w, session, _ = outliers
    line = w.lines[1]
    t0 = line.value()
    line.mouseDragEvent(FakeDrag(line, t0, t0, start=True))
    line.mouseDragEvent(FakeDrag(line, t0 + 0.1, t0))
    assert line.value() == pytest.approx(t0 + 0.1)
    line.mouseDragEvent(FakeDrag(line, t0 + 0.2, t0, shift=True))  # Shift from here on
    assert line.value() == pytest.approx(t0 + 0.11)
    line.mouseDragEvent(FakeDrag(line, t0 + 0.3, t0, finish=True, shift=True))
    assert line.value() == pytest.approx(t0 + 0.12)
    assert w.lines[0].value() == pytest.approx(-(t0 + 0.12))
    stats = session.stats["fc.weight"]
    assert session.layer_settings("fc.weight").value == pytest.approx(
        stats.value_of("sparsity", t0 + 0.12)
    )
    session.undo()
    assert not session.can_undo  # one drag, one step


def test_the_legend_is_off_the_plot(histogram) -> None:
    w, _, _ = histogram
    assert not w.plot.getPlotItem().legend  # no legend item drawn over the bars
    assert "original" in w.legend.text() and "centroids" in w.legend.text()


def test_small_layers_get_few_bins_and_stats_are_shown(histogram) -> None:
    w, session, _ = histogram
    session.select(("conv1.weight",))  # 200 weights
    _, y = w.curve.getOriginalDataset()
    assert 10 <= y.size <= 20
    stats = session.stats["conv1.weight"]
    text = w.stats_label.text()
    assert f"min {stats.lo:.4g}" in text and f"max {stats.hi:.4g}" in text
    assert "distinct 200" in text and "zeros 0 (0.00%)" in text


def test_quantized_bars_are_one_and_a_half_bins_wide_at_any_zoom(histogram, qtbot) -> None:
    w, session, _ = histogram
    for name in ("conv1.weight", LAYER):  # a layer with wide bins, then one with narrow
        session.select((name,))
        assert w.quantized.opts["width"] == pytest.approx(1.5 * w.bin_width)
    w.plot.getPlotItem().setXRange(0.0, 0.02, padding=0)
    qtbot.waitUntil(lambda: w.view_range()[1] < 0.03 and w.bin_width < 0.001, timeout=2000)
    assert w.quantized.opts["width"] == pytest.approx(1.5 * w.bin_width)


def test_zoomed_into_the_band_the_y_axis_fits_the_bins_in_view(outliers, qtbot) -> None:
    w, _, _ = outliers
    t = w.threshold
    w.plot.getPlotItem().setXRange(-t / 2, t / 2, padding=0)  # inside the band: no centroid
    qtbot.waitUntil(lambda: w.view_range()[1] < t, timeout=2000)
    qtbot.wait(100)
    top = w.plot.getPlotItem().getViewBox().viewRange()[1][1]
    assert top < 1.2 * w.shown_counts.max()  # not the height of the quantized bars


def test_the_outlier_counts_stay_in_the_top_corners(outliers, qtbot) -> None:
    w, session, codec = outliers
    view = w.view_range()
    for change in (lambda: w.set_log_y(True), lambda: w.set_log_y(False),
                   lambda: session.set_layers(("fc.weight",), "x", bits=2)):
        change()
        settle(session, codec)
        (low, high), (_, top) = w.plot.getPlotItem().getViewBox().viewRange()
        visible = [m for m in w.marks.labels if m.isVisible()]
        assert visible
        for mark in visible:
            assert mark.pos().y() == pytest.approx(top)
            assert mark.pos().x() in (pytest.approx(low), pytest.approx(high))
        assert w.view_range() == pytest.approx(view)  # a log axis keeps the zoom


def test_a_real_shift_drag_with_the_mouse_is_ten_times_finer(outliers, qtbot, monkeypatch):
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    w, session, _ = outliers
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)  # every move counts
    view, port = w.plot.getPlotItem().getViewBox(), w.plot.viewport()

    def at(x: float) -> QPointF:
        y = sum(view.viewRange()[1]) / 2
        return QPointF(w.plot.mapFromScene(view.mapViewToScene(QPointF(x, y))))

    def send(kind, x: float, buttons, shift: bool) -> None:
        mods = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
        pos = at(x)
        event = QMouseEvent(kind, pos, port.mapToGlobal(pos), Qt.MouseButton.LeftButton,
                            buttons, mods)
        QApplication.sendEvent(port, event)

    t0 = w.lines[1].value()
    high, left = w.view_range()[1], Qt.MouseButton.LeftButton
    move = 0.2 * (high - t0)  # the cursor moves this far, in a few steps
    send(QMouseEvent.Type.MouseButtonPress, t0, left, True)
    for i in range(1, 6):
        send(QMouseEvent.Type.MouseMove, t0 + move * i / 5, left, True)
    send(QMouseEvent.Type.MouseButtonRelease, t0 + move, Qt.MouseButton.NoButton, True)
    assert w.lines[1].value() == pytest.approx(t0 + move / 10, rel=0.02)
    assert session.layer_settings("fc.weight").value == pytest.approx(
        session.stats["fc.weight"].value_of("sparsity", w.lines[1].value())
    )


def test_a_layer_with_nothing_pruned_shows_no_band(qtbot) -> None:
    """Nothing pruned is a negative threshold inside the mask: drawn as a band of |w| <= 1
    around zero, and "prunes |w| <= -1" in the controls, until this was fixed."""
    from inspector.gui.controls import ControlsWidget

    session, codec = outlier_session()
    session.set_settings(ModelSettings().with_defaults(policy="sparsity", value=0.0,
                                                       min_sqnr=None))
    session.set_estimate(codec.estimate(session.settings))
    assert session.threshold("fc.weight") < 0
    widget, controls = HistogramWidget(session), ControlsWidget(session)
    qtbot.addWidget(widget)
    qtbot.addWidget(controls)
    session.select(("fc.weight",))
    assert widget.band.getRegion() == (0.0, 0.0)
    assert [line.value() for line in widget.lines] == [0.0, 0.0]
    assert controls.prune_info.text().startswith("prunes nothing")


def test_a_layer_of_another_method_shows_no_deep_band(histogram) -> None:
    """Deep's threshold lines and codebook belong to deep: for a uniform layer the panel draws
    neither and its title says what the method made (it showed deep's band, "estimating")."""
    w, session, codec = histogram
    session.set_method((LAYER,), "uniform", "uniform")
    assert not w.band.isVisible() and not any(line.isVisible() for line in w.lines)
    assert "method uniform (estimating" in w.title.text()
    settle(session, codec)
    layer = session.estimate.layer(LAYER)
    assert layer.coded is not None
    assert f"method uniform: {layer.coded.payload_nbytes:,} bytes" in w.title.text()
    assert len(w.centroids.data) == 0 and "kept" not in w.title.text()
    session.undo()
    settle(session, codec)
    assert w.band.isVisible() and "kept" in w.title.text()
