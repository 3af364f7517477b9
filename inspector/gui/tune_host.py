"""What the Tune menu needs of the window it sits in (:class:`TuneHost`).

Its own module so that the main window can import the Tune menu while the menu names only this
interface, not the main window: no import cycle between the two. The host is a
``QMainWindow`` as well: the menu's actions and dialogs take it as their parent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from PySide6.QtWidgets import QMenuBar, QProgressBar, QTabWidget

    from inspector.model.session import Session

    from .controller import Controller
    from .sensitivity_view import SensitivityWidget


class TuneHost(Protocol):
    """The window's parts the Tune menu uses (``MainWindow`` has them all)."""

    session: Session
    controller: Controller
    tabs: QTabWidget
    sensitivity: SensitivityWidget
    progress: QProgressBar
    on_error: Callable[[str, str], None]

    def menuBar(self) -> QMenuBar:
        """The window's menu bar, where the Tune menu goes."""
        ...

    def _on_controller_progress(self, done: int, total: int, label: str) -> None:
        """Show a run's progress in the status bar."""
        ...
