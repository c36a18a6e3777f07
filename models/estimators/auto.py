"""`mimo fit auto`: choose the features and the head on validation data, within a time budget.

``AutoRegressor`` is an estimator like the others: it receives the columns of several cached featurizers side
by side (``blocks`` names each one's columns), scores every candidate (a subset of the blocks and a head with its
settings) by inner k-fold cross-validation over train and valid together (or, with at least ``min_valid``
validation rows, on those), chooses by the one-standard-error rule (``one_se_choice``: the simplest candidate
whose per-fold Spearman is within one standard error of the best's, the error of the paired per-fold
differences), fits it and predicts with it: the chosen head's own intervals (``predicts_std``) included. It never
sees test rows: `fit_run` and `fit_cv` give it only train and valid.

``budget`` bounds the whole fit: candidates are tried while the time left keeps room for fitting the chosen one,
and ``stopped_early_`` says when candidates were left (``budget_for`` shares a command's budget among the fits of
a cross-validation).

The heads (``HEAD_GRID``): ridge, global epistasis, MIMO, an MLP, and last the Gaussian process (``gp``), which
gets a kernel per block of the candidate's own columns (``subset_blocks``: a profile's columns by name, for
Kermut's site kernel and the prior mean). Candidates are tried while the budget lasts, each head first on its
richest subset (ridge and the GP first: ``FIRST_ROUND``), then the grid in order; a head not yet timed is
expected to take the others' longest time plus, for the GP, ``gp_seconds``.
"""
from __future__ import annotations

import itertools
import time
import numpy as np

from mimo.models.estimators.base import Estimator, FitData, Param
from mimo.models.data import read_blocks
from mimo.models.metrics import spearman
from mimo.models.estimators.registry import head_class
from mimo.pipeline.runtime import threads

# heads tried on every feature subset, cheapest first (the GP: 5-10 s a fit at 1,000 rows, the others under
# 1 s on DNJA1's 730 training rows); each with the settings that matter most
HEAD_GRID = (
    ("ridge", {}),
    ("ge", {}),
    ("mimo", {"routing": "random"}),
    ("mlp", {}),
    ("mimo", {"routing": "random", "output": "monotone"}),
    ("gp", {}),
)
FIRST_ROUND = ("ridge", "gp")  # heads tried first (on all blocks), before the others' first candidates


def gp_seconds(rows: int) -> float:
    """A guess of one GP fit's seconds on ``rows`` training rows with its default 100 steps, on 2 idle cores
    (``bench.gp_speed``: 11.7 s at 1,000 rows; the hyperparameters are fitted on at most 1,000 rows, each step
    growing as rows^1.5 below that) plus 2 s for gpytorch's first load."""
    return 2.0 + 12.0 * (min(rows, 1000) / 1000) ** 1.5


LOCAL_KINDS = ("onehot", "aaprops")  # blocks that describe each substitution on its own
ANNOTATION_KINDS = ("profile", "scores", "zeroshot")  # what a model outside the data says of each variant
# The GP on every feature subset ("all") or only on those with a one-hot block ("onehot"). Measured on DNJA1
# (onehot-sites+aaprops+profile, 3 fold schemes x 6 auto fits; bench/results/cpu-auto-gp.md): on the inner
# validation folds the best GP without one-hot was at most 0.010 above the best GP with it (median -0.002), while
# it costs 3 of 7 GP fits: "onehot".
GP_SUBSETS = "onehot"


