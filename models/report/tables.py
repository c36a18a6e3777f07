"""`mimo report`'s runs table: one row per run (head, parameters, features, split, losses, Spearman, intervals)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mimo.models.estimators.registry import HEADS, head_class


def _train_params(metrics: dict) -> dict:
    """The head's parameters, flat (runs written before the training parameters were the head's own nest
    them under ``train``)."""
    params = dict(metrics.get("params", {}))
    return {**params.pop("train", {}), **params}


def _settings(metrics: dict) -> str:
    """Training summary: alpha for ridge, epochs and learning rate for neural heads."""
    params = _train_params(metrics)
    if "auto" in metrics:
        chosen = metrics["auto"]["chosen"]
        return f"chose {chosen['head']} on {'+'.join(chosen['features'])}"
    if metrics["model"] == "ridge":
        return f"alpha {params.get('alpha', metrics.get('alpha', float('nan'))):.3g}"
    if metrics["model"] == "sklearn":  # no epochs: the scikit-learn estimator's name
        return str(params.get("estimator", "?"))
    if "epochs_run" not in metrics:  # a head not trained by epochs (gp: marginal likelihood)
        return ""
    return (f"{metrics.get('epochs_run', '?')} epochs (best {metrics.get('best_epoch', '?')}), "
            f"lr {params.get('lr', float('nan')):g}")


def _distinguishing(metrics: dict) -> str:
    """The head's parameters that differ from its defaults (training ones aside), so two runs never look alike."""
    if metrics["model"] not in HEADS:
        return ""
    defaults = head_class(metrics["model"]).param_defaults()
    skip = {"device", "alphas", "blocks", "candidates"}
    params = _train_params(metrics)
    out = []
    for name, value in params.items():
        if name in skip or name not in defaults:
            continue
        default = defaults[name]
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            out.append(f"{name}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(out)


def runs_table(runs: list) -> pd.DataFrame:
    """One row per run (anything with ``directory`` and ``metrics``, as ``Run``): model, its non-default
    parameters, dataset, features, split (and hash), training summary, train/valid/test loss (MSE), Spearman,
    fit seconds."""
    rows = []
    for run in runs:
        m = run.metrics
        row = {"run": Path(run.directory).name, "model": m["model"], "params": _distinguishing(m),
               "dataset": m.get("dataset", ""), "features": m["features"],
               "split": m["split"] + (f" ({m['split_hash'][:8]})" if m.get("split_hash") else ""),
               "epochs & lr": _settings(m) if "cv" not in m else f"{m['cv']['folds']}-fold CV",
               "train loss": m.get("train", {}).get("mse"), "valid loss": m.get("valid", {}).get("mse"),
               "test loss": m["test"]["mse"], "valid Spearman": m.get("valid", {}).get("spearman"),
               "test Spearman": m["test"]["spearman"],
               "test Spearman, ties broken": m["test"].get("spearman_ties_broken"), "fit s": m["fit_seconds"]}
        u = m.get("uncertainty", {})
        row["test Spearman(std, abs err)"] = u.get("test", {}).get("spearman_std_abs_error")
        interval = u.get("interval", {}).get("test", {})  # calibrated on validation rows, not the raw spread
        row["test 95% interval coverage"] = interval.get("coverage")
        row["test 95% interval width"] = interval.get("mean_width")
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
