"""The one error type for bad input: it names the file, the line and what is wrong."""
from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. ``str()`` reads ``FILE:LINE: problem`` (line omitted when not known)."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)
