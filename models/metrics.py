"""Regression metrics as written to ``metrics.json``."""
from __future__ import annotations

import numpy as np
import pandas as pd


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation; None where undefined (fewer than 2 points or a constant input)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2:
        return None
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return None if denominator == 0 else float((a * b).sum() / denominator)


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman correlation (Pearson on average ranks, as scipy.stats.spearmanr); None where undefined."""
    return pearson(pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy())


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict:
    """``{"n", "mse", "spearman", "pearson"}``; correlations are None where undefined."""
    y, prediction = np.asarray(y, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if len(y) == 0:
        return {"n": 0, "mse": None, "spearman": None, "pearson": None}
    return {"n": int(len(y)), "mse": float(np.mean((y - prediction) ** 2)),
            "spearman": spearman(y, prediction), "pearson": pearson(y, prediction)}


def metrics_by_mutations(y: np.ndarray, prediction: np.ndarray, n_mutations: np.ndarray) -> dict:
    """``{"4": {"n", "mse", "spearman"}, ...}`` keyed by mutation count."""
    out = {}
    for count in np.unique(n_mutations):
        m = n_mutations == count
        full = regression_metrics(y[m], prediction[m])
        out[str(int(count))] = {"n": full["n"], "mse": full["mse"], "spearman": full["spearman"]}
    return out
