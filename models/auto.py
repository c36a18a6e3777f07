"""`mimo fit auto`: choose the features and the head on validation data, within a time budget.

``AutoRegressor`` is an estimator like the others: it receives the columns of several cached featurizers side
by side (``blocks`` names each one's columns), fits every candidate (a subset of the blocks and a head with its
settings) on the training rows, scores it on the validation rows (or, when there are fewer than
``min_valid`` of them, by inner k-fold cross-validation over train and valid together), keeps the best, and
predicts with it. It never sees test rows: `fit_run` and `fit_cv` give it only train and valid.
"""
from __future__ import annotations

import itertools
import time
import numpy as np

from .base import Estimator, FitData, Param
from .metrics import spearman
from .registry import head_class

# heads tried on every feature subset, cheapest first; each with the settings that matter most
HEAD_GRID = (
    ("ridge", {}),
    ("ge", {}),
    ("mimo", {"routing": "random"}),
    ("mlp", {}),
    ("mimo", {"routing": "random", "output": "monotone"}),
)


def candidate_grid(blocks: list[tuple[str, str]], heads=HEAD_GRID) -> list[dict]:
    """Every head on: each block alone, all blocks together, and each one-hot block joined to each other block.
    ``blocks``: (name, kind) of each featurizer."""
    names = [name for name, _ in blocks]
    subsets = [(name,) for name in names]
    onehot = [name for name, kind in blocks if kind in ("onehot", "aaprops")]
    others = [name for name, kind in blocks if kind not in ("onehot", "aaprops")]
    subsets += [tuple(sorted(pair, key=names.index)) for pair in itertools.product(onehot, others)]
    subsets += [tuple(sorted(pair, key=names.index)) for pair in itertools.combinations(onehot, 2)]
    if len(names) > 1:
        subsets.append(tuple(names))
    unique = list(dict.fromkeys(subsets))
    return [{"features": list(subset), "head": head, "params": dict(params)}
            for head, params in heads for subset in unique]


