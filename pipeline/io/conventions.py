"""The project's conventions, each written down once: where downloaded data lives, the ``-mutpos`` feature
suffix, the ESM residue window, how a cache records pooling, and how a dataset's mutation-string format is
recorded in the cache and read back.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.variants import MutationFormat

MUTPOS = "-mutpos"  # feature-name suffix: the representation at the mutated positions, not the sequence mean
ESM_NAME = re.compile(r"^esm(1|2|_|1b|1v)")  # a fair-esm model name (esm2_t33_650M_UR50D, esm1v_...)
ESM_MAX_RESIDUES = 1022  # ESM-1b/ESM-2 positional limit (1024 tokens with BOS and EOS)
LEGACY_POOLING = {  # what caches of earlier versions wrote instead
    "mean over residues": "mean",
    "mean hidden state (start token included)": "mean",
    "sum over mutated positions": "mutated",
    "sum over mutated positions of the hidden state after reading the new residue": "mutated",
}


def data_home() -> Path:
    """Where mimo keeps data it downloads or derives: ``$MIMO_HOME``, else ``~/.cache/mimo``."""
    home = Path(os.environ.get("MIMO_HOME") or Path.home() / ".cache" / "mimo")
    if home.exists() and not home.is_dir():
        where = "$MIMO_HOME" if os.environ.get("MIMO_HOME") else "mimo's data folder"
        raise DataError(f"{where} is a file, not a folder; point $MIMO_HOME at a folder", home)
    return home


def check_name(name: str, what: str) -> str:
    """A dataset or feature name: one folder name in the cache, never a path (no separators, not . or ..)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"{what} {name!r} is not a name (one word without / or \\, not starting with a dot): "
                        f"names are folders inside the cache, never paths")
    return name


def pooling_of(manifest: dict) -> str:
    """``"mean"`` or ``"mutated"`` from a cache manifest (earlier versions wrote a sentence, ``LEGACY_POOLING``)."""
    value = manifest.get("pooling") or "mean"
    return LEGACY_POOLING.get(value, value)


def mutation_format_record(fmt: MutationFormat) -> dict:
    """How a dataset writes its mutation strings, as its record in the cache (``dataset.json``) keeps it."""
    return {"mutation_prefix": fmt.prefix, "mutation_first_index": fmt.first_index}


def mutation_format_from(record: dict) -> MutationFormat:
    """The inverse of ``mutation_format_record`` (records without the fields: ``K3R``-style, 1-based)."""
    return MutationFormat(record.get("mutation_prefix", ""), record.get("mutation_first_index", 1))
