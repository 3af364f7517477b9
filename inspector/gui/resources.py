"""Files the app ships beside the package: icons, the stylesheet, the desktop entry.

They live in the repository's ``resources/`` folder (``resources/icons/*.svg``,
``resources/style.qss``); an installed wheel carries the same files as ``inspector/_resources``
(see ``pyproject.toml``). Both are found relative to this file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtGui import QIcon

log = logging.getLogger(__name__)
_PACKAGE = Path(__file__).resolve().parents[1]
RESOURCES = next(
    (p for p in (_PACKAGE / "_resources", _PACKAGE.parent / "resources") if p.is_dir()),
    _PACKAGE.parent / "resources",
)


def resource_path(name: str) -> Path:
    """The path of resource ``name`` (e.g. ``"style.qss"``, ``"icons/open.svg"``).

    Raises
    ------
    FileNotFoundError
        If the file is missing (an ``OSError``, so callers may treat it as optional).
    """
    path = RESOURCES / name
    if not path.is_file():
        raise FileNotFoundError(
            f"inspector resource {name!r} not found in {RESOURCES} (is the resources/ folder "
            "beside the inspector package, or inspector/_resources in an install?)"
        )
    return path


def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>`` (``".svg"`` is added when there is no suffix).

    A missing icon is logged and gives an empty ``QIcon``: the app works without pictures
    (e.g. an install that left out ``resources/``).
    """
    if not Path(name).suffix:
        name += ".svg"
    try:
        return QIcon(str(resource_path(f"icons/{name}")))
    except FileNotFoundError as exc:
        log.warning("%s", exc)
        return QIcon()
