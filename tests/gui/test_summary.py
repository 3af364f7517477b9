"""Summary panel: exact sizes and ratio from the estimate, busy state, empty state."""

from __future__ import annotations

import pytest

from inspector.gui.summary import DASH, SummaryWidget
from inspector.gui.util import human_bytes
from inspector.model.session import Session


@pytest.fixture
def summary(qtbot, opened) -> SummaryWidget:
    widget = SummaryWidget(opened[0])
    qtbot.addWidget(widget)
    return widget


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.00 KB"),
        (1_066_440, "1.07 MB"),
        (35_123, "35.1 KB"),
        (999_499, "999 KB"),
        (999_500, "1.00 MB"),
        (9_996, "10.0 KB"),
        (123_456_789_012, "123 GB"),
    ],
)
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


def test_shows_exact_file_size_ratio_kept_and_proxy_accuracy(summary) -> None:
    est = summary.session.estimate
    assert f"({est.file_nbytes:,} B)" in summary.compressed.text()
    assert summary.compressed.text().startswith(human_bytes(est.file_nbytes))
    assert summary.original.text() == f"{human_bytes(54888)} (54,888 B)"
    assert summary.ratio.text() == f"{est.ratio:.1f}x smaller"
    plans = [r.plan for r in est.layers if r.plan is not None]
    kept = sum(p.survivors for p in plans) / sum(p.size for p in plans)
    assert summary.kept.text() == f"{100 * kept:.2f}% of 13,640"
    assert "compressed layers" in summary.kept.toolTip()
    text = summary.accuracy.text()
    assert text.startswith(f"SQNR {est.sqnr_db:.1f} dB") and "proxy" in text
    assert summary.accuracy_kind == "proxy"


def test_follows_new_estimates(summary, opened) -> None:
    session, codec = opened
    session.set_layers(("ip1.weight",), "x", value=0.5)
    session.set_estimate(codec.estimate(session.settings))
    assert f"({session.estimate.file_nbytes:,} B)" in summary.compressed.text()
    assert summary.ratio.text() == f"{session.estimate.ratio:.1f}x smaller"


def test_measured_accuracy_stays_until_cleared(summary, opened) -> None:
    session, codec = opened
    summary.set_accuracy("top-1 98.1%", "measured")
    assert summary.accuracy.text() == "top-1 98.1% (measured)"
    session.set_estimate(codec.estimate(session.settings))
    assert summary.accuracy.text() == "top-1 98.1% (measured)"
    summary.clear_accuracy()
    assert "proxy" in summary.accuracy.text()
    with pytest.raises(ValueError):
        summary.set_accuracy("x", "guess")


def test_busy_greys_but_keeps_the_numbers(summary) -> None:
    before = summary.compressed.text()
    summary.set_busy(True)
    assert summary.is_busy()
    assert not summary.compressed.isEnabled()
    assert summary.compressed.text() == before
    summary.set_busy(False)
    assert not summary.is_busy()
    assert summary.compressed.isEnabled()


def test_empty_session_shows_dashes(qtbot) -> None:
    widget = SummaryWidget(Session())
    qtbot.addWidget(widget)
    assert all(label.text() == DASH for label in widget.values)


def test_renders(summary, tmp_path) -> None:
    summary.show()
    summary.set_busy(True)
    path = tmp_path / "summary.png"
    assert summary.grab().save(str(path))
    assert path.stat().st_size > 0


def test_a_deleted_widget_leaves_the_session(qtbot, opened) -> None:
    session, codec = opened
    widget = SummaryWidget(session)
    before = len(session.estimate_changed)
    widget.deleteLater()
    qtbot.waitUntil(lambda: len(session.estimate_changed) < before)
    session.set_estimate(codec.estimate(session.settings))
