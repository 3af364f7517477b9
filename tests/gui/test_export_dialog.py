"""Export dialog: exports in its worker, shows exact bytes and verification, cancels cleanly,
reports errors in place, asks before replacing a file; and the shipped resources load."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt

import pytest

import inspector.tasks.export as export_mod
from inspector.errors import InputError
from inspector.format.container import open_container
from inspector.gui.export_dialog import (
    CANCELLED,
    FAILED,
    FINISHED,
    IDLE,
    ExportDialog,
)
from inspector.gui.resources import RESOURCES, icon, resource_path
from inspector.model.settings import load_settings
from inspector.tasks.export import COMPRESSED, DECOMPRESSED, REWRITTEN, SETTINGS

WAIT_MS = 20000
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.(script|trace|trace_method|save|load)` is deprecated:DeprecationWarning"
)


@pytest.fixture
def dialog(qtbot, opened) -> ExportDialog:
    session, _ = opened
    d = ExportDialog(session)
    qtbot.addWidget(d)
    d.show()
    return d


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def export_to(qtbot, dialog: ExportDialog, path: Path, state: str = FINISHED) -> None:
    dialog.path_edit.setText(str(path))
    click(qtbot, dialog.export_button)
    qtbot.waitUntil(lambda: dialog.state == state, timeout=WAIT_MS)


@pytest.fixture
def gated(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Hold the export after the compressed file is written, before it is verified."""
    written, gate = threading.Event(), threading.Event()
    real = export_mod.compress

    def slow(codec, settings, output):
        result = yield from real(codec, settings, output)
        written.set()
        gate.wait(10)
        return result

    monkeypatch.setattr(export_mod, "compress", slow)
    return written, gate


def test_export_shows_the_exact_bytes_and_the_verification(qtbot, dialog, opened, out) -> None:
    session, _ = opened
    estimated = session.estimate.file_nbytes
    assert dialog.estimate_label.text() == f"{estimated:,} bytes"
    export_to(qtbot, dialog, out / "m.dcz")
    nbytes = (out / "m.dcz").stat().st_size
    assert nbytes == estimated == dialog.result.nbytes
    assert dialog.result_label.text() == (
        f"Wrote {nbytes:,} bytes (estimated {nbytes:,} bytes, identical)."
    )
    assert dialog.verify_label.text() == "Verified: every layer decodes to the weights shown."
    assert len(open_container(out / "m.dcz").records) == len(session.infos)
    assert dialog.export_button.isEnabled() and dialog.cancel_button.text() == "Close"
    assert dialog.grab().save(str(out.parent / "export_dialog.png"))
    assert (out.parent / "export_dialog.png").stat().st_size > 0


@pytest.mark.parametrize(("name", "kind"), [("m.npz", DECOMPRESSED), ("s.json", SETTINGS)])
def test_other_exports_follow_the_extension(qtbot, dialog, opened, out, name, kind) -> None:
    export_to(qtbot, dialog, out / name)
    assert dialog.kind() == kind
    assert dialog.result.verified and dialog.result.estimated_nbytes is None
    assert dialog.result_label.text() == f"Wrote {(out / name).stat().st_size:,} bytes."
    if kind == SETTINGS:
        assert load_settings(out / name) == opened[0].settings


def test_the_kind_and_the_extension_stay_in_step(dialog, tmp_path) -> None:
    dialog.path_edit.setText(str(tmp_path / "m.safetensors"))
    assert dialog.kind() == DECOMPRESSED
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData(SETTINGS))
    assert dialog.path_edit.text() == str(tmp_path / "m.json")
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData(DECOMPRESSED))
    assert dialog.path_edit.text() == str(tmp_path / "m.pt")  # the model's own format
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData(COMPRESSED))
    assert dialog.path_edit.text() == str(tmp_path / "m.dcz")
    assert dialog.estimate_label.text().endswith(" bytes")


def test_switching_to_weights_never_proposes_the_source_model(dialog) -> None:
    source = Path(dialog.model.path).absolute()
    assert Path(dialog.path_edit.text()) == source.with_suffix(".dcz")  # the default
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData(DECOMPRESSED))
    assert Path(dialog.path_edit.text()).name == f"{source.stem}-decompressed{source.suffix}"


