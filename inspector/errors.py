"""The one exception type that reaches the user as a single clear line."""

from __future__ import annotations

from pathlib import Path


class InspectorError(Exception):
    """A problem the user can act on: bad input file, nonsense setting, unsupported format.

    ``str(err)`` is the whole message shown to the user, e.g. ``"model.pt: truncated file"``.
    """

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(InspectorError):
    """The input file is corrupt, truncated, hostile or unsupported (CLI exit code 2)."""


class SettingsError(InspectorError):
    """A setting is out of range or inconsistent (CLI exit code 2)."""


class OutputError(InspectorError):
    """An output cannot be written: a full disk, a read-only folder (CLI exit code 2)."""


class CodeNotAllowed(InputError):
    """Running the model would run code it contains, and the user has not allowed that.

    The CLI's ``--allow-code`` and the app's confirmation dialog allow it, per file.
    """
