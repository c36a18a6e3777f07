"""The one error type for bad input: it names the file, the line and what is wrong."""
from __future__ import annotations

import os
import re
from pathlib import Path


OPTION = re.compile(r"\{\{option:([a-z_]+)\}\}")
ALONE = re.compile(r"\(\{\{option:([a-z_]+)\}\}\)")  # an option alone in parentheses: which one gave a file


def option(name: str) -> str:
    """An option named in a message: ``mutant_col=`` when raised to a Python caller, ``--mutant-col`` on the
    command line (``DataError.cli_message``)."""
    return "{{option:" + name + "}}"


class DataError(ValueError):
    """Bad input data. ``str()`` reads ``FILE:LINE: problem`` (line omitted when not known); options the message
    names (``option("mutant_col")``) read as keyword arguments there, and as flags in ``cli_message()``."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.raw = message
        # "(--input)" on the command line; "(argument input)" to a Python caller, not "(input=)"
        self.message = OPTION.sub(lambda m: f"{m.group(1)}=", ALONE.sub(r"(argument \1)", message))
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        self.where = where
        super().__init__(where + self.message)

    def cli_message(self) -> str:
        """The message as the command line says it: options as flags."""
        return self.where + OPTION.sub(lambda m: "--" + m.group(1).replace("_", "-"), self.raw)


def input_file(path: str | Path, option: str | None = None) -> Path:
    """``path`` as a Path if it is a readable file; else a DataError naming it (and the option that gave it)."""
    path = Path(path)
    given = f" ({option})" if option else ""
    if not path.exists():
        raise DataError(f"file not found{given}", path)
    if path.is_dir():
        raise DataError(f"is a directory, not a file{given}", path)
    if path.is_char_device() or path.is_block_device():  # /dev/zero: reading it never ends (a pipe is read)
        raise DataError(f"is a device, not a file{given}", path)
    if not os.access(path, os.R_OK):
        raise DataError(f"file is not readable (permissions){given}", path)
    return path


def read_text(path: str | Path, option: str | None = None) -> str:
    """A text file's content as UTF-8 (a byte-order mark is dropped); a DataError for anything else."""
    path = input_file(path, option)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8", path, line) from None
