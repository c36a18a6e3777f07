"""A run's pictures: the loss curve of neural heads, predicted against measured, and the saturation-scan heatmap."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.report.summary import is_cv
from mimo.models.report.svg import Points, ScanMarks, heatmap_chart, line_chart, scatter_chart


def trained_params(metrics: dict) -> dict:
    """The parameters of the head that was trained (for `fit auto`: the chosen candidate's)."""
    return metrics.get("auto", {}).get("chosen_params") or metrics["params"]


def _run_name(metrics: dict) -> str:
    return f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']})"


def plot_loss_curve(metrics: dict, path: Path) -> Path:
    """Train and validation loss per epoch (the report's Figure 4), best epoch marked, as SVG."""
    history = metrics["history"]
    series = {"train loss": [h["train_loss"] for h in history], "valid loss": [h["valid_loss"] for h in history]}
    dashed = ()
    if metrics["model"] == "mimo":
        series["valid MSE (members averaged)"] = [h["valid_mse"] for h in history]
        dashed = ("valid MSE (members averaged)",)
    return line_chart([h["epoch"] for h in history], series, path,
                      title=f"{_run_name(metrics)}: Adam, StepLR, lr={trained_params(metrics)['lr']:g}, MSE",
                      xlabel="epoch", ylabel="MSE", dashed=dashed,
                      marker=(metrics["best_epoch"], f"best epoch {metrics['best_epoch']}"))


PLOT_POINTS = 4000  # an SVG of 27,000 points is 2 MB and slow to open; a seeded sample shows the same picture
INTERVAL_POINTS = 200  # interval bars drawn on a seeded sample: more is a grey wall
MOST_COUNTS = 8  # mutation counts from this on share one colour ("8+ mut.")
COUNT_COLORS = ("#440154", "#482878", "#3e4989", "#31678e", "#26828e", "#1e9c89", "#32b67a", "#69cd5b")


def count_color(group: int, top: int) -> str:
    """Ordered colours for mutation counts 1..``top`` spread over viridis (darker is fewer: 1 and 2 differ even
    when no more are shown); the wild type red, unknown grey."""
    if group <= 0:
        return "#7f7f7f" if group < 0 else "#d62728"
    return COUNT_COLORS[round((group - 1) / max(top - 1, 1) * (len(COUNT_COLORS) - 1))]


def count_group(n: int) -> int:
    """The legend group of a mutation count: itself, ``MOST_COUNTS`` for that many and more, -1 unknown."""
    return -1 if n < 0 else min(int(n), MOST_COUNTS)


def _group_name(group: int, n: int) -> str:
    what = ("unknown" if group < 0 else "wild type" if group == 0 else
            f"{group}{'+' if group == MOST_COUNTS else ''} mut.")
    return f"{what} (n={n:,})"


def _sample(test: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``size`` rows in which every mutation count keeps some rows (at least 30, or all)."""
    if len(test) <= size:
        return test
    groups = test.groupby(test["n_mutations"].map(count_group), sort=False)
    share = size / len(test)
    parts = [g.sample(min(len(g), max(30, round(share * len(g)))), random_state=seed) for _, g in groups]
    return pd.concat(parts)


def _figure_words(metrics: dict) -> tuple[str, str]:
    """What the plotted rows are called, and the Spearman named as it was computed."""
    rho = metrics["test"]["spearman"]
    value = "n/a" if rho is None else f"{rho:.3f}"
    if is_cv(metrics):
        mean = metrics.get("mean_fold_spearman")
        per_fold = f" (mean per fold {mean:.3f})" if mean is not None else ""
        return "out-of-fold", f"pooled out-of-fold Spearman {value}{per_fold}"
    return "test", f"test Spearman {value}"


def plot_test_predictions(metrics: dict, predictions: pd.DataFrame, path: Path) -> Path | None:
    """Predicted against measured on the test rows (under cross-validation: every row, out of fold), coloured by
    mutation count (every count in the legend), the calibrated intervals of a seeded sample of rows as bars,
    rows without signal drawn open; Spearman named as computed in the title."""
    test = predictions[predictions["split"] == "test"]
    if test.empty:
        return None
    shown = _sample(test, PLOT_POINTS, 0)  # fewer mutations first, the wild type last (on top)
    shown = shown.iloc[np.argsort(shown["n_mutations"].replace(0, np.iinfo(np.int64).max).to_numpy(), kind="stable")]
    groups = shown["n_mutations"].map(count_group).to_numpy()
    sizes = test["n_mutations"].map(count_group).value_counts()
    order = sorted(sizes.index)
    points = Points(shown["y"].tolist(), shown["prediction"].tolist(), groups.tolist(),
                    flagged=shown["no_signal"].astype(bool).tolist() if "no_signal" in shown else None)
    interval = ""
    if {"lower", "upper"} <= set(shown):
        picked = shown.index.isin(shown.sample(min(INTERVAL_POINTS, len(shown)), random_state=1).index)
        points.lower = np.where(picked, shown["lower"], np.nan).tolist()
        points.upper = np.where(picked, shown["upper"], np.nan).tolist()
        interval = f"95% interval ({int(picked.sum())} rows)"
    rows, spearman = _figure_words(metrics)
    sample = f"; {len(shown):,} of {len(test):,} rows shown" if len(shown) < len(test) else f"; {len(test):,} rows"
    blind = int(test["no_signal"].sum()) if "no_signal" in test else 0
    return scatter_chart(points, path, title=f"{_run_name(metrics)}: {rows} predictions",
                         subtitle=f"{spearman}{sample}", xlabel="measured", ylabel=f"predicted ({rows})",
                         names={g: _group_name(g, int(sizes[g])) for g in order},
                         colors={g: count_color(g, max(order)) for g in order},
                         interval_name=interval, flagged_name=f"no signal (n={blind:,})")


def measured_wild_type(predictions: pd.DataFrame) -> tuple[float, int] | None:
    """The mean score of the rows with no mutation (the parent measured), and how many; None without such rows."""
    rows = predictions.loc[predictions["n_mutations"] == 0, "y"].astype(float)
    rows = rows[np.isfinite(rows)]
    return (float(rows.mean()), len(rows)) if len(rows) else None


def scan_centre(predictions: pd.DataFrame, predicted_parent: Callable[[], float]) -> tuple[float, str]:
    """Where a scan's colours are centred, and what that is: the measured wild type when the data has one (red
    and blue then mean above and below it), else the run's prediction for the parent."""
    measured = measured_wild_type(predictions)
    if measured is not None:
        value, n = measured
        return value, f"measured wild type {value:.3g}" + (f" (mean of {n} rows)" if n > 1 else "")
    value = predicted_parent()
    return value, f"predicted parent {value:.3g} (no wild-type measurement)"


def scan_marks(run, predictions: pd.DataFrame, table: pd.DataFrame, predicted_parent: Callable[[], float]) -> ScanMarks:
    """The heatmap's marks for a run's scan ``table``: parent residues, no-signal cells, and (where the run's
    training rows can be read) substitutions measured in training and positions never mutated there."""
    first = mutation_format_from(run.source["dataset"]).first_index
    centre, label = scan_centre(predictions, predicted_parent)
    marks = ScanMarks({i + first: a for i, a in enumerate(run.parent)}, centre, label,
                      blind={(int(p), a) for p, a, b in zip(table["position"], table["new_residue"], table["no_signal"])
                             if b})
    support = run.support
    if support.readable:
        marks.measured = {(p + first, a) for p, a in support.substitutions}
        marks.unmeasured = set(range(first, len(run.parent) + first)) - {p + first for p in support.sites}
    else:
        marks.note = "; the training rows' substitutions cannot be read, so none is outlined or hatched"
    return marks


def plot_scan_table(run, table: pd.DataFrame, path: str | Path, predicted_parent: Callable[[], float]) -> Path:
    """A run's saturation scan (``mimo.design.saturation_scan``) as a heatmap (positions x amino acids)."""
    from mimo.pipeline.io.variants import AMINO_ACIDS

    predictions = pd.read_csv(Path(run.directory) / "predictions.csv", usecols=["n_mutations", "y"])
    marks = scan_marks(run, predictions, table, predicted_parent)
    values = {(int(p), a): float(v) for p, a, v in zip(table["position"], table["new_residue"], table["prediction"])}
    title = f"saturation scan: {_run_name(run.metrics)}, {len(table):,} single substitutions"
    return heatmap_chart(sorted(marks.parent), AMINO_ACIDS, values, marks, path, title)