@pytest.mark.parametrize("existing", [False, True])
def test_cancel_mid_export_leaves_no_file(qtbot, dialog, out, gated, existing) -> None:
    written, gate = gated
    target = out / "m.dcz"
    if existing:
        target.write_bytes(b"old")
        dialog.confirm_overwrite = lambda path: True
    dialog.path_edit.setText(str(target))
    click(qtbot, dialog.export_button)
    assert written.wait(10)
    assert len(list(out.iterdir())) == 1 + existing  # the new file exists, not yet committed
    assert dialog.cancel_button.text() == "Cancel"
    click(qtbot, dialog.cancel_button)
    gate.set()
    qtbot.waitUntil(lambda: dialog.state == CANCELLED, timeout=WAIT_MS)
    assert dialog.step_label.text() == "Cancelled: nothing was written."
    assert [p.read_bytes() for p in out.iterdir()] == ([b"old"] if existing else [])
    assert dialog.isVisible() and dialog.export_button.isEnabled()


def test_closing_while_exporting_cancels(qtbot, dialog, out, gated) -> None:
    written, gate = gated
    dialog.path_edit.setText(str(out / "m.dcz"))
    click(qtbot, dialog.export_button)
    assert written.wait(10)
    threading.Timer(0.2, gate.set).start()
    dialog.reject()
    assert not dialog.worker._thread.is_alive()
    assert list(out.iterdir()) == []


def test_a_bad_folder_is_shown_and_the_dialog_stays_usable(qtbot, dialog, out) -> None:
    export_to(qtbot, dialog, out / "missing" / "m.dcz", FAILED)
    assert dialog.step_label.text() == f"{out / 'missing' / 'm.dcz'}: folder does not exist"
    assert dialog.export_button.isEnabled() and dialog.path_edit.isEnabled()
    export_to(qtbot, dialog, out / "m.dcz")
    assert dialog.result.verified


def test_an_error_in_the_worker_is_one_line_and_leaves_no_file(
    qtbot, dialog, out, monkeypatch
) -> None:
    def full_disk(codec, settings, output):
        yield export_mod.Progress(0, 1, "planning")
        raise InputError("cannot write: No space left on device", output)

    monkeypatch.setattr(export_mod, "compress", full_disk)
    export_to(qtbot, dialog, out / "m.dcz", FAILED)
    assert dialog.step_label.text().endswith(": cannot write: No space left on device")
    assert "\n" not in dialog.step_label.text()
    assert list(out.iterdir()) == []
    assert dialog.export_button.isEnabled()


def test_declining_to_overwrite_writes_nothing(qtbot, dialog, out) -> None:
    target = out / "m.dcz"
    target.write_bytes(b"keep me")
    asked: list[Path] = []
    dialog.confirm_overwrite = lambda path: asked.append(path) or False
    dialog.path_edit.setText(str(target))
    click(qtbot, dialog.export_button)
    assert asked == [target] and dialog.state == IDLE and not dialog.worker.busy
    assert target.read_bytes() == b"keep me" and list(out.iterdir()) == [target]
    dialog.confirm_overwrite = lambda path: True
    export_to(qtbot, dialog, target)
    assert open_container(target).nbytes == dialog.result.nbytes


def test_the_source_model_is_refused_without_asking(qtbot, dialog, opened, tmp_path) -> None:
    session, _ = opened
    source = tmp_path / "small.pt"
    source.write_bytes(b"the model")
    session.model = replace(session.model, path=str(source))
    dialog.model = session.model
    dialog.confirm_overwrite = lambda path: pytest.fail("asked to overwrite the source")
    export_to(qtbot, dialog, source, FAILED)
    assert "refusing to overwrite the source model" in dialog.step_label.text()
    assert source.read_bytes() == b"the model"


def test_the_shipped_resources_load() -> None:
    for name in ("inspector", "open", "save", "export", "undo", "redo"):
        assert not icon(name).pixmap(64).isNull(), name
    rules = resource_path("style.qss").read_text(encoding="utf-8").split("*/", 1)[1]
    values = re.findall(r"color\s*:\s*([^;]+);", rules)
    assert all(v.startswith("palette(") for v in values)  # the palette owns every colour
    assert "#" not in rules and "rgb" not in rules
    desktop = (RESOURCES / "inspector.desktop").read_text(encoding="utf-8")
    assert "Exec=inspector %f" in desktop and "Icon=inspector" in desktop
    with pytest.raises(FileNotFoundError, match=r"nothing\.svg"):
        resource_path("icons/nothing.svg")


