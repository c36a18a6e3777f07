"""`mimo report`: run directories gathered into the report's Table 2, plus Spearman."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pipeline.errors import DataError


def _settings(metrics: dict) -> str:
    params = metrics.get("params", {})
    if metrics["model"] == "ridge":
        return f"alpha {params.get('alpha', float('nan')):.3g}"
    train = params.get("train", {})
    return f"{metrics.get('epochs_run', '?')} epochs (best {metrics.get('best_epoch', '?')}), lr {train.get('lr', '?'):g}"


def gather_runs(run_dirs: list[str | Path]) -> pd.DataFrame:
    """One row per run: model, settings, train/valid/test loss (MSE), Spearman, fit seconds."""
    rows = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.json"
        if not path.exists():
            raise DataError("not a run directory: no metrics.json", run_dir)
        m = json.loads(path.read_text())
        row = {"run": Path(run_dir).name, "model": m["model"], "features": m["features"], "split": m["split"],
               "epochs & lr": _settings(m), "train loss": m["train"]["mse"], "valid loss": m["valid"]["mse"],
               "test loss": m["test"]["mse"], "valid Spearman": m["valid"]["spearman"],
               "test Spearman": m["test"]["spearman"],
               "test Spearman, ties broken": m["test"].get("spearman_ties_broken"), "fit s": m["fit_seconds"]}
        u = m.get("uncertainty", {}).get("test")
        row["test Spearman(std, abs err)"] = None if u is None else u["spearman_std_abs_error"]
        row["test 2-std coverage"] = None if u is None else u["coverage_2std"]
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
