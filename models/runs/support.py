"""What the training data supports: which substitutions and positions a run saw measured.

A substitution that no training row carries gives a one-hot model no signal at all (its weight was never
trained: it adds nothing, so a single such substitution is predicted at the training labels' mean), and a
position never mutated in training gives a one-hot-sites model none. Predictions say so, per row: ``unseen``
(substitutions never in a training row), ``unseen_sites`` (positions never mutated in training), ``no_signal``
(the run's features cannot tell this variant from its parent on those substitutions); the interval of a
``no_signal`` row is widened to cover the whole range of training labels.

The rule (``no_signal_rows``), over the parts of the features the model reads: a row is ``no_signal`` when the
one-hot parts give it none AND every other part gives it none.

- One-hot parts give none when the row has a substitution no training row carries (``unseen`` > 0), or, when
  one of them is ``onehot-sites``, a position never mutated in training (``unseen_sites`` > 0). Without a
  one-hot part, this condition holds for every row.
- A profile or scores part gives none where the row's ``covered`` column is 0: the profile does not reach one of
  its substituted sites (or a new residue is a stop), or the scores file lacks the variant
  (``mimo.pipeline.featurizers.profile`` and ``scores``). ``covered`` is per variant, so a multi-mutant with one
  uncovered site counts as uncovered even if its unseen site is the covered one: the mark errs towards the wider
  interval. Where the rows' features are not given, such a part is taken to give none (the same side).
- Any other part (amino-acid properties, language-model embeddings, zero-shot scores) gives every
  substitution some signal: no row is ``no_signal`` with one of them in use.

So on ``onehot-sites+profile``, a variant at a position never mutated in training is ``no_signal`` only when the
profile does not cover that position.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.io.conventions import mutation_format_from
from mimo.pipeline.errors import DataError
from mimo.pipeline.io.variants import MutationFormat, SubstitutionReader

SUPPORT_FILE = "support.json"


def substitution_sets(mutations, parent: str | None, fmt: MutationFormat, n_mutations=None) -> list[set | None]:
    """Each row's substitutions as ``{(0-based position, new residue)}``; None where they cannot be read (no
    parent, or a row given as a full sequence without a mutation string)."""
    out: list[set | None] = []
    counts = [None] * len(mutations) if n_mutations is None else list(n_mutations)
    read = None if parent is None else SubstitutionReader(parent, fmt)
    for text, count in zip(mutations, counts):
        text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text).strip()
        if read is None or (not text and count not in (0, None)):
            out.append(None)
            continue
        try:
            out.append(read(text))
        except DataError:
            out.append(None)
    return out


@dataclass
class TrainingSupport:
    """Substitutions and positions present in a run's training rows, and the range of its training labels."""

    substitutions: set
    sites: set
    label_range: tuple[float, float]
    readable: bool = True  # False when the training rows' substitutions could not be read

    @classmethod
    def from_rows(cls, mutations, n_mutations, labels, parent: str | None, fmt: MutationFormat) -> "TrainingSupport":
        return cls.from_sets(substitution_sets(mutations, parent, fmt, n_mutations), labels)

    @classmethod
    def from_sets(cls, sets: list, labels) -> "TrainingSupport":
        """From ``substitution_sets`` of the training rows, and their labels."""
        readable = len(sets) > 0 and all(s is not None for s in sets)
        subs = set().union(*[s for s in sets if s is not None]) if sets else set()
        labels = np.asarray(labels, np.float64)
        return cls(subs, {p for p, _ in subs}, (float(labels.min()), float(labels.max())), readable)

    def count(self, mutations, n_mutations, parent: str | None, fmt: MutationFormat, sets=None) -> pd.DataFrame:
        """``unseen`` and ``unseen_sites`` per row (missing where not known); ``sets``: the rows'
        ``substitution_sets`` when already computed."""
        sets = substitution_sets(mutations, parent, fmt, n_mutations) if sets is None else sets
        unseen = [None if s is None or not self.readable else len(s - self.substitutions) for s in sets]
        sites = [None if s is None or not self.readable else len({p for p, _ in s} - self.sites) for s in sets]
        return pd.DataFrame({"unseen": pd.array(unseen, dtype="Int64"), "unseen_sites": pd.array(sites, dtype="Int64")})

    def save(self, directory: Path) -> None:
        (directory / SUPPORT_FILE).write_text(json.dumps({
            "substitutions": sorted(f"{p}{a}" for p, a in self.substitutions), "label_range": list(self.label_range),
            "readable": self.readable}) + "\n")

    @classmethod
    def load(cls, directory: Path) -> "TrainingSupport | None":
        path = directory / SUPPORT_FILE
        if not path.exists():
            return None
        try:
            saved = json.loads(path.read_text())
            subs = {(int(t[:-1]), t[-1]) for t in saved["substitutions"]}
            return cls(subs, {p for p, _ in subs}, tuple(map(float, saved["label_range"])), bool(saved["readable"]))
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise DataError(f"cannot read the run's {SUPPORT_FILE} ({type(exc).__name__}: {str(exc)[:120]}); was it "
                            f"edited by hand? Fit the run again", path) from None


