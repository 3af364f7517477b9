"""Missing xcb libraries are named, with their Debian packages, before Qt is started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inspector.gui import xcb_check

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd3c5f2000)
\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f0e1c000000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f0e1bf00000)
"""


def fake_loader(missing: set[str]):  # type: ignore[no-untyped-def]
    def load(soname: str) -> object:
        if soname in missing:
            raise OSError(f"{soname}: cannot open shared object file")
        return object()

    return load


def test_ldd_not_found_and_runtime_loaded_library_are_reported() -> None:
    got = xcb_check.missing_libraries(
        Path("libqxcb.so"), ldd=lambda _p: LDD_OUTPUT, load=fake_loader({"libxcb-cursor.so.0"})
    )
    assert got == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"]
    message = xcb_check.missing_message(got)
    assert message is not None and "\n" not in message
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0" in message


def test_without_ldd_every_known_library_is_tried() -> None:
    got = xcb_check.missing_libraries(
        Path("libqxcb.so"), ldd=lambda _p: None, load=fake_loader({"libxcb-keysyms.so.1"})
    )
    assert got == ["libxcb-keysyms.so.1"]


def test_nothing_missing_is_no_message() -> None:
    ok = "\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n"
    got = xcb_check.missing_libraries(Path("p"), ldd=lambda _p: ok, load=fake_loader(set()))
    assert got == [] and xcb_check.missing_message(got) is None


@pytest.mark.parametrize(
    "env",
    [
        {},  # no display: the app says that itself
        {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"},
        {"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"},
    ],
)
def test_only_checked_when_qt_would_use_xcb(env: dict[str, str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(xcb_check, "missing_libraries", lambda *_a: ["libxcb-icccm.so.4"])
    assert xcb_check.xcb_problem(env) is None


def test_xcb_platform_with_a_missing_library_is_one_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(xcb_check, "_xcb_plugin", lambda: Path("libqxcb.so"))
    monkeypatch.setattr(xcb_check, "_run_ldd", lambda _p: LDD_OUTPUT)
    monkeypatch.setattr(xcb_check.ctypes, "CDLL", fake_loader(set()))
    message = xcb_check.xcb_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"})
    assert message is not None and "libxcb-icccm4 libxcb-keysyms1" in message


def test_app_exits_2_with_the_line_before_starting_qt(tmp_path: Path) -> None:
    # A child whose xcb check finds a library missing: `inspector gui` prints the line and
    # exits 2 without creating a QApplication (which would abort the process).
    child = (
        "import sys\n"
        "from inspector.gui import app, xcb_check\n"
        "xcb_check.missing_libraries = lambda *a: ['libxcb-keysyms.so.1']\n"
        "code = app.run()\n"
        "assert 'PySide6.QtWidgets' not in sys.modules\n"
        "sys.exit(code)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb",
           "PYTHONPATH": str(Path(xcb_check.__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "libxcb-keysyms1" in done.stderr
