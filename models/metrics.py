"""Regression metrics as written to ``metrics.json``."""
from __future__ import annotations

import numpy as np
from scipy import stats


def _correlation(fn, y: np.ndarray, prediction: np.ndarray) -> float | None:
    if len(y) < 2 or np.all(y == y[0]) or np.all(prediction == prediction[0]):
        return None  # undefined: reported as null rather than NaN
    return float(fn(y, prediction)[0])


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict:
    """``{"n", "mse", "spearman", "pearson"}``; correlations are None where undefined."""
    y, prediction = np.asarray(y, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if len(y) == 0:
        return {"n": 0, "mse": None, "spearman": None, "pearson": None}
    return {
        "n": int(len(y)),
        "mse": float(np.mean((y - prediction) ** 2)),
        "spearman": _correlation(stats.spearmanr, y, prediction),
        "pearson": _correlation(stats.pearsonr, y, prediction),
    }


def metrics_by_mutations(y: np.ndarray, prediction: np.ndarray, n_mutations: np.ndarray) -> dict:
    """``{"4": {"n", "mse", "spearman"}, ...}`` keyed by mutation count."""
    out = {}
    for count in np.unique(n_mutations):
        m = n_mutations == count
        full = regression_metrics(y[m], prediction[m])
        out[str(int(count))] = {"n": full["n"], "mse": full["mse"], "spearman": full["spearman"]}
    return out
