"""Writing files the user keeps: whole or not at all. Each writer writes a temporary file beside the target and
renames it into place; a full disk (ENOSPC) or exhausted quota (EDQUOT) becomes one line saying what was kept."""
from __future__ import annotations

import errno
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from mimo.pipeline.errors import DataError

FULL = (errno.ENOSPC, errno.EDQUOT)


def is_full_disk(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL


def full_disk_error(path: str | Path, kept: str) -> DataError:
    return DataError(f"no space left on the device (or quota exceeded) while writing; {kept}. Free some space "
                     f"and run the command again", path)


@contextmanager
def disk_errors(path: str | Path, kept: str) -> Iterator[None]:
    """Turn a full disk inside the block into one DataError naming ``path`` and what was ``kept``."""
    try:
        yield
    except OSError as exc:
        if is_full_disk(exc):
            raise full_disk_error(path, kept) from None
        raise


STAGING_EXTRA = 15  # what a temporary name adds to the final one: "." + ".<8 hex>.tmp" (or ".lock")


def check_name_length(path: str | Path, option: str) -> None:
    """Refuse, before any work, a file name too long for its folder's file system once the temporary name beside it
    (``STAGING_EXTRA`` more bytes) is made (Linux: 255 bytes a name)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        limit = os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(os.fsencode(path.name))
    if size + STAGING_EXTRA > limit:
        raise DataError(f"{option}: a file name of {size} bytes is too long here (at most {limit - STAGING_EXTRA}: "
                        f"the file system takes {limit} a name, and the file is written under a temporary name first)",
                        path)


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` writes the content to a temporary file beside ``path``, which then replaces ``path`` at once.
    On any failure the temporary file is removed and ``path`` is as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with disk_errors(path, f"{path.name} was not written (an earlier {path.name}, if any, is unchanged)"):
            write(tmp)
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_csv(table, path: str | Path) -> Path:
    """A pandas table as CSV, atomically."""
    return write_atomic(path, lambda tmp: table.to_csv(tmp, index=False))


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: str | Path, data, **options) -> Path:
    """``data`` as JSON (``json.dumps`` ``options``, e.g. ``indent=2``), with a final newline, atomically."""
    import json

    return write_text(path, json.dumps(data, **options) + "\n")
