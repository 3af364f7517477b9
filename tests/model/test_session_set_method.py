"""Session.set_method with options: the method and its settings in one undo step; an option
the method lacks changes nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inspector.errors import SettingsError
from inspector.model.session import Session

_spec = importlib.util.spec_from_file_location(
    "session_tests", Path(__file__).with_name("test_session.py"))
_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tests)


def opened() -> Session:
    s = Session()
    s.open(_tests.model(), {})
    return s


def test_method_and_options_are_one_undo_step() -> None:
    s = opened()
    name = s.selection[0]
    before = s.settings
    s.set_method((name,), "uniform", "uniform for it", {"rel_step": 0.2, "min_sqnr": None})
    got = s.layer_settings(name)
    assert got.method == "uniform" and got.options["rel_step"] == 0.2 and got.min_sqnr is None
    s.undo()
    assert s.settings == before and not s.can_undo


def test_an_option_the_method_lacks_changes_nothing() -> None:
    s = opened()
    before = s.settings
    with pytest.raises(SettingsError):
        s.set_method((s.selection[0],), "int8", "int8", {"rel_step": 0.2})
    assert s.settings is before and not s.can_undo
