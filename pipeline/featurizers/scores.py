"""External variant scores as features (``--model scores:PATH[:COL,...]``, feature name ``scores-<file stem>``):
numeric columns of a CSV/TSV that scores variants, such as ProteinGym's zero-shot files (TranceptEVE's
``avg_score``, ESM-IF1's ``esmif1_ll``).

The feature name is ``scores-<file stem>``, followed by the columns when they are named
(``scores-<stem>-avg_score``). Rows are joined to the dataset on a sequence column (``mutated_sequence``,
``sequence``), else on a mutation column (``mutant``, ``variant``, ``mutation(s)``, ...: the names the dataset
reader knows, ``A24C:D56E`` against the dataset's parent, numbered as the dataset's own strings); the columns the
dataset was read from (``--mutant-col``, ``--sequence-col``) are tried first. Columns: those named after the
path, else every column but the join keys, folds (``fold_*``) and labels. A label is never a feature: a column
whose name mimo reads as an assay's label (``DMS_score``, ``score``, ``fitness``, ``activity``, ...; the
dataset's own score column), named or not, is refused, and so is the dataset file itself given as a scores
file. A last column ``covered`` is 1 for variants the file scores; a variant it lacks is refused, or with
``allow_missing`` gets zeros and ``covered`` = 0 (no signal from this block).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError, input_file, option
from mimo.pipeline.io.profiles import feature_stem, file_fingerprint, numeric_cells
from mimo.pipeline.io.variants import (PROTEINGYM_FORMAT, MutationFormat, apply_mutations, expressed_sequence,
                                       parse_mutations)

SEQUENCE_COLUMN, MUTANT_COLUMN = "mutated_sequence", "mutant"
LABEL_NAMES = ("DMS_score_bin",)  # besides the dataset reader's score columns (``tables.SCORE_COLUMNS``)
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


def label_names(extra=()) -> set[str]:
    """Lower-cased column names mimo reads as an assay's label: never a feature."""
    from mimo.pipeline.io.tables import SCORE_COLUMNS

    return {c.lower() for c in (*SCORE_COLUMNS, *LABEL_NAMES, *extra) if c}


def default_columns(columns: list[str], labels: set[str] | None = None) -> list[str]:
    """Every column but join keys, folds and labels."""
    from mimo.pipeline.io.tables import MUTANT_COLUMNS, SEQUENCE_COLUMNS

    labels = label_names() if labels is None else labels
    keys = {c.lower() for c in (*MUTANT_COLUMNS, *SEQUENCE_COLUMNS)}
    return [c for c in columns if c.strip().lower() not in keys | labels and not c.startswith("fold_")]


def join_column(header: list[str], path: Path, given: dict | None = None) -> tuple[str, str]:
    """(``"sequence"`` or ``"mutant"``, column) the file is joined on: a column the dataset was read from when the
    file has it, else the usual names (a sequence column first); a DataError names the columns found."""
    from mimo.pipeline.errors import option
    from mimo.pipeline.io.tables import MUTANT_COLUMNS, SEQUENCE_COLUMNS, pick_column

    for kind in ("sequence", "mutant"):
        name = (given or {}).get(kind)
        if name and name in header:
            return kind, name
    sequence = pick_column(header, None, SEQUENCE_COLUMNS, "sequence", path, option("sequence_col"))
    if sequence is not None:
        return "sequence", sequence
    mutant = pick_column(header, None, MUTANT_COLUMNS, "mutant", path, option("mutant_col"))
    if mutant is not None:
        return "mutant", mutant
    raise DataError(f"no column to join the scores on: a scores file needs a sequence column ("
                    f"{', '.join(SEQUENCE_COLUMNS)}) or a mutation column ({', '.join(MUTANT_COLUMNS)}); the header has "
                    f"{header} (name yours with {option('mutant_col')} or {option('sequence_col')}, which apply to "
                    f"the dataset and its scores files alike)", path, 1)


def read_scores(path: Path, columns: list[str] | None, parent: str | None, given: dict | None = None,
                labels: set[str] | None = None, fmt: MutationFormat = PROTEINGYM_FORMAT
                ) -> tuple[dict[str, np.ndarray], list[str], str, str]:
    """{expressed sequence: scores} of the file, the score columns, and what it is joined on (``"sequence"`` or
    ``"mutant"``, the column), checked: a join key
    first, no label among the columns, numeric, within float32, one value per variant."""
    from mimo.pipeline.io.tables import read_table

    labels = label_names() if labels is None else labels
    table = read_table(path)
    header = list(table.columns)
    kind, key = join_column(header, path, given)
    named = [c for c in columns or [] if c.strip().lower() in labels]
    if named:
        raise DataError(f"column {named[0]!r} is named as an assay's label (mimo reads {named[0]!r} as one): a "
                        f"label is never a feature; if it holds a model's predictions, rename it", path, 1)
    chosen = columns or [c for c in default_columns(header, labels) if c != key]
    missing = [c for c in chosen if c not in header]
    if missing or not chosen:
        left = [c for c in header if c.strip().lower() in labels]
        what = (f"no column {missing[0]!r}" if missing else "no score columns" +
                (f" (left out as labels: {left})" if left else ""))
        raise DataError(f"{what}; the header has {header}", path, 1)
    if key in chosen:
        raise DataError(f"column {key!r} is the join key, not a score", path, 1)
    values = np.column_stack([numeric_cells(table[c], path, c, hint="; name the score columns with scores:PATH:COL,COL")
                              for c in chosen])
    keys = _keys(table, kind, key, path, parent, fmt)
    scores: dict[str, np.ndarray] = {}
    first: dict[str, int] = {}
    for row, k in enumerate(keys):
        if k in scores and not np.allclose(scores[k], values[row], rtol=DUPLICATE_RTOL, atol=0):
            raise DataError(f"the same variant as line {first[k] + 2} with other scores ({scores[k].tolist()} "
                            f"vs {values[row].tolist()})", path, row + 2)
        scores.setdefault(k, values[row])
        first.setdefault(k, row)
    return scores, chosen, kind, key