class AutoRegressor(Estimator):
    """The best of ``candidates`` (default: ``candidate_grid`` over ``blocks``) on validation data.

    Fitted attributes: ``chosen_`` (features, head, params of the best candidate), ``model_`` (that head,
    fitted), ``columns_`` (the columns of X it reads), ``leaderboard_`` (every candidate, best first),
    ``selection_`` (how they were scored), ``n_features_in_``, ``validation_rows_`` (rows carved for
    validation when ``fit`` got none, else None). ``AutoRegressor()`` without ``blocks`` cannot be fitted.
    """

    name = "auto"
    _param_specs = {
        "budget": Param("float", "Seconds for trying candidates (the chosen one is then fitted once more).",
                        low=0, low_open=True),
        "min_valid": Param("int", "With fewer validation rows than this, candidates are scored by inner k-fold "
                           "cross-validation over train and valid together.", low=0),
        "inner_folds": Param("int", "Folds of that inner cross-validation.", low=2),
        "seed": Param("int", "Seed of every candidate and of the inner folds.", low=0),
        "device": Param("str", "cpu, cuda, ... (auto: the GPU when there is one)."),
    }

    def __init__(self, *, blocks: tuple = (), candidates: tuple = (), budget: float = 120.0, min_valid: int = 200,
                 inner_folds: int = 5, seed: int = 0, device: str = "auto", validation_fraction: float = 0.1,
                 threads: int | None = None):
        self._store(locals())

    def _candidates(self) -> list[dict]:
        if self.candidates:
            return [dict(c) for c in self.candidates]
        return candidate_grid([(name, kind) for name, kind, _, _ in self.blocks])

    def _columns(self, features: list[str]) -> np.ndarray:
        spans = {name: (start, stop) for name, _, start, stop in self.blocks}
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
        return cls(**{**params, **extra})

    def _score(self, candidate: dict, X, y, X_valid, y_valid, counts, counts_valid) -> float:
        cols = self._columns(candidate["features"])
        if len(y_valid) >= self.min_valid:
            model = self._make(candidate).fit(X[:, cols], y, X_valid[:, cols], y_valid, counts=counts,
                                              counts_valid=counts_valid)
            return spearman(y_valid, model.predict(X_valid[:, cols])) or -1.0
        # few validation rows: inner k-fold cross-validation over train and valid together, pooled Spearman
        X_all, y_all = np.vstack([X, X_valid])[:, cols], np.concatenate([y, y_valid])
        c_all = None if counts is None else np.concatenate([counts, counts_valid])
        fold = np.random.default_rng(self.seed).permutation(len(y_all)) % self.inner_folds
        pooled = np.empty(len(y_all))
        for k in range(self.inner_folds):
            test, valid = fold == k, fold == (k + 1) % self.inner_folds
            train = ~test & ~valid
            model = self._make(candidate).fit(X_all[train], y_all[train], X_all[valid], y_all[valid],
                                              counts=None if c_all is None else c_all[train],
                                              counts_valid=None if c_all is None else c_all[valid])
            pooled[test] = model.predict(X_all[test])
        return spearman(y_all, pooled) or -1.0

    def _fit(self, data: FitData) -> None:
        if not self.blocks:  # (the CLI sets them from the data once loaded)
            raise ValueError("AutoRegressor needs blocks: (name, kind, first column, end column) of each featurizer")
        y, y_valid, counts, counts_valid, log = data.y, data.y_valid, data.counts, data.counts_valid, data.log
        X, X_valid = np.asarray(data.X, np.float32), np.asarray(data.X_valid, np.float32)
        start = time.perf_counter()
        board = []
        candidates = self._candidates()
        for candidate in candidates:
            elapsed = time.perf_counter() - start
            scored = [e for e in board if e["valid_spearman"] is not None]
            reserve = max(scored, key=lambda e: e["valid_spearman"])["seconds"] if scored else 0.0
            same = [e["seconds"] for e in board if e["head"] == candidate["head"] and e["seconds"] is not None]
            expected = max(same) if same else max([e["seconds"] for e in scored] or [0.0])
            if scored and elapsed + expected + reserve > self.budget:  # keep time to fit the best one again
                board.append({**candidate, "valid_spearman": None, "seconds": None, "skipped": "over the budget"})
                continue
            began = time.perf_counter()
            try:
                score = self._score(candidate, X, y, X_valid, y_valid, counts, counts_valid)
                problem = None
            except ValueError as exc:  # e.g. a head that cannot use these features
                score, problem = None, str(exc)
            entry = {**candidate, "valid_spearman": score, "seconds": round(time.perf_counter() - began, 3)}
            if problem:
                entry["skipped"] = problem
            board.append(entry)
            if log is not None:
                shown = "n/a" if score is None else f"{score:.3f}"
                log(f"auto: {describe(candidate)}: valid Spearman {shown} ({entry['seconds']:.1f}s)")
        scored = [e for e in board if e["valid_spearman"] is not None]
        if not scored:
            raise ValueError("no candidate could be fitted: " + "; ".join(e.get("skipped", "") for e in board))
        best = max(scored, key=lambda e: e["valid_spearman"])
        self.chosen_ = {k: best[k] for k in ("features", "head", "params")}
        self.leaderboard_ = sorted(board, key=lambda e: -np.inf if e["valid_spearman"] is None
                                   else e["valid_spearman"], reverse=True)
        self.selection_ = ("validation split" if len(y_valid) >= self.min_valid
                           else f"inner {self.inner_folds}-fold cross-validation (fewer than {self.min_valid} "
                                f"validation rows)")
        self.columns_ = self._columns(self.chosen_["features"])
        self.model_ = self._make(self.chosen_).fit(X[:, self.columns_], y, X_valid[:, self.columns_], y_valid,
                                                   counts=counts, counts_valid=counts_valid)

    def _members(self, X) -> np.ndarray:
        return self.model_.predict_members(np.asarray(X, np.float32)[:, self.columns_])

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
    params = " ".join(f"{k}={v}" for k, v in candidate["params"].items())
    return f"{candidate['head']}{(' ' + params) if params else ''} on {'+'.join(candidate['features'])}"


def blocks_of(manifest: dict) -> tuple:
    """(name, kind, first column, end column) of each featurizer in a (joined) features manifest."""
    parts = manifest.get("parts") or [manifest]
    blocks, start = [], 0
    for part in parts:
        blocks.append((part["features"], part["kind"], start, start + int(part["dim"])))
        start += int(part["dim"])
    return tuple(blocks)
