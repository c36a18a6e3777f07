"""Are the variants asked about drawn like the run's training rows? A domain classifier says, per row.

A run's intervals are calibrated on validation rows drawn like its training rows. Rows that differ from them
(a label shift: asking about the bright half when the dark half was measured) are missed by every interval
method at any finite width (docs/benchmarks.md, "Intervals under shift"). What tells such rows apart without
labels is a classifier of training rows against the rows asked about: a logistic regression on the run's
features and mutation count (standardised; feature columns constant over the training rows left out: those
are positions or substitutions no training row carries), fitted out of fold on a subsample of each side.
Rows at positions no training row mutates (``unseen_sites``/``no_signal``, models/runs/support.py) are left to
those columns: the absence of every trained site's column tells them apart whatever else they are, and
intervals hold there (bench/label_shift.py's held-out positions).

Per row, ``shift_p`` is a conformal p-value: the share of (held-out) training rows that the classifier finds at
least as query-like as this row. When the rows asked about are drawn like the training rows it is uniform on
(0, 1], so ``unlike_training`` (``shift_p`` below ``ALPHA``) fires on about ``ALPHA`` of them by chance alone,
whatever the classifier; the run-level ``auc`` says how separable the two sets are. Cost: the classifier sees
at most ``max_rows`` rows of each side; any further row costs one dot product.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.01  # shift_p below this: unlike_training (chosen on bench/label_shift.py's splits, the same ones its
#                flag rates are reported on in docs/benchmarks.md: not a held-out choice)
MIN_QUERY = 10  # fewer rows asked about: too few to learn how they differ (the check is not made)
MAX_ROWS = 3000  # rows of each side the classifier is fitted on
FOLDS = 5
C = 0.01


@dataclass
class ShiftCheck:
    """A fitted check: fold models over the kept columns, and the held-out scores of the training rows."""

    columns: np.ndarray  # indices of the feature columns used
    centre: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (folds, columns)
    intercept: np.ndarray  # (folds,)
    reference: np.ndarray  # sorted held-out scores of the training rows (higher: more query-like)
    auc: float  # out of fold, training rows against the rows asked about (sampled)
    n_train: int
    n_query: int

    def scores(self, X: np.ndarray, folds: np.ndarray | None = None) -> np.ndarray:
        """Decision values of rows no fold model saw (row i by fold model ``folds[i]``, default i mod folds)."""
        X = np.asarray(X)
        folds = np.arange(len(X)) % len(self.intercept) if folds is None else folds
        Z = (X[:, self.columns].astype(np.float64) - self.centre) / self.scale
        return np.einsum("ij,ij->i", Z, self.coef[folds]) + self.intercept[folds]

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """(1 + training rows scoring at least as high) / (1 + training rows): uniform under no shift."""
        above = len(self.reference) - np.searchsorted(self.reference, scores, side="left")
        return (1 + above) / (1 + len(self.reference))


def _sample(n: int, size: int, rng) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


def with_counts(X: np.ndarray, counts) -> np.ndarray:
    """The features and, last, the mutation count (kept even where every training row has the same count: a
    run on singles asked about triples differs there first)."""
    return np.hstack([np.asarray(X, np.float32), np.asarray(counts, np.float32).reshape(-1, 1)])


def fit_shift_check(train_X: np.ndarray, query_X: np.ndarray, max_rows: int = MAX_ROWS, folds: int = FOLDS,
                    seed: int = 0, all_columns: bool = False,
                    c: float = C) -> tuple[ShiftCheck, np.ndarray, np.ndarray]:
    """A check of ``query_X`` against ``train_X`` (``with_counts``: the last column is the mutation count):
    (check, sampled query rows' indices, their held-out scores). Each side is subsampled to ``max_rows``; each
    fold model is fitted without one fold of either side. ``all_columns``: keep the columns constant over the
    training rows too (the bench compares)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    t, q = _sample(len(train_X), max_rows, rng), _sample(len(query_X), max_rows, rng)
    A, B = np.asarray(train_X[t], np.float64), np.asarray(query_X[q], np.float64)
    centre, spread = A.mean(axis=0), A.std(axis=0)
    varies = spread > 1e-9 * np.maximum(1.0, np.abs(centre))
    varies[-1] = True  # the mutation count
    columns = np.arange(A.shape[1]) if all_columns else np.flatnonzero(varies)
    centre, scale = centre[columns], np.where(spread[columns] > 1e-12, spread[columns], 1.0)
    X = np.vstack([A[:, columns], B[:, columns]])
    y = np.r_[np.zeros(len(A)), np.ones(len(B))]
    k = max(2, min(folds, len(B), len(A)))
    fold = np.r_[rng.permutation(np.arange(len(A)) % k), rng.permutation(np.arange(len(B)) % k)]
    Z = (X - centre) / scale
    coef, intercept, held = np.zeros((k, len(columns))), np.zeros(k), np.zeros(len(y))
    for f in range(k):
        fitted = LogisticRegression(C=c, class_weight="balanced", max_iter=500).fit(Z[fold != f], y[fold != f])
        coef[f], intercept[f] = fitted.coef_[0], fitted.intercept_[0]
        held[fold == f] = Z[fold == f] @ coef[f] + intercept[f]
    auc = float(roc_auc_score(y, held))
    check = ShiftCheck(columns, centre, scale, coef, intercept, np.sort(held[y == 0]), auc, len(train_X),
                       len(query_X))
    return check, q, held[y == 1]


def shift_scores(check: ShiftCheck, query_X: np.ndarray, sampled: np.ndarray, held: np.ndarray,
                 folds: np.ndarray | None = None) -> np.ndarray:
    """Scores of every row of ``query_X``: held-out ones for the sampled rows, fold models' for the rest."""
    out = np.empty(len(query_X))
    rest = np.setdiff1d(np.arange(len(query_X)), sampled)
    out[sampled] = held
    if len(rest):
        out[rest] = check.scores(query_X[rest], None if folds is None else folds[rest])
    return out


@dataclass
class ShiftReport:
    """The check over the rows asked about: per row ``shift_p`` and ``unlike_training`` (NaN/None where it was
    not made: every row when ``reason`` says why, or rows ``skip`` left to unseen_sites/no_signal)."""

    shift_p: np.ndarray | None
    unlike: np.ndarray | None  # over the rows checked
    auc: float | None
    n: int  # rows asked about
    reason: str | None = None  # why no check was made
    alpha: float = ALPHA
    checked: np.ndarray | None = None  # rows checked (default: all)

    @property
    def n_checked(self) -> int:
        return 0 if self.unlike is None else len(self.unlike)

    @property
    def flagged(self) -> int:
        return 0 if self.unlike is None else int(self.unlike.sum())

    def expected(self) -> float:
        """How many rows ``unlike_training`` marks by chance alone when none differ."""
        return self.alpha * self.n_checked

    def warns(self) -> bool:
        """Many more rows flagged than chance gives (the AUC alone also fires where intervals hold: positions
        held out, docs/benchmarks.md)."""
        return self.unlike is not None and self.flagged > max(3.0, 3 * self.expected())

    def warning(self, what: str = "variants") -> str | None:
        """One line when the rows asked about differ from the training rows, else None."""
        if not self.warns():
            return None
        rows = f"{self.n} {what}" if self.n_checked == self.n else \
            f"the {self.n_checked} {what} at positions the training rows mutate (of {self.n}; the rest: unseen_sites)"
        return (f"{self.flagged} of {rows} are unlike the run's training rows (column unlike_training; "
                f"about {self.expected():.0f} by chance; a classifier tells the {what} from the training rows with "
                f"AUC {self.auc:.2f}): these {what} are not drawn like the measured ones, the run's intervals were "
                f"calibrated on variants that are and may miss flagged and unflagged rows alike, and a prediction "
                f"above the measured labels is a guess to test, not evidence")

    def columns(self) -> dict:
        """``unlike_training`` (None where not checked) and ``shift_p`` (NaN there) over all rows."""
        flag, p = np.full(self.n, None, dtype=object), np.full(self.n, np.nan)
        if self.unlike is not None:
            rows = np.arange(self.n) if self.checked is None else self.checked
            flag[rows], p[rows] = self.unlike, self.shift_p
        return {"unlike_training": flag, "shift_p": p}


def check_rows(train_X: np.ndarray, query_X: np.ndarray, max_rows: int = MAX_ROWS, seed: int = 0,
               alpha: float = ALPHA, all_columns: bool = False, skip: np.ndarray | None = None,
               c: float = C) -> ShiftReport:
    """``unlike_training`` and ``shift_p`` for the rows of ``query_X`` against the training rows ``train_X``;
    rows where ``skip`` is true (at positions no training row mutates: the absence of every training site's
    column tells them apart, and unseen_sites already says so) are neither fitted on nor checked."""
    return _checked(train_X, query_X, max_rows, seed, alpha, all_columns, skip, c)[1]


def _checked(train_X, query_X, max_rows, seed, alpha=ALPHA, all_columns=False, skip=None,
             c=C) -> tuple[ShiftCheck | None, ShiftReport]:
    n = len(query_X)
    rows = np.arange(n) if skip is None else np.flatnonzero(~np.asarray(skip, bool))
    if len(rows) < MIN_QUERY:
        at = "" if len(rows) == n else " at positions the training rows mutate (the rest: column unseen_sites)"
        return None, ShiftReport(None, None, None, n, f"{len(rows)} rows{at} are too few to tell how they differ from "
                                                      f"the training rows (at least {MIN_QUERY})", alpha)
    need = int(np.ceil(1 / alpha))  # a p-value below alpha needs this many training rows to rank against
    if len(train_X) < need:
        return None, ShiftReport(None, None, None, n, f"the run has only {len(train_X)} training rows to check "
                                                      f"against (at least {need})", alpha)
    query = query_X[rows]
    check, sampled, held = fit_shift_check(train_X, query, max_rows, seed=seed, all_columns=all_columns, c=c)
    p = check.p_values(shift_scores(check, query, sampled, held))
    return check, ShiftReport(p, p < alpha, check.auc, n, None, alpha, None if skip is None else rows)


def left_to_support(table) -> np.ndarray | None:
    """Rows a predictions table already marks (``unseen_sites`` > 0 or ``no_signal``): the ``skip`` of
    ``check_rows``; None when the table has neither column."""
    if "unseen_sites" not in table and "no_signal" not in table:
        return None
    skip = np.zeros(len(table), bool)
    if "unseen_sites" in table:
        skip |= np.asarray(table["unseen_sites"].fillna(0), np.float64) > 0
    if "no_signal" in table:
        skip |= np.asarray(table["no_signal"], bool)
    return skip


class StreamCheck:
    """The check over rows that come in chunks (a scan, candidates): fitted on a sample of the first chunk
    against the training rows, every row of every chunk scored as it comes (p-values stay valid for any
    chunk; the classifier knows only how the first chunk differs from the training rows)."""

    def __init__(self, train_X: np.ndarray, max_rows: int = MAX_ROWS, seed: int = 0):
        self.train_X, self.max_rows, self.seed = train_X, max_rows, seed
        self.check: ShiftCheck | None = None
        self.reason: str | None = None
        self.n = self.n_checked = self.flagged = 0

    def __call__(self, X: np.ndarray, skip: np.ndarray | None = None) -> dict:
        """``unlike_training`` and ``shift_p`` of these rows (None/NaN where the check cannot be made)."""
        if self.check is None and self.reason is None:
            self.check, report = _checked(self.train_X, X, self.max_rows, self.seed, skip=skip)
            self.reason = report.reason
        else:
            rows = np.arange(len(X)) if skip is None else np.flatnonzero(~np.asarray(skip, bool))
            if self.check is None:
                report = ShiftReport(None, None, None, len(X), self.reason)
            else:
                p = self.check.p_values(self.check.scores(X[rows]))
                report = ShiftReport(p, p < ALPHA, self.check.auc, len(X), None, ALPHA, rows)
        self.n, self.n_checked, self.flagged = self.n + len(X), self.n_checked + report.n_checked, \
            self.flagged + report.flagged
        return report.columns()

    def report(self) -> ShiftReport:
        """What the rows seen so far add up to (per-row arrays left out)."""
        if self.check is None:
            return ShiftReport(None, None, None, self.n, self.reason)
        unlike = np.arange(self.n_checked) < self.flagged
        return ShiftReport(np.ones(self.n_checked), unlike, self.check.auc, self.n, None, ALPHA,
                           np.arange(self.n_checked))