@pytest.fixture
def scripted_dialog(qtbot, tmp_path) -> ExportDialog:
    """The dialog on a TorchScript model read from disk: a copy of it can be written."""
    import torch

    from inspector.io import read_model
    from inspector.model.session import Session

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    path = tmp_path / "src" / "net.pt"
    path.parent.mkdir()
    torch.jit.script(net).save(str(path))
    session = Session()
    session.open(read_model(path), {})
    d = ExportDialog(session)
    qtbot.addWidget(d)
    d.show()
    return d


def test_a_runnable_copy_is_offered_and_written(qtbot, scripted_dialog, out) -> None:
    from inspector.io import read_model

    d = scripted_dialog
    labels = [d.kind_combo.itemText(i) for i in range(d.kind_combo.count())]
    assert "Copy of the model with the decoded weights (.pt)" in labels
    assert "Same format as the model (*.pt)" in d.filters
    export_to(qtbot, d, out / "small.pt")  # the source's extension: a TorchScript copy
    assert d.kind() == REWRITTEN and d.result.verified
    assert d.verify_label.text() == (
        "Verified: the copy reads back with every layer's decoded weights."
    )
    assert read_model(out / "small.pt").format == "torchscript"


def test_weights_of_a_scripted_model_are_not_proposed_as_a_copy(scripted_dialog) -> None:
    d = scripted_dialog
    d.kind_combo.setCurrentIndex(d.kind_combo.findData(DECOMPRESSED))
    assert d.kind() == DECOMPRESSED and Path(d.path_edit.text()).suffix == ".npz"
    d.kind_combo.setCurrentIndex(d.kind_combo.findData(REWRITTEN))
    assert Path(d.path_edit.text()).name == "net-decompressed.pt"


def test_models_without_write_back_offer_no_copy(dialog) -> None:
    assert dialog.kind_combo.findData(REWRITTEN) == -1
    assert not any("Same format" in f for f in dialog.filters)


def test_a_model_opened_by_a_relative_name_exports_beside_itself(
    qtbot, scripted_dialog, monkeypatch
) -> None:
    """``inspector gui sample_models/m.pt`` (as ``make run`` does): the default target is
    ``sample_models/m.dcz``, not ``sample_models/sample_models/m.dcz``."""
    from inspector.io import read_model
    from inspector.model.session import Session

    source = Path(scripted_dialog.model.path)
    monkeypatch.chdir(source.parent.parent)
    session = Session()
    session.open(read_model(Path(source.parent.name) / source.name), {})
    d = ExportDialog(session)
    qtbot.addWidget(d)
    assert d.output_path() == source.with_suffix(".dcz")
    d.kind_combo.setCurrentIndex(d.kind_combo.findData(REWRITTEN))
    assert d.output_path() == source.with_name("net-decompressed.pt")
    click(qtbot, d.export_button)
    qtbot.waitUntil(lambda: d.state == FINISHED, timeout=WAIT_MS)
    assert source.with_name("net-decompressed.pt").is_file()


def test_enter_exports_and_never_opens_browse(qtbot, dialog, out, monkeypatch) -> None:
    browsed: list[object] = []
    monkeypatch.setattr(
        "inspector.gui.export_dialog.QFileDialog.getSaveFileName",
        lambda *a, **k: browsed.append(a) or ("", ""),
    )
    dialog.path_edit.setText(str(out / "enter.dcz"))
    for widget in (dialog.path_edit, dialog.kind_combo, dialog.browse_button):
        widget.setFocus()
        qtbot.keyClick(widget, Qt.Key.Key_Return)
        assert not browsed, f"Enter on {widget} opened Browse"
        if dialog.state != IDLE:
            break
    qtbot.waitUntil(lambda: dialog.state == FINISHED, timeout=WAIT_MS)
    assert (out / "enter.dcz").exists()
    assert dialog.export_button.isDefault() and not dialog.browse_button.autoDefault()


def test_changing_the_kind_clears_the_previous_result(qtbot, dialog, out) -> None:
    export_to(qtbot, dialog, out / "first.dcz")
    assert dialog.result_label.text() and dialog.verify_label.text()
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData(SETTINGS))
    assert dialog.state == IDLE
    assert not dialog.result_label.text() and not dialog.verify_label.text()
    assert not dialog.step_label.text() and not dialog.progress.isVisible()
    export_to(qtbot, dialog, out / "bad/x.dcz", state=FAILED)
    dialog.path_edit.setText(str(out / "second.json"))  # a new target: the error is old
    assert dialog.state == IDLE and not dialog.step_label.text()
