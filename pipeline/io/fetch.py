"""Where the GFP files are (``resolve_data_dir``), and `mimo data fetch`: download them from their public
addresses and derive TAPE's validation list."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

from mimo.pipeline.io.conventions import data_home
from mimo.pipeline.io.gfp import GFP_GENOTYPES, GFP_VALID_LIST, read_genotypes
from mimo.pipeline.errors import DataError
from mimo.pipeline.writes import write_text
from mimo.pipeline.runtime.progress import StatusLine

GENOTYPES_URL = "https://figshare.com/ndownloader/files/4820647"
GENOTYPES_SHA256 = "db7e0e3831329662a6526e7edb159edf80dc400d877970da6a9fbb7a8a048233"
TAPE_URL = PUBLIC_TAPE_URL = "https://s3.amazonaws.com/songlabdata/proteindata/data_raw_pytorch/fluorescence.tar.gz"
# TAPE publishes no checksum of its archive; what mimo takes from it is the validation list derived below, whose
# SHA-256 (5,362 genotypes, as docs/data.md and the shared copy hold it) is checked instead
VALID_LIST_SHA256 = "de2f13c085a92fe71c9a13de47dcc298c37c55375f62936cddeedded974165c3"
TAPE_ARCHIVE = "tape_fluorescence.tar.gz"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ByteProgress:
    """Bytes downloaded so far, on one line of stderr updated in place (a line every 10% when not a terminal)."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.done, self.shown = total, label, 0, -1
        self.line = StatusLine(stream)

    def update(self, n: int) -> None:
        self.done += n
        step = int(100 * self.done / self.total) if self.total else self.done >> 20
        if self.line.tty or (self.total and step // 10 != self.shown // 10):
            if step != self.shown:
                of = f" of {self.total / 1e6:.1f}" if self.total else ""
                self.line.show(f"{self.label}: {self.done / 1e6:.1f}{of} MB")
            self.shown = step

    def close(self) -> None:
        self.line.close()


def download(url: str, path: Path, sha256: str | None = None, log: Callable[[str], None] = print) -> Path:
    """Download to ``path`` (atomically), verifying ``sha256`` when given; a verified file is kept."""
    if path.exists() and (sha256 is None or sha256_of(path) == sha256):
        log(f"{path} already present")
        return path
    tmp = path.with_name(f".{path.name}.part")
    log(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            bar = ByteProgress(total, path.name)
            while block := response.read(1 << 20):
                out.write(block)
                bar.update(len(block))
            bar.close()
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}", path) from None
    if sha256 is not None:
        got = sha256_of(tmp)
        if got != sha256:
            tmp.unlink()
            raise DataError(f"download of {url} has sha256 {got}, expected {sha256}", path)
    os.replace(tmp, path)
    return path


def _tape_valid_records(archive: Path) -> list[dict]:
    try:
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("fluorescence_valid.json")), None)
            if member is None:
                raise DataError("no fluorescence_valid.json inside the archive", archive)
            return json.load(tar.extractfile(member))
    except tarfile.TarError as exc:
        raise DataError(f"not a readable tar archive: {exc}", archive) from None


def derive_valid_list(genotypes_path: Path, archive: Path, out: Path, sha256: str | None = None) -> int:
    """Match each TAPE validation record (sequence and float32 label) to exactly one genotype row; with
    ``sha256``, the list derived must have that digest (nothing is written otherwise)."""
    frame = read_genotypes(genotypes_path)
    by_sequence = dict(zip(frame["sequence"], range(len(frame))))
    labels32 = frame["label"].to_numpy().astype(np.float32)
    lines = []
    for number, record in enumerate(_tape_valid_records(archive), start=1):
        label = record["log_fluorescence"]
        label = np.float32(label[0] if isinstance(label, list) else label)
        row = by_sequence.get(record["primary"])
        if row is None or labels32[row] != label:
            raise DataError(f"validation record {number} matches no genotype row (sequence and label)", archive)
        lines.append(frame["mutations"].iloc[row])
    text = "\n".join(lines) + "\n"
    got = hashlib.sha256(text.encode()).hexdigest()
    if sha256 is not None and got != sha256:
        raise DataError(f"the validation list derived from the archive has sha256 {got}, expected {sha256}: not "
                        f"TAPE's split", archive)
    write_text(out, text)
    return len(lines)


def fetch_gfp(directory: str | Path, genotypes_url: str = GENOTYPES_URL, genotypes_sha256: str | None = GENOTYPES_SHA256,
              tape_url: str = TAPE_URL, log: Callable[[str], None] = print,
              valid_sha256: str | None = None) -> Path:
    """Download both public files into ``directory`` and write TAPE's validation genotype list there (checked
    against ``valid_sha256`` when given: ``VALID_LIST_SHA256`` for the public files)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    genotypes = download(genotypes_url, directory / GFP_GENOTYPES, genotypes_sha256, log)
    archive = download(tape_url, directory / TAPE_ARCHIVE, None, log)
    n = derive_valid_list(genotypes, archive, directory / GFP_VALID_LIST, valid_sha256)
    log(f"wrote {directory / GFP_VALID_LIST} ({n} validation genotypes)")
    return directory


def resolve_data_dir(data: str | Path | None = None, download: bool = True,
                     log: Callable[[str], None] | None = None) -> Path:
    """Where the GFP files are: ``--data``, then ``$MIMO_DATA``, then ``<data_home()>/gfp``.

    The per-user folder is filled on first use: both public files are downloaded there (sha256 checked),
    as scikit-learn's ``fetch_*`` functions do. A folder the user named is never written to.
    """
    if data is not None or os.environ.get("MIMO_DATA"):
        directory = Path(data if data is not None else os.environ["MIMO_DATA"])
        where = "--data" if data is not None else "$MIMO_DATA"
        if not (directory / GFP_GENOTYPES).exists():
            raise DataError(f"no {GFP_GENOTYPES} here ({where}); download the GFP data into it with "
                            f"`mimo data fetch {directory}`", directory)
        return directory.resolve()
    directory = data_home() / "gfp"
    if (directory / GFP_GENOTYPES).exists() and (directory / GFP_VALID_LIST).exists():
        return directory.resolve()
    if not download:
        raise DataError(f"the GFP data is not here; run `mimo data fetch {directory}` (or pass --data DIR, or set "
                        f"MIMO_DATA)", directory)
    try:
        fetch_gfp(directory, GENOTYPES_URL, GENOTYPES_SHA256, TAPE_URL,
                  log=log or (lambda text: print(text, file=sys.stderr)),
                  valid_sha256=VALID_LIST_SHA256 if TAPE_URL == PUBLIC_TAPE_URL else None)
    except DataError as exc:
        raise DataError(f"the GFP data is not here and could not be downloaded ({exc.message}); on a machine with "
                        f"a network run `mimo data fetch {directory}`, or pass --data DIR / set MIMO_DATA to a "
                        f"folder that has it", directory) from None
    return directory.resolve()
