"""The layer table's context menu: treat tensors as another kind, or compress an "other" one.

The kind a file gives a tensor is a guess from its graph, module class or name; the user may
know better. Both actions are setting changes through the session, so they are undoable and are
saved with the settings (``{"layers": {"x": {"kind": "conv"}}}``, ``"excluded": false``).
"""

from __future__ import annotations

from PySide6.QtWidgets import QMenu, QWidget

from inspector.io.kinds import ALL_KINDS
from inspector.model.session import Session


def kind_tooltip(session: Session, name: str) -> str:
    """Why tensor ``name`` has the kind the table shows (the user's override says so)."""
    info = session.info(name)
    kind = session.settings.kind_of(name, info.kind)
    said = f"{info.kind}: {info.reason}" if info.reason else info.kind
    if kind != info.kind:
        return f"Treated as {kind} (your setting); the file says {said}."
    return said


def build_kind_menu(session: Session, names: tuple[str, ...], parent: QWidget) -> QMenu:
    """``Treat as >`` every kind, and a checkable ``Compress`` for the tensors ``names``."""
    menu = QMenu(parent)
    label = names[0] if len(names) == 1 else f"{len(names)} tensors"
    treat = menu.addMenu("Treat as")
    current = {session.settings.kind_of(n, session.info(n).kind) for n in names}
    for kind in ALL_KINDS:
        action = treat.addAction(kind)
        action.setCheckable(True)
        action.setChecked(current == {kind})
        action.triggered.connect(
            lambda _=False, k=kind: session.set_layers(names, f"treat {label} as {k}", kind=k)
        )
    # Only finite float tensors can be compressed at all (not masks of -inf, not indices).
    allowed = tuple(n for n in names if session.info(n).lossy_ok)
    compress = menu.addAction("Compress this tensor" if len(names) == 1 else "Compress these")
    compress.setCheckable(True)
    compress.setEnabled(bool(allowed))
    compress.setChecked(bool(allowed) and not any(session.layer_settings(n).excluded
                                                   for n in allowed))
    if not allowed:
        compress.setToolTip("Only finite float values can be compressed.")
    compress.triggered.connect(
        lambda on: session.set_layers(
            allowed, f"{'compress' if on else 'store losslessly'} {label}", excluded=not on
        )
    )
    menu.setToolTipsVisible(True)
    return menu