def feature_subsets(blocks) -> list[tuple[str, ...]]:
    """The feature subsets tried: each block alone; each one-hot or aaprops block joined to each other block; pairs
    of those; all of them joined to each other block (onehot-sites+aaprops+profile); all of them with every
    profile, scores and zero-shot block, and those blocks together (profile+scores); every block. ``blocks``:
    (name, kind, ...) of each featurizer; each subset lists its blocks in their order."""
    names = [str(b[0]) for b in blocks]
    local = [str(b[0]) for b in blocks if b[1] in LOCAL_KINDS]
    others = [str(b[0]) for b in blocks if b[1] not in LOCAL_KINDS]
    annotations = [str(b[0]) for b in blocks if b[1] in ANNOTATION_KINDS]
    subsets = [(name,) for name in names]
    subsets += list(itertools.product(local, others))
    subsets += list(itertools.combinations(local, 2))
    if len(local) > 1:
        subsets += [(*local, other) for other in others]
    if len(annotations) > 1:
        subsets += [(*local, *annotations), tuple(annotations)]
    if len(names) > 1:
        subsets.append(tuple(names))
    ordered = [tuple(sorted(set(subset), key=names.index)) for subset in subsets]
    return [subset for subset in dict.fromkeys(ordered) if subset]


def candidate_grid(blocks, heads=HEAD_GRID, gp_subsets: str | None = None) -> list[dict]:
    """Every head on every ``feature_subsets(blocks)`` (the GP: only on subsets with a one-hot block when
    ``gp_subsets`` is "onehot"; default ``GP_SUBSETS``), head by head in ``heads``' order. ``blocks``: (name,
    kind, ...) of each featurizer. The GP takes the subsets with the most blocks first: it weighs its blocks'
    kernels by marginal likelihood, so all of them together is its likeliest best, the one to try while the
    budget lasts."""
    gp_subsets = GP_SUBSETS if gp_subsets is None else gp_subsets
    if gp_subsets not in ("all", "onehot"):
        raise ValueError(f"gp_subsets is 'all' or 'onehot', not {gp_subsets!r}")
    kinds = {str(b[0]): b[1] for b in blocks}
    subsets = feature_subsets(blocks)
    grid = []
    for head, params in heads:
        for subset in (sorted(subsets, key=len, reverse=True) if head == "gp" else subsets):
            if head == "gp" and gp_subsets == "onehot" and not any(kinds[n] == "onehot" for n in subset):
                continue
            grid.append({"features": list(subset), "head": head, "params": dict(params)})
    return grid


def subset_blocks(blocks, features: list[str]) -> tuple:
    """The (name, kind, first column, end column, column names) of ``features`` side by side, as a head that
    reads only their columns (in that order) sees them: the offsets counted again from 0."""
    by_name = {str(b[0]): b for b in read_blocks(blocks)}
    out, start = [], 0
    for name in features:
        _, kind, first, end, columns = by_name[name]
        out.append((name, kind, start, start + end - first, columns))
        start += end - first
    return tuple(out)


def budget_for(total: float, folds: int | None = None) -> float:
    """Seconds of ``budget`` for each ``AutoRegressor`` fit when a command of ``total`` seconds fits it
    ``folds + 1`` times (`fit_cv`: one per held-out fold and the saved model), or once (``folds`` None)."""
    return float(total) if not folds else float(total) / (int(folds) + 1)


def simplicity(candidate: dict, order: int = 0) -> tuple:
    """How simple a candidate is, smallest first: its head's place in ``HEAD_GRID`` (ridge, ge, MIMO, MLP, the
    GP), then its number of blocks, then its place in the candidates (``order``)."""
    entries = [(head, params) for head, params in HEAD_GRID]
    key = (candidate["head"], candidate["params"])
    rank = entries.index(key) if key in entries else next(
        (i for i, (head, _) in enumerate(entries) if head == candidate["head"]), len(entries))
    return rank, len(candidate["features"]), order


def one_se_choice(board: list[dict]) -> dict:
    """The one-standard-error rule over scored candidates (entries with ``fold_spearman``, one figure per inner
    fold, the same folds for all): the best mean, then the simplest candidate (``simplicity``) whose mean is
    below it by at most the standard error of their paired per-fold differences. With one figure per candidate
    (a validation split) the best one."""
    scored = [e for e in board if e.get("valid_spearman") is not None]
    best = max(scored, key=lambda e: e["valid_spearman"])
    folds = np.asarray(best.get("fold_spearman") or [best["valid_spearman"]], np.float64)
    if len(folds) < 2:
        return best
    near = []
    for order, entry in enumerate(board):
        if entry.get("valid_spearman") is None:
            continue
        diff = folds - np.asarray(entry["fold_spearman"], np.float64)
        if diff.mean() <= diff.std(ddof=1) / np.sqrt(len(diff)):
            near.append((simplicity(entry, order), entry))
    return min(near, key=lambda pair: pair[0])[1]


