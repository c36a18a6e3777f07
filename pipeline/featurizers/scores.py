"""External variant scores as features (``--model scores:PATH[:COL,...]``, feature name ``scores-<file stem>``):
numeric columns of a CSV/TSV that scores variants, such as ProteinGym's zero-shot files (TranceptEVE's
``avg_score``, ESM-IF1's ``esmif1_ll``).

The feature name is ``scores-<file stem>``, followed by the columns when they are named
(``scores-<stem>-avg_score``). Rows are joined to the dataset on ``mutated_sequence`` (the sequence itself), else on ``mutant`` (ProteinGym's
1-based ``A24C:D56E`` against the dataset's parent). Columns: those named after the path, else every column but
the join keys and ProteinGym's labels and folds (``DMS_score``, ``DMS_score_bin``, ``fold_*``), so that a
measured label never becomes a feature. A last column ``covered`` is 1 for variants the file scores; a variant
it lacks is refused, or with ``allow_missing`` gets zeros and ``covered`` = 0 (no signal from this block).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError, input_file
from mimo.pipeline.io.profiles import feature_stem, file_fingerprint, numeric_cells
from mimo.pipeline.io.variants import PROTEINGYM_FORMAT, apply_mutations, expressed_sequence, parse_mutations

SEQUENCE_COLUMN, MUTANT_COLUMN = "mutated_sequence", "mutant"
NOT_SCORES = (SEQUENCE_COLUMN, MUTANT_COLUMN, "DMS_score", "DMS_score_bin")
# a variant listed twice keeps its first scores when the two agree to this relative tolerance (ProteinGym's
# DNJA1 ESM-IF1 file repeats variants with scores differing at 1e-7, rounding noise), else it is refused
DUPLICATE_RTOL = 1e-5


def split_spec(spec: str) -> tuple[str, list[str] | None]:
    """``PATH`` or ``PATH:COL,COL`` -> (path, columns or None); a path that exists as given wins."""
    if Path(spec).is_file() or ":" not in spec:
        return spec, None
    path, columns = spec.rsplit(":", 1)
    names = [c.strip() for c in columns.split(",") if c.strip()]
    if not names:
        raise DataError(f"no column names after ':' in {spec!r} (scores:PATH:COL,COL)")
    return path, names


def default_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in NOT_SCORES and not c.startswith("fold_")]


def read_scores(path: Path, columns: list[str] | None, parent: str | None) -> tuple[dict[str, np.ndarray], list[str]]:
    """{expressed sequence: scores} of the file and the score columns, checked: numeric, finite, one value per
    variant."""
    from mimo.pipeline.io.tables import read_table

    table = read_table(path)
    header = list(table.columns)
    chosen = columns or default_columns(header)
    missing = [c for c in chosen if c not in header]
    if missing or not chosen:
        what = f"no column {missing[0]!r}" if missing else "no score columns"
        raise DataError(f"{what}; the header has {header}", path, 1)
    values = np.column_stack([numeric_cells(table[c], path, c, hint="; name the score columns with scores:PATH:COL,COL")
                              for c in chosen])
    keys = _keys(table, path, parent)
    scores: dict[str, np.ndarray] = {}
    first: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key in scores and not np.allclose(scores[key], values[row], rtol=DUPLICATE_RTOL, atol=0):
            raise DataError(f"the same variant as line {first[key] + 2} with other scores ({scores[key].tolist()} "
                            f"vs {values[row].tolist()})", path, row + 2)
        scores.setdefault(key, values[row])
        first.setdefault(key, row)
    return scores, chosen


def _keys(table: pd.DataFrame, path: Path, parent: str | None) -> list[str]:
    if SEQUENCE_COLUMN in table.columns:
        return [s.strip().upper() for s in table[SEQUENCE_COLUMN]]
    if MUTANT_COLUMN not in table.columns:
        raise DataError(f"a scores file joins on {SEQUENCE_COLUMN!r} or {MUTANT_COLUMN!r}; the header has "
                        f"{list(table.columns)}", path, 1)
    if not parent:
        raise DataError(f"joining on {MUTANT_COLUMN!r} needs the dataset's parent sequence (--parent)", path)
    return [expressed_sequence(apply_mutations(parent, parse_mutations(text, parent, PROTEINGYM_FORMAT, path, row + 2)))
            for row, text in enumerate(table[MUTANT_COLUMN])]


def scores_name(path: Path, columns: list[str] | None) -> str:
    """``scores-<stem>``, with the columns named after the path appended (``scores-<stem>-avg_score``):
    ProteinGym names its zero-shot files by assay, one folder per model, so the stem alone would clash."""
    return "-".join(["scores", feature_stem(path)] + [feature_stem(c) for c in columns or []])


class ScoresFeaturizer:
    """A scores file's columns for each variant, plus ``covered`` (see the module)."""

    kind = "scores"

    def __init__(self, path: str | Path, parent: str | None, columns: list[str] | None = None,
                 allow_missing: bool = False, fingerprint: str | None = None):
        self.path = input_file(Path(path).resolve(), "--model scores:PATH")
        self.parent, self.allow_missing = parent, bool(allow_missing)
        self.fingerprint = file_fingerprint(self.path)
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise DataError(f"the scores file changed since the cache was built from it (fingerprint {fingerprint}, "
                            f"now {self.fingerprint}): rebuild the features", self.path)
        self.scores, self.score_columns = read_scores(self.path, columns, parent)
        self.columns = self.score_columns + ["covered"]
        self.dim = len(self.columns)
        self.name = scores_name(self.path, columns)

    @classmethod
    def from_manifest(cls, manifest: dict, parent: str | None, path: str | Path | None = None) -> "ScoresFeaturizer":
        """The featurizer a cache was built with; ``path``: another file with the same columns (new variants'
        scores), whose content is then not compared with the cache's."""
        fingerprint = None if path is not None else manifest.get("weights_fingerprint")
        featurizer = cls(path or manifest["weights"], parent, manifest["score_columns"],
                         manifest.get("allow_missing", False), fingerprint)
        featurizer.name = manifest["features"]
        return featurizer

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": f"scores-v1 allow_missing={self.allow_missing}",
                "layer": None, "pooling": None, "dtype": "float32", "dim": self.dim, "columns": self.columns,
                "score_columns": self.score_columns, "weights": str(self.path),
                "weights_fingerprint": self.fingerprint, "allow_missing": self.allow_missing}

    def check(self, frame: pd.DataFrame) -> None:
        """Refuse a dataset with variants the file lacks, unless ``allow_missing``."""
        if self.allow_missing:
            return
        lacking = ~frame["sequence"].isin(self.scores.keys()).to_numpy()
        if lacking.any():
            row = int(np.argmax(lacking))
            named = frame["mutations"].iloc[row] or frame["id"].iloc[row]
            raise DataError(f"{int(lacking.sum())} of {len(frame)} variants have no scores in the file (first: "
                            f"{named!r}); --allow-missing gives them zeros and covered = 0", self.path)

    def encode(self, sequences: list[str]) -> np.ndarray:
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        for row, sequence in enumerate(sequences):
            found = self.scores.get(sequence)
            if found is not None:
                out[row, :-1], out[row, -1] = found, 1
        return out

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.check(frame)
        yield np.arange(len(frame)), self.encode(frame["sequence"].tolist())
