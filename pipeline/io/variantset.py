"""The one dataset type, ``VariantSet``: one row per distinct sequence with columns ``id`` (hash of the
sequence), ``mutations`` (the genotype as written in the source), ``n_mutations`` (-1 when unknown),
``aligned`` (parent-aligned sequence, ``*`` for stops; empty when no parent is known), ``sequence`` (what a
model embeds) and ``label`` (NaN for embedding-only data), plus named splits (``train``/``valid``/``test``, or
fold ids).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.splits import seeded_name, split_hash
from mimo.pipeline.io.variants import PROTEINGYM_FORMAT, MutationFormat

FRAME_COLUMNS = ["id", "mutations", "n_mutations", "aligned", "sequence", "label"]


@dataclass
class VariantSet:
    """A named dataset: one row per distinct sequence, and its named splits."""

    name: str
    frame: pd.DataFrame
    parent: str | None = None
    mutation_format: MutationFormat = PROTEINGYM_FORMAT
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # how a table's columns were read: mutant, score, ...
    options: dict = field(default_factory=dict)  # how it was loaded (``load_dataset``'s arguments), to load it again
    structure: dict | None = None  # the user's structure: path, sha256, chain, sites (``attach_structure``)

    def __len__(self) -> int:
        return len(self.frame)

    def checksum(self) -> str:
        """SHA-256 of what a cache depends on: ids, genotypes, labels, mutation counts, parent."""
        h = hashlib.sha256((self.parent or "").encode())
        table = self.frame[["id", "mutations", "n_mutations", "label"]]
        h.update(table.to_csv(index=False, float_format="%.10g").encode())
        return h.hexdigest()

    def sample(self, n: int, seed: int = 0) -> "VariantSet":
        """A seeded random subset of ``n`` rows (all rows when ``n`` is larger), named ``<name>-sample<n>``
        (``<name>-sample<n>-seed<seed>`` for a seed other than 0)."""
        if n < 1:
            raise DataError(f"a sample needs at least 1 row, not {n}")
        if n >= len(self.frame):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self.frame), n, replace=False))
        return VariantSet(seeded_name(f"{self.name}-sample{n}", seed), self.frame.iloc[rows].reset_index(drop=True), self.parent,
                          self.mutation_format, {k: v[rows] for k, v in self.splits.items()}, self.columns, self.options,
                          self.structure)

    def split_hashes(self) -> dict[str, str]:
        """Each named split's content hash (``split_hash``)."""
        ids = self.frame["id"].to_numpy()
        return {name: split_hash(ids, assignment) for name, assignment in self.splits.items()}

    def splits_frame(self) -> pd.DataFrame:
        """``id`` plus one column per named split."""
        out = pd.DataFrame({"id": self.frame["id"].to_numpy()})
        for name, assignment in self.splits.items():
            out[name] = assignment
        return out


def make_frame(rows: dict[str, list]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame["n_mutations"] = frame["n_mutations"].astype(np.int64)
    frame["label"] = frame["label"].astype(np.float64)
    return frame



LABEL_LIMIT = float(np.finfo(np.float32).max)  # heads train in float32: a larger label would overflow to inf


def parse_label(text: str, path: str | Path | None, line: int | None) -> float:
    """A finite float label within float32's range, or a DataError naming what the cell held."""
    shown = repr(text) if len(str(text)) <= 60 else f"{str(text)[:50]!r}... ({len(str(text)):,} characters)"
    try:
        if "_" in str(text):  # Python reads 1_000 as 1000; a CSV number never has one
            raise ValueError(text)
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"label {shown} is not a number", path, line) from None
    if not math.isfinite(value):
        raise DataError(f"label {shown} is not finite", path, line)
    if abs(value) > LABEL_LIMIT:
        raise DataError(f"label {shown} is beyond float32's range (3.4e38), which the heads train in; rescale the "
                        f"scores", path, line)
    return value


def hamming_to_parent(sequence: str, parent: str | None) -> int:
    """Substitutions against the parent for a same-length sequence; -1 when not comparable."""
    if parent is None or len(sequence) != len(parent):
        return -1
    return sum(a != b for a, b in zip(sequence, parent))