class _OverBudget(Exception):
    """A candidate's inner cross-validation would run past the budget."""


class AutoRegressor(Estimator):
    """The choice among ``candidates`` (default: ``candidate_grid`` over ``blocks``) by inner cross-validation
    and the one-standard-error rule (``one_se_choice``); with at least ``min_valid`` validation rows (default
    2,000: a Spearman's standard error near 0.01 there), the best on those rows. One candidate is fitted
    without scoring (the refit of a choice made).

    Fitted attributes: ``chosen_`` (features, head, params of the chosen candidate), ``model_`` (that head,
    fitted; its ``predict(X, return_std=True)`` is this estimator's when it ``predicts_std``), ``columns_`` (the
    columns of X it reads), ``leaderboard_`` (every candidate, best first, with its per-fold Spearman),
    ``selection_`` (how they were scored), ``stopped_early_`` (why candidates were left untried, or None),
    ``seconds_``, ``n_features_in_``, ``validation_rows_`` (rows carved for validation when ``fit`` got none,
    else None). ``AutoRegressor()`` without ``blocks`` cannot be fitted;
    ``blocks``: (name, kind, first column, end column, column names or None) of each featurizer, as ``blocks_of``
    reads them from a features manifest (4-tuples, without the names, from runs saved before, still load).
    """

    name = "auto"
    _param_specs = {
        "budget": Param("float", "Seconds for the whole fit: candidates are tried while the time left keeps room "
                        "to fit the chosen one (under --cv, shared among the folds' fits).", low=0, low_open=True),
        "min_valid": Param("int", "With fewer validation rows than this, candidates are scored by inner k-fold "
                           "cross-validation over train and valid together (else on the validation rows).", low=0),
        "inner_folds": Param("int", "Folds of that inner cross-validation.", low=2),
        "seed": Param("int", "Seed of every candidate and of the inner folds.", low=0),
        "device": Param("str", "cpu, cuda, ... (auto: the GPU when there is one)."),
        "heads": Param("str", "Heads tried, comma-separated (of ridge, ge, mimo, mlp, gp), or all."),
    }

    def __init__(self, *, blocks: tuple = (), candidates: tuple = (), budget: float = 120.0, min_valid: int = 2000,
                 inner_folds: int = 5, seed: int = 0, device: str = "auto", heads: str = "all",
                 validation_fraction: float = 0.1, threads: int | None = None):
        self._store(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        self._heads()

    def _heads(self) -> tuple:
        """The entries of ``HEAD_GRID`` that ``heads`` names."""
        if self.heads == "all":
            return HEAD_GRID
        known = list(dict.fromkeys(head for head, _ in HEAD_GRID))
        names = [name.strip() for name in str(self.heads).split(",") if name.strip()]
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise ValueError(f"heads (--heads) names heads among {', '.join(known)}, comma-separated, or all; "
                             f"not {self.heads!r}")
        return tuple(entry for entry in HEAD_GRID if entry[0] in names)

    def _candidates(self) -> list[dict]:
        """``candidates`` in their order; else ``candidate_grid``'s, with a first round of each head on its
        richest subset (all blocks; the GP's first), ridge and the GP (``FIRST_ROUND``) ahead of the others, so
        that a short budget still tries every head once."""
        if self.candidates:
            return [dict(c) for c in self.candidates]
        grid = candidate_grid(read_blocks(self.blocks), self._heads())
        first = {}
        for index, candidate in enumerate(grid):
            key = (candidate["head"], repr(sorted(candidate["params"].items())))
            if key not in first or len(candidate["features"]) > len(grid[first[key]]["features"]):
                first[key] = index
        # ridge, then the GP (the best single head on the shared assays from 25 rows up, bench/results/
        # cpu-auto-heads.md; skipped when its first guess does not fit the budget), then the others
        ahead = sorted(first.values(), key=lambda i: (FIRST_ROUND.index(grid[i]["head"])
                                                      if grid[i]["head"] in FIRST_ROUND else len(FIRST_ROUND), i))
        return [grid[i] for i in ahead] + [c for i, c in enumerate(grid) if i not in set(ahead)]

    def _columns(self, features: list[str]) -> np.ndarray:
        spans = {name: (start, stop) for name, _, start, stop, _ in read_blocks(self.blocks)}
        missing = [f for f in features if f not in spans]
        if missing:
            raise ValueError(f"candidate features {missing} are not among the blocks {list(spans)}")
        return np.concatenate([np.arange(*spans[f]) for f in features])

    def _make(self, candidate: dict, **extra) -> Estimator:
        cls = head_class(candidate["head"])
        params = dict(candidate["params"])
        defaults = cls.param_defaults()
        for name, value in (("seed", self.seed), ("device", self.device)):
            if name in defaults and name not in params:
                params[name] = value
        if "blocks" in defaults and "blocks" not in params:  # the GP: a kernel per block of the candidate's columns
            params["blocks"] = subset_blocks(self.blocks, candidate["features"])
        return cls(**{**params, **extra})

    def _inner(self, y_valid) -> bool:
        """Whether candidates are scored by inner cross-validation (fewer than ``min_valid`` validation rows)."""
        return len(y_valid) < self.min_valid

    def _first_guess(self, head: str, rows: int, valid_rows: int) -> float:
        """Seconds a head not yet timed may take beyond the others' (the GP: ``gp_seconds`` per fit), so that its
        first candidate does not overrun the budget."""
        if head != "gp":
            return 0.0
        if valid_rows >= self.min_valid:
            return gp_seconds(rows)
        fold_rows = (rows + valid_rows) * (self.inner_folds - 2) // self.inner_folds
        return self.inner_folds * gp_seconds(fold_rows)

    def _score(self, candidate: dict, X, y, X_valid, y_valid, counts, counts_valid,
               deadline: float | None = None) -> tuple[float, list[float]]:
        """The candidate's Spearman and its per-fold figures: on the validation rows (one figure), or under
        inner cross-validation the pooled out-of-fold Spearman and each inner fold's; ``_OverBudget`` once the
        fits left would end after ``deadline`` (a ``time.perf_counter`` value) at the pace of those done."""
        cols = self._columns(candidate["features"])
        if not self._inner(y_valid):
            model = self._make(candidate).fit(X[:, cols], y, X_valid[:, cols], y_valid, counts=counts,
                                              counts_valid=counts_valid)
            score = spearman(y_valid, model.predict(X_valid[:, cols]))
            score = -1.0 if score is None else score
            return score, [score]
        # inner k-fold cross-validation over train and valid together: fold k held out, fold k+1 its validation
        X_all, y_all = np.vstack([X, X_valid])[:, cols], np.concatenate([y, y_valid])
        c_all = None if counts is None else np.concatenate([counts, counts_valid])
        fold = np.random.default_rng(self.seed).permutation(len(y_all)) % self.inner_folds
        pooled, per_fold = np.empty(len(y_all)), []
        began = time.perf_counter()
        for k in range(self.inner_folds):
            if k and deadline is not None and time.perf_counter() + (time.perf_counter() - began) / k * (
                    self.inner_folds - k) > deadline:
                raise _OverBudget
            test, valid = fold == k, fold == (k + 1) % self.inner_folds
            train = ~test & ~valid
            model = self._make(candidate).fit(X_all[train], y_all[train], X_all[valid], y_all[valid],
                                              counts=None if c_all is None else c_all[train],
                                              counts_valid=None if c_all is None else c_all[valid])
            pooled[test] = model.predict(X_all[test])
            rho = spearman(y_all[test], pooled[test])
            per_fold.append(-1.0 if rho is None else rho)
        score = spearman(y_all, pooled)
        return (-1.0 if score is None else score), per_fold

    def _fit(self, data: FitData) -> None:
        if not self.blocks:  # (the CLI sets them from the data once loaded)
            raise ValueError("AutoRegressor needs blocks: (name, kind, first column, end column[, column names]) "
                             "of each featurizer")
        y, y_valid, counts, counts_valid, log = data.y, data.y_valid, data.counts, data.counts_valid, data.log
        X, X_valid = np.asarray(data.X, np.float32), np.asarray(data.X_valid, np.float32)
        start = time.perf_counter()
        candidates = self._candidates()
        fits = self.inner_folds if self._inner(y_valid) else 1  # fits per candidate scored
        board = []
        if len(candidates) == 1:  # nothing to choose (a refit with the choice made): no scoring, one fit
            board.append({**candidates[0], "valid_spearman": None, "seconds": None, "skipped": "the only candidate"})
        for candidate in candidates if len(candidates) > 1 else ():
            elapsed = time.perf_counter() - start
            scored = [e for e in board if e["valid_spearman"] is not None]
            # keep time to fit the choice so far once more, on all the rows (a quarter more than one of its fits)
            reserve = 1.25 * one_se_choice(board)["seconds"] / fits if scored else 0.0
            same = [e["seconds"] for e in board if e["head"] == candidate["head"] and e["seconds"] is not None]
            expected = max(same) if same else max([e["seconds"] for e in scored] or [0.0]) + self._first_guess(
                candidate["head"], len(y), len(y_valid))
            if scored and elapsed + expected + reserve > self.budget:
                board.append({**candidate, "valid_spearman": None, "seconds": None, "skipped": "over the budget"})
                continue
            began = time.perf_counter()
            deadline = start + self.budget - reserve if scored else None
            folds = []
            try:
                score, folds = self._score(candidate, X, y, X_valid, y_valid, counts, counts_valid, deadline)
                problem = None
            except _OverBudget:  # its inner folds would not end within the budget: left after the first ones
                score, problem = None, "over the budget"
            except ValueError as exc:  # e.g. a head that cannot use these features
                score, problem = None, str(exc)
            entry = {**candidate, "valid_spearman": score, "fold_spearman": folds,
                     "seconds": round(time.perf_counter() - began, 3)}
            if problem:
                entry["skipped"] = problem
            board.append(entry)
            if log is not None:
                shown = "n/a" if score is None else f"{score:.3f}"
                log(f"auto: {describe(candidate)}: valid Spearman {shown} ({entry['seconds']:.1f}s)")
        scored = [e for e in board if e["valid_spearman"] is not None]
        if len(candidates) > 1 and not scored:
            raise ValueError("no candidate could be fitted: " + "; ".join(e.get("skipped", "") for e in board))
        best = one_se_choice(board) if scored else board[0]
        self.chosen_ = {k: best[k] for k in ("features", "head", "params")}
        self.leaderboard_ = sorted(board, key=lambda e: -np.inf if e["valid_spearman"] is None
                                   else e["valid_spearman"], reverse=True)
        left = sum(e.get("skipped") == "over the budget" for e in board)
        self.stopped_early_ = (f"the budget of {self.budget:g}s ran out: {len(scored)} of {len(candidates)} "
                               f"candidates scored, {left} left untried") if left else None
        if len(candidates) == 1:
            self.selection_ = "none (one candidate)"
        elif self._inner(y_valid):
            self.selection_ = (f"inner {self.inner_folds}-fold cross-validation, one-standard-error rule (fewer "
                               f"than {self.min_valid} validation rows)")
        else:
            self.selection_ = "validation split"
        self.columns_ = self._columns(self.chosen_["features"])
        self.model_ = self._make(self.chosen_).fit(X[:, self.columns_], y, X_valid[:, self.columns_], y_valid,
                                                   counts=counts, counts_valid=counts_valid)
        self.seconds_ = time.perf_counter() - start

    @property
    def predicts_std(self) -> bool:
        """Whether the chosen head gives a predictive std (the GP): ``predict(X, return_std=True)`` then
        returns it, and runs calibrate their intervals on it, as for that head fitted alone."""
        return bool(getattr(getattr(self, "model_", None), "predicts_std", False))

    def predict(self, X, return_std: bool = False):
        """The chosen head's predictions; with ``return_std`` (a head that ``predicts_std``), also its std."""
        if not return_std:
            return super().predict(X)
        if not self.predicts_std:
            raise ValueError(f"the chosen head ({self.chosen_['head']}) gives no predictive std")
        X = self._predict_input(X)
        with threads.limited(self.threads):
            return self.model_.predict(np.asarray(X, np.float32)[:, self.columns_], return_std=True)

    def _members(self, X) -> np.ndarray:
        return self.model_.predict_members(np.asarray(X, np.float32)[:, self.columns_])

    # The chosen head's own scale (the GP models its labels' normal scores): runs make its intervals there, as for
    # that head fitted alone. Each is an AttributeError when the chosen head has none (getattr(auto, ..., None)).
    @property
    def predict_latent(self):
        """The chosen head's ``predict_latent`` on this model's columns (only when it has one)."""
        latent = getattr(self.model_, "predict_latent")
        return lambda X: latent(np.asarray(self._predict_input(X), np.float32)[:, self.columns_])

    @property
    def to_latent(self):
        """The chosen head's ``to_latent`` (only when it has one)."""
        return getattr(self.model_, "to_latent")

    @property
    def to_labels(self):
        """The chosen head's ``to_labels`` (only when it has one)."""
        return getattr(self.model_, "to_labels")

    def used_manifest(self, manifest: dict) -> dict:
        """The part of a joined features manifest that the chosen candidate reads (what the model can see)."""
        parts = [p for p in (manifest.get("parts") or [manifest]) if p["features"] in self.chosen_["features"]]
        if len(parts) == 1:
            return parts[0]
        return {**manifest, "features": "+".join(p["features"] for p in parts), "parts": parts}

    @property
    def groups_(self):
        return getattr(self.model_, "groups_", None)

    def refit_params(self) -> dict:
        chosen = dict(self.chosen_)
        chosen["params"] = {**chosen["params"], **self.model_.refit_params()}
        return {"candidates": (chosen,)}

    def run_summary(self) -> dict:
        return {"auto": {"chosen": self.chosen_, "chosen_params": self.model_.get_params(),
                         "selection": self.selection_, "budget_seconds": self.budget,
                         "seconds": round(getattr(self, "seconds_", 0.0), 3),
                         "stopped_early": getattr(self, "stopped_early_", None),
                         "candidates": self.leaderboard_}, **self.model_.run_summary()}

    def fitted_state(self) -> dict:
        return {"chosen": {"features": self.chosen_["features"], "head": self.chosen_["head"]},
                "chosen_params": self.model_.get_params(), "model": self.model_.fitted_state(),
                "columns": self.columns_, "n_features": self.n_features_in_}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        chosen = state["chosen"]
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in state["chosen_params"].items()}
        self.chosen_ = {"features": list(chosen["features"]), "head": chosen["head"], "params": params}
        self.columns_ = np.asarray(state["columns"], dtype=np.int64)
        if "n_features" in state:  # not recorded by earlier versions: predict then does not check the width
            self.n_features_in_ = int(state["n_features"])
        self.model_ = head_class(chosen["head"])(**params)
        self.model_.load_fitted_state(state["model"], device)


def describe(candidate: dict) -> str:
    """``head params on features``; a dict of fitted values carried to a refit (the GP's ``start``) as ``(fitted)``."""
    params = " ".join(f"{k}={'(fitted)' if isinstance(v, dict) else v}" for k, v in candidate["params"].items())
    return f"{candidate['head']}{(' ' + params) if params else ''} on {'+'.join(candidate['features'])}"


def blocks_of(manifest: dict) -> tuple:
    """(name, kind, first column, end column, column names or None) of each featurizer in a (joined) features
    manifest: ``mimo.models.data.feature_blocks``, whose column names the GP reads (one-hot positions, a
    profile's columns for Kermut's site kernel, a score for the prior mean)."""
    from mimo.models.data import feature_blocks

    return feature_blocks(manifest)
