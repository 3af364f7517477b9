"""Method choice per layer: the options panel writes the session only on a user action, and
the estimate it leads to is the exact size of the file written."""

from __future__ import annotations

from inspector.format.container import open_container
from inspector.gui.controller import Controller
from inspector.gui.method_options import MethodOptionsWidget
from inspector.gui.model_bytes import layer_parts
from inspector.model.session import Session
from inspector.tasks.codec import compress
from inspector.tasks.drive import run_to_end as drain

WAIT_MS = 20000




def test_choosing_fp16_makes_the_estimate_the_bytes_written(qtbot, save_model, tmp_path) -> None:
    session = Session()
    controller = Controller(session)
    widget = MethodOptionsWidget(session)
    qtbot.addWidget(widget)
    try:
        with qtbot.waitSignal(controller.loaded, timeout=WAIT_MS):
            controller.open_path(save_model())
        qtbot.waitUntil(lambda: session.estimate is not None, timeout=WAIT_MS)
        session.select(["fc.weight"])
        before = session.estimate.file_nbytes
        assert widget.method_combo.currentData() == "deep"
        settings = session.settings
        widget.method_combo.setCurrentIndex(widget.method_combo.findData("fp16"))  # the user
        assert session.settings is not settings
        assert session.layer_settings("fc.weight").method == "fp16"
        qtbot.waitUntil(lambda: session.estimate.layer("fc.weight").method == "fp16",
                        timeout=WAIT_MS)
        layer = session.estimate.layer("fc.weight")
        assert layer.payload_nbytes == 50 * 80 * 2 and layer.coded is not None
        assert session.estimate.file_nbytes != before
        assert "fp16" in widget.summary.text() and "8,000 bytes" in widget.summary.text()
        out = tmp_path / "out.dcz"
        _, nbytes = drain(compress(controller.codec, session.settings, out))
        assert nbytes == out.stat().st_size == session.estimate.file_nbytes
        assert layer_parts(layer)["weights"] == layer.payload_nbytes  # not "raw (lossless)"
        methods = {r.name: r.method for r in open_container(out).records}
        assert methods == {"fc.weight": "fp16", "fc.bias": "raw"}
    finally:
        controller.shutdown()


def test_view_updates_never_write_the_session(qtbot, opened) -> None:
    session, _ = opened
    widget = MethodOptionsWidget(session)
    qtbot.addWidget(widget)
    written: list[int] = []
    session.settings_changed.connect(lambda: written.append(1))
    session.select(["ip1.weight"])
    session.select(["ip2.weight"])
    session.set_method(["ip2.weight"], "bf16", "m")  # a model event: the combo follows it
    assert widget.method_combo.currentData() == "bf16" and len(written) == 1
    session.select(["ip1.weight"])
    assert widget.method_combo.currentData() == "deep" and len(written) == 1
    session.undo()
    assert session.layer_settings("ip2.weight").method == "deep"


def test_editors_follow_the_declared_options_and_write_them(qtbot, opened, toy_method) -> None:
    from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox

    session, _ = opened
    widget = MethodOptionsWidget(session)
    qtbot.addWidget(widget)
    session.select(["ip1.weight"])
    assert widget.editors == {}  # deep: its settings are the controls panel's
    widget.method_combo.setCurrentIndex(widget.method_combo.findData("toy"))
    editors = widget.editors
    assert isinstance(editors["step"], QDoubleSpinBox) and editors["step"].value() == 0.01
    assert isinstance(editors["layout"], QComboBox) and isinstance(editors["signed"], QCheckBox)
    assert editors["step"].toolTip() == "quantization step"
    editors["step"].setValue(0.5)  # as a user typing a value
    editors["layout"].setCurrentIndex(editors["layout"].findData("rows"))
    assert dict(session.layer_settings("ip1.weight").options) == {
        "step": 0.5, "layout": "rows", "signed": True}
    session.undo()  # a model event: the editor shows the value again, writing nothing
    assert widget.editors["layout"].currentData() == "flat"
    assert session.layer_settings("ip1.weight").options["step"] == 0.5
    widget.method_combo.setCurrentIndex(widget.method_combo.findData("fp16"))
    assert "step" not in session.settings.layers["ip1.weight"]  # toy's options dropped


def test_an_unset_option_reads_none_not_its_smallest_value(qtbot, opened) -> None:
    """uniform's step and int_bits are None by default: their editors say "none" (they showed
    0.000000 and 2, which read as settings in force), and stepping down to it writes None."""
    session, _ = opened
    widget = MethodOptionsWidget(session)
    qtbot.addWidget(widget)
    session.select(["ip2.weight"])
    session.set_method(["ip2.weight"], "uniform", "uniform")
    for name in ("step", "int_bits"):
        editor = widget.editors[name]
        assert editor.text() == "none", (name, editor.text())
    bits = widget.editors["int_bits"]
    bits.setValue(4)  # the user
    assert session.layer_settings("ip2.weight").options["int_bits"] == 4
    bits.setValue(bits.minimum())  # and back to none
    assert session.layer_settings("ip2.weight").options["int_bits"] is None
