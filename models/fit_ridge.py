"""`mimo fit ridge`: the scikit-learn-style ridge baseline from cached features."""
from __future__ import annotations

from pathlib import Path

import pickle

from .data import SplitData
from .ridge import ValidatedRidge
from .runs import evaluate, make_run_dir, timed, write_run


def fit_ridge(data: SplitData, out: str | Path | None = None, standardize: bool = True) -> tuple[Path, dict]:
    """Fit ridge on train, choose alpha on valid, write the run directory. Returns (run_dir, metrics)."""
    model = ValidatedRidge(standardize=standardize)
    _, seconds = timed(lambda: model.fit(data.X("train"), data.y("train"), data.X("valid"), data.y("valid")))
    prediction = model.predict(data.rows.embeddings)
    extra = {"params": {"alpha": model.alpha_, "standardize": standardize},
             "valid_mse_by_alpha": {f"{a:g}": m for a, m in model.valid_mse_.items()}}
    metrics, predictions = evaluate(data, prediction, "ridge", seconds, extra)
    run_dir = make_run_dir(out, "ridge")
    write_run(run_dir, metrics, predictions, data.source)
    with open(run_dir / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    return run_dir, metrics
