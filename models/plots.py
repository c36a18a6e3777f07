"""A run's pictures: the loss curve of neural heads and predicted against measured."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .svg import line_chart, scatter_chart


def trained_params(metrics: dict) -> dict:
    """The parameters of the head that was trained (for `fit auto`: the chosen candidate's)."""
    return metrics.get("auto", {}).get("chosen_params") or metrics["params"]


def plot_loss_curve(metrics: dict, path: Path) -> Path:
    """Train and validation loss per epoch (the report's Figure 4), best epoch marked, as SVG."""
    history = metrics["history"]
    series = {"train loss": [h["train_loss"] for h in history], "valid loss": [h["valid_loss"] for h in history]}
    dashed = ()
    if metrics["model"] == "mimo":
        series["valid MSE (members averaged)"] = [h["valid_mse"] for h in history]
        dashed = ("valid MSE (members averaged)",)
    return line_chart([h["epoch"] for h in history], series, path,
                      title=f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']}): "
                            f"Adam, StepLR, lr={trained_params(metrics)['lr']:g}, MSE",
                      xlabel="epoch", ylabel="MSE", dashed=dashed,
                      marker=(metrics["best_epoch"], f"best epoch {metrics['best_epoch']}"))


PLOT_POINTS = 4000  # an SVG of 27,000 points is 2 MB and slow to open; a seeded sample shows the same picture


def plot_test_predictions(metrics: dict, predictions: pd.DataFrame, path: Path) -> Path | None:
    """Predicted against measured on the test split, coloured by mutation count, Spearman in the title."""
    test = predictions[predictions["split"] == "test"]
    if test.empty:
        return None
    shown = test.sample(PLOT_POINTS, random_state=0) if len(test) > PLOT_POINTS else test
    shown = shown.sort_values("n_mutations", kind="stable")
    counts = shown["n_mutations"].to_numpy()
    groups = ["unknown" if c < 0 else (f"{c}" if c < 8 else "8+") + " mut." for c in counts]
    rho = metrics["test"]["spearman"]
    sample = f", {len(shown):,} of {len(test):,} shown" if len(shown) < len(test) else ""
    title = (f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']}): test Spearman "
             f"{'n/a' if rho is None else f'{rho:.3f}'}{sample}")
    return scatter_chart(shown["y"].to_numpy(), shown["prediction"].to_numpy(), groups, path, title=title,
                         xlabel="measured", ylabel="predicted")
