"""Asks the user, once per file per session, whether a model's code may run.

Reading weights never runs code; measuring accuracy, tuning, fine-tuning and exporting a
TorchScript copy load the model as a program, and ``torch.jit.load`` runs code the archive
contains. Those actions ask first (this dialog is the app's ``--allow-code``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox

from inspector.io.torchscript import runs_code

Ask = Callable[[Path, str], bool]


def ask_dialog(path: Path, action: str) -> bool:
    """A modal question on the active window: may ``path``'s code run for ``action``?"""
    answer = QMessageBox.question(
        QApplication.activeWindow(),
        "Run the model's code?",
        f"{path.name} is a TorchScript archive: it contains code, and {action} loads the model, "
        "which runs that code.\n\nRun it? Only do this for a file you trust.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class CodeConsent:
    """The user's answers for this session, by file.

    Attributes
    ----------
    ask : callable
        ``ask(path, action) -> bool``, the question itself (:func:`ask_dialog`); tests replace it.
    """

    def __init__(self, ask: Ask | None = None) -> None:
        self.ask: Ask = ask or ask_dialog
        self._answers: dict[str, bool] = {}

    def allow(self, path: str | Path) -> None:
        """Answer yes for ``path`` without asking (``inspector gui MODEL --allow-code``)."""
        self._answers[str(Path(path).resolve())] = True

    def allow_code(self, path: str | Path, action: str) -> bool | None:
        """``allow_code`` for running ``path``: False for a file without code (nothing to
        allow), True once the user agreed, None when the user said no (do not run it).
        """
        path = Path(path)
        if not runs_code(path):
            return False
        key = str(path.resolve())
        if key not in self._answers:
            self._answers[key] = bool(self.ask(path, action))
        return True if self._answers[key] else None