def _keys(table: pd.DataFrame, kind: str, key: str, path: Path, parent: str | None, fmt: MutationFormat) -> list[str]:
    if kind == "sequence":
        return [s.strip().upper() for s in table[key]]
    if not parent:
        raise DataError(f"joining on {key!r} needs the dataset's parent sequence (--parent)", path)
    return [expressed_sequence(apply_mutations(parent, parse_mutations(text, parent, fmt, path, row + 2)))
            for row, text in enumerate(table[key])]


def scores_name(path: Path, columns: list[str] | None) -> str:
    """``scores-<stem>``, with the columns named after the path appended (``scores-<stem>-avg_score``):
    ProteinGym names its zero-shot files by assay, one folder per model, so the stem alone would clash."""
    return "-".join(["scores", feature_stem(path)] + [feature_stem(c) for c in columns or []])


class ScoresFeaturizer:
    """A scores file's columns for each variant, plus ``covered`` (see the module)."""

    kind = "scores"

    def __init__(self, path: str | Path, parent: str | None, columns: list[str] | None = None,
                 allow_missing: bool = False, fingerprint: str | None = None, *, dataset=None,
                 join: tuple[str, str] | None = None, mutation_format: MutationFormat | None = None):
        """``dataset`` (a ``VariantSet``): the columns its file was read from are tried as join keys, its score
        column is a label, its own file is refused as scores, and mutation strings are numbered as its own.
        ``join``, ``mutation_format``: the join column and numbering a cache recorded."""
        self.path = input_file(Path(path).resolve(), "--model scores:PATH")
        self.parent, self.allow_missing = parent, bool(allow_missing)
        source = getattr(dataset, "options", {}).get("input")
        if source and Path(source).resolve() == self.path:
            raise DataError("the dataset's own file given as a scores file: its label would become a feature", path)
        given = dict(getattr(dataset, "columns", {}) or {})
        if join:  # (kind, column)
            given = {join[0]: join[1]}
        fmt = getattr(dataset, "mutation_format", PROTEINGYM_FORMAT)
        self.mutation_format = mutation_format or (fmt if fmt.prefix == "" else PROTEINGYM_FORMAT)  # GFP: A109D
        self.fingerprint = file_fingerprint(self.path)
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise DataError(f"the scores file changed since the cache was built from it (fingerprint {fingerprint}, "
                            f"now {self.fingerprint}): rebuild the features", self.path)
        labels = label_names([given.get("score")])
        self.scores, self.score_columns, self.join_kind, self.join = read_scores(self.path, columns, parent, given, labels,
                                                                 self.mutation_format)
        self.columns = self.score_columns + ["covered"]
        self.dim = len(self.columns)
        self.name = scores_name(self.path, columns)

    @classmethod
    def from_manifest(cls, manifest: dict, parent: str | None, path: str | Path | None = None) -> "ScoresFeaturizer":
        """The featurizer a cache was built with; ``path``: another file with the same columns (new variants'
        scores), whose content is then not compared with the cache's."""
        fingerprint = None if path is not None else manifest.get("weights_fingerprint")
        featurizer = cls(path or manifest["weights"], parent, manifest["score_columns"],
                         manifest.get("allow_missing", False), fingerprint, join=(manifest["join_on"], manifest["join"]) if manifest.get("join") else None,
                         mutation_format=MutationFormat("", manifest.get("mutation_first_index", 1)))
        featurizer.name = manifest["features"]
        # predicting with a run: the build's --allow-missing is fixed in the run; another file is what helps
        featurizer.missing_hint = (f"give a scores file that scores them ({option('scores')} FILE, with the "
                                   f"columns {', '.join(featurizer.score_columns)})")
        return featurizer

    missing_hint = "--allow-missing gives them zeros and covered = 0"

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": f"scores-v1 allow_missing={self.allow_missing}",
                "layer": None, "pooling": None, "dtype": "float32", "dim": self.dim, "columns": self.columns,
                "score_columns": self.score_columns, "weights": str(self.path),
                "weights_fingerprint": self.fingerprint, "allow_missing": self.allow_missing, "join": self.join, "join_on": self.join_kind,
                "mutation_first_index": self.mutation_format.first_index}

    def check(self, frame: pd.DataFrame) -> None:
        """Refuse a dataset with variants the file lacks, unless ``allow_missing``."""
        if self.allow_missing:
            return
        lacking = ~frame["sequence"].isin(self.scores.keys()).to_numpy()
        if lacking.any():
            row = int(np.argmax(lacking))
            named = frame["mutations"].iloc[row] or frame["id"].iloc[row]
            raise DataError(f"{int(lacking.sum())} of {len(frame)} variants have no scores in the file (first: "
                            f"{named!r}); {self.missing_hint}", self.path)

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
