"""Before Qt starts on X11: name the Debian packages its xcb platform plugin is missing.

Without them Qt aborts with "could not load the Qt platform plugin "xcb"... Available platform
plugins are: ..." and a core dump, which tells a user nothing about what to install. The
plugin links some libraries (found with ``ldd``) and loads ``libxcb-cursor`` at run time; this
module checks both without importing Qt, so it can run before ``QApplication`` exists.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: Library soname -> the Debian/Ubuntu package that ships it (the ones a minimal install lacks).
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
#: Loaded by the plugin with dlopen, so ``ldd`` does not list it.
RUNTIME_LOADED = ("libxcb-cursor.so.0",)


def xcb_problem(env: Mapping[str, str] | None = None) -> str | None:
    """One line saying which packages to install, or None when Qt's xcb plugin can load.

    Only checked on Linux when Qt would pick xcb: ``QT_QPA_PLATFORM`` unset (outside a Wayland
    session) or ``xcb``, and ``DISPLAY`` set.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or not env.get("DISPLAY"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None
    if not platform and env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return None
    plugin = _xcb_plugin()
    if plugin is None:
        return None  # not a PySide6 wheel layout we know: let Qt speak for itself
    return missing_message(missing_libraries(plugin))


def missing_libraries(
    plugin: Path,
    ldd: Callable[[Path], str | None] | None = None,
    load: Callable[[str], object] | None = None,
) -> list[str]:
    """Sonames the xcb plugin at ``plugin`` needs that cannot be loaded here.

    ``ldd(path)`` returns ``ldd``'s output (None when there is no ``ldd``; then every known
    soname is tried with ``load``, which raises OSError for a missing library).
    """
    ldd = _run_ldd if ldd is None else ldd
    load = ctypes.CDLL if load is None else load
    missing: list[str] = []
    output = ldd(plugin)
    if output is not None:
        for line in output.splitlines():
            name, _, where = line.strip().partition(" => ")
            if where.strip() == "not found" and name not in missing:
                missing.append(name)
        candidates: Sequence[str] = RUNTIME_LOADED
    else:
        candidates = tuple(DEBIAN_PACKAGES)
    for soname in candidates:
        if soname in missing:
            continue
        try:
            load(soname)
        except OSError:
            missing.append(soname)
    return missing


def missing_message(missing: Sequence[str]) -> str | None:
    """The one line printed for ``missing`` sonames (None if nothing is missing)."""
    if not missing:
        return None
    packages = " ".join(dict.fromkeys(DEBIAN_PACKAGES.get(s, s) for s in missing))
    return (
        f"Qt's X11 platform plugin (xcb) cannot load {', '.join(missing)}: install them "
        f"(Debian/Ubuntu: sudo apt-get install {packages}), or run without a window with "
        "QT_QPA_PLATFORM=offscreen"
    )


def _xcb_plugin() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def _run_ldd(path: Path) -> str | None:
    try:
        done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