SIGNAL_WHERE_COVERED = ("profile", "scores")  # part kinds whose ``covered`` column says where they give signal


def covered_rows(part: dict, features, joined: dict | None) -> np.ndarray | None:
    """The ``covered`` column of ``part`` (a profile or scores part of the ``joined`` manifest that describes the
    columns of ``features``) as booleans; None when it cannot be read."""
    if features is None or joined is None:
        return None
    start = 0
    for candidate in joined.get("parts") or [joined]:
        dim = int(candidate["dim"])
        if candidate.get("features") == part.get("features"):
            columns = list(candidate.get("columns") or ())
            if "covered" not in columns or len(columns) != dim or np.shape(features)[1] < start + dim:
                return None
            return np.asarray(features)[:, start + columns.index("covered")] > 0.5
        start += dim
    return None


def no_signal_rows(manifest: dict, counts: pd.DataFrame, features=None, joined: dict | None = None) -> np.ndarray:
    """Rows that the parts of ``manifest`` (what the model reads) give no signal (see the module's rule).
    ``counts``: ``unseen`` and ``unseen_sites`` per row; ``features``: the rows' feature values, their columns
    described by ``joined`` (default ``manifest``), read for the ``covered`` column of profile and scores parts."""
    parts = manifest.get("parts") or [manifest]
    joined = manifest if joined is None else joined
    n = len(counts)
    onehot = [part for part in parts if part.get("kind") == "onehot"]
    if not onehot:
        none = np.ones(n, bool)
    elif any(str(part.get("model", "")).removeprefix("onehot-") == "sites" for part in onehot):
        none = (counts["unseen_sites"].fillna(0) > 0).to_numpy()  # a position's own column: any substitution there
    else:  # substitution columns only: every unseen substitution is invisible
        none = (counts["unseen"].fillna(0) > 0).to_numpy()
    for part in parts:
        if part.get("kind") == "onehot":
            continue
        if part.get("kind") not in SIGNAL_WHERE_COVERED:
            return np.zeros(n, bool)
        covered = covered_rows(part, features, joined)
        if covered is not None:
            none &= ~covered
    return none


def mark_support(table: pd.DataFrame, support: TrainingSupport, manifest: dict, mutations, n_mutations,
                 parent: str | None, fmt: MutationFormat, sets=None, features=None,
                 joined: dict | None = None) -> pd.DataFrame:
    """Add ``unseen``, ``unseen_sites``, ``no_signal`` to a predictions table (same row order as ``mutations``)
    and widen the interval (``lower``/``upper``, when present) of ``no_signal`` rows to the training labels' range.
    ``manifest``: the features the model reads; ``features``: the rows' feature values (same order), whose columns
    ``joined`` describes (default ``manifest``): a profile's or scores file's ``covered`` column is read there."""
    counts = support.count(mutations, n_mutations, parent, fmt, sets)
    table = table.reset_index(drop=True)
    table["unseen"], table["unseen_sites"] = counts["unseen"], counts["unseen_sites"]
    no_signal = no_signal_rows(manifest, counts, features, joined)
    table["no_signal"] = no_signal
    if "lower" in table and no_signal.any():
        low, high = support.label_range
        table.loc[no_signal, "lower"] = np.minimum(table.loc[no_signal, "lower"], low)
        table.loc[no_signal, "upper"] = np.maximum(table.loc[no_signal, "upper"], high)
    return table
