"""Controller: loading in the background, estimates follow settings, stale ones are dropped."""

from __future__ import annotations

from inspector.gui.controller import Controller
from inspector.model.session import Session


def test_open_then_estimate_follows_settings(qtbot, save_model) -> None:
    session = Session()
    controller = Controller(session)
    try:
        with qtbot.waitSignal(controller.loaded, timeout=20000):
            controller.open_path(save_model())
        qtbot.waitUntil(lambda: session.estimate is not None, timeout=20000)
        first = session.estimate.file_nbytes
        session.set_layers(["fc.weight"], "x", value=0.0, bits=8)  # more than any default
        qtbot.waitUntil(
            lambda: session.estimate.layer("fc.weight").plan.settings.bits == 8, timeout=20000
        )
        assert session.estimate.file_nbytes > first
        expected = controller.codec.estimate(session.settings).file_nbytes
        assert session.estimate.file_nbytes == expected
    finally:
        controller.shutdown()


def test_only_the_newest_estimate_lands(qtbot, save_model) -> None:
    session = Session()
    controller = Controller(session)
    try:
        with qtbot.waitSignal(controller.loaded, timeout=20000):
            controller.open_path(save_model())
        landed: list[float] = []
        session.estimate_changed.connect(
            lambda: landed.append(session.estimate.layer("fc.weight").plan.settings.value)
        )
        for v in (0.1, 0.2, 0.3, 0.4, 0.55):
            session.set_layers(["fc.weight"], "drag", merge=True, value=v)
        qtbot.waitUntil(lambda: bool(landed) and landed[-1] == 0.55, timeout=20000)
        qtbot.wait(200)
        assert landed[-1] == 0.55  # nothing older arrives after the newest
        assert session.can_undo and session.undo_label() == "drag"
    finally:
        controller.shutdown()


def test_a_bad_file_is_one_message_and_the_session_is_untouched(qtbot, tmp_path) -> None:
    session = Session()
    controller = Controller(session)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    try:
        with qtbot.waitSignal(controller.load_failed, timeout=20000) as blocker:
            controller.open_path(str(bad))
        assert str(bad) in blocker.args[0] and "\n" not in blocker.args[0]
        assert session.model is None
    finally:
        controller.shutdown()


def test_a_sweep_of_another_models_layers_is_not_shown(qtbot, save_model) -> None:
    from inspector.model.sensitivity import LayerSensitivity, Sensitivity, SweepPoint
    from inspector.model.settings import ModelSettings

    def sweep(name: str, size: int) -> Sensitivity:
        prune, bits = (SweepPoint(0.0, 0.9, 1.0),), (SweepPoint(4, 0.9, 1.0),)
        return Sensitivity(0.9, 100, (LayerSensitivity(name, "fc", size, prune, bits),))

    session = Session()
    controller = Controller(session)
    try:
        cases = ((sweep("fc.weight", 4000), True), (sweep("ip1.weight", 4000), False),
                 (sweep("fc.weight", 99), False))
        for n, (carried, kept) in enumerate(cases):
            settings = ModelSettings(layers={"fc.weight": {"bits": 3}}).with_sensitivity(carried)
            # a new file each time: rewriting one the open model maps would be a bus error
            with qtbot.waitSignal(controller.loaded, timeout=20000):
                controller.open_path(save_model(f"m{n}.pt"), settings=settings)
            assert session.settings.sensitivity == (carried if kept else None)
            assert session.settings.layers == settings.layers  # the rest is kept
    finally:
        controller.shutdown()
