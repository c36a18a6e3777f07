"""One line of progress on stderr: rewritten in place on a terminal, a new line each time elsewhere (logs)."""
from __future__ import annotations

import sys
from typing import TextIO


class StatusLine:
    """``show(text)`` replaces the line on a terminal; off a terminal it writes a line only when ``log`` is set
    (a build's progress belongs in a log, a training loop's epochs do not). ``close()`` ends a shown line."""

    def __init__(self, stream: TextIO | None = None, log: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.log = log
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text)
        elif self.log:
            self.stream.write(text + "\n")
        else:
            return
        self.stream.flush()
        self.shown = True

    def __call__(self, text: str) -> None:  # usable wherever a log function is expected
        self.show(text)

    def close(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
