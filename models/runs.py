"""Run directories: ``metrics.json``, ``predictions.csv`` and the fitted model."""
from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .data import SplitData
from .metrics import metrics_by_mutations, regression_metrics, spearman_ties_broken, tied_share

PARTS = ("train", "valid", "test")


def make_run_dir(out: str | Path | None, model: str, root: str | Path = "runs") -> Path:
    """``out`` if given, else ``runs/<timestamp>-<model>`` (never an existing directory's files overwritten)."""
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(root) / f"{stamp}-{model}"
        suffix = 1
        while out.exists():
            suffix += 1
            out = Path(root) / f"{stamp}-{model}-{suffix}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def evaluate(data: SplitData, prediction: np.ndarray, model: str, fit_seconds: float, extra: dict | None = None
             ) -> tuple[dict, pd.DataFrame]:
    """Metrics on train/valid/test (test also by mutation count) and the predictions table."""
    metrics: dict = {"model": model, "features": data.features, "dataset": data.dataset, "split": data.split_name}
    for part in PARTS:
        m = data.mask(part)
        metrics[part] = regression_metrics(data.rows.labels[m], prediction[m])
    test = data.mask("test")
    if test.any():
        metrics["test"]["spearman_ties_broken"] = spearman_ties_broken(data.rows.labels[test], prediction[test])
        metrics["test"]["tied_share"] = tied_share(prediction[test])
    metrics["test"]["by_mutations"] = metrics_by_mutations(data.rows.labels[test], prediction[test],
                                                           data.rows.n_mutations[test])
    metrics["fit_seconds"] = round(float(fit_seconds), 3)
    metrics.update(extra or {})
    predictions = pd.DataFrame({
        "id": data.rows.ids, "split": data.split, "mutations": data.rows.mutations,
        "n_mutations": data.rows.n_mutations, "y": data.rows.labels, "prediction": prediction,
    })
    return metrics, predictions


def write_run(run_dir: Path, metrics: dict, predictions: pd.DataFrame, source: dict) -> None:
    """metrics.json, predictions.csv, and source.json (what `mimo predict` needs to featurize new input)."""
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (run_dir / "source.json").write_text(json.dumps(source, indent=2) + "\n")
    predictions.to_csv(run_dir / "predictions.csv", index=False)  # shortest exact repr: metrics recompute exactly


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def summary_line(metrics: dict) -> str:
    """One human line: test Spearman and MSE, valid Spearman, fit time."""
    t, v = metrics["test"], metrics["valid"]

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    ties = ""
    if t.get("tied_share", 0) > 0.01:  # say what the ties are worth, as they raise Spearman
        ties = f" ({100 * t['tied_share']:.0f}% tied; ties broken at random: {fmt(t['spearman_ties_broken'])})"
    return (f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']} split): "
            f"test Spearman {fmt(t['spearman'])}{ties}, test MSE {fmt(t['mse'])}, "
            f"valid Spearman {fmt(v['spearman'])}, fit {metrics['fit_seconds']:.2f}s")
