"""`mimo fit mlp|cnn|mimo`: train a neural head from cached features and write its run directory."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
from .data import SplitData
from .metrics import regression_metrics, spearman
from .neural import NeuralRegressor
from .runs import evaluate, make_run_dir, timed, write_run
from .svg import line_chart


def uncertainty_metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict:
    """How well member spread tracks error: Spearman(std, |error|) and coverage of mean +/- 2 std."""
    error = np.abs(y - mean)
    return {"spearman_std_abs_error": spearman(std, error),
            "coverage_2std": float(np.mean(error <= 2 * std)), "mean_std": float(np.mean(std))}


INTERVAL_LEVEL = 0.95


def interval_scale(y: np.ndarray, mean: np.ndarray, width: np.ndarray, level: float = INTERVAL_LEVEL) -> float:
    """The factor q for intervals mean +/- q * width that cover ``level`` of (y, mean, width) rows: the
    ceil((n + 1) * level)-th smallest |y - mean| / width (split-conformal with normalised errors).

    Computed on validation rows, it gives intervals that cover ``level`` of new rows drawn like them; rows
    further from the training data (TAPE's test) may be covered less, which the run's metrics show."""
    ratio = np.abs(y - mean) / np.maximum(width, 1e-12)
    rank = min(len(ratio), int(np.ceil((len(ratio) + 1) * level)))
    return float(np.sort(ratio)[rank - 1])


def interval_metrics(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict:
    """Share of ``y`` inside [lower, upper] and the mean width."""
    return {"coverage": float(np.mean((lower <= y) & (y <= upper))), "mean_width": float(np.mean(upper - lower))}


def fit_head(model: NeuralRegressor, data: SplitData, out: str | Path | None = None,
             log: Callable[[str], None] | None = None) -> tuple[Path, dict]:
    """Fit on train with early stopping on valid, evaluate, and write metrics, predictions, curve and weights."""
    _, seconds = timed(lambda: model.fit(data.X("train"), data.y("train"), data.X("valid"), data.y("valid"),
                                         counts=data.n_mutations("train"), counts_valid=data.n_mutations("valid"),
                                         log=log))
    members = model.predict_members(data.rows.embeddings)
    mean = members.mean(axis=1)
    result = model.result_
    params = {k: v for k, v in model.get_params(deep=False).items() if k != "train"}
    extra = {"params": {**params, "train": asdict(model._train)},
             "epochs_run": len(result.history), "best_epoch": result.best_epoch,
             "stopped_early": result.stopped_early,
             "history": [asdict(r) for r in result.history]}
    metrics, predictions = evaluate(data, mean, model.name, seconds, extra)
    if members.shape[1] > 1:
        std = members.std(axis=1)
        valid, test = data.mask("valid"), data.mask("test")
        # Interval half-width scale * (std + offset): the offset (median valid std) keeps members that agree
        # almost exactly (a saturated output) from giving absurdly narrow or, once scaled, absurdly wide ones.
        offset = float(np.median(std[valid]))
        scale = interval_scale(data.rows.labels[valid], mean[valid], std[valid] + offset)
        lower, upper = mean - scale * (std + offset), mean + scale * (std + offset)
        predictions["std"], predictions["lower"], predictions["upper"] = std, lower, upper
        labels = model.groups_.labels() if getattr(model, "groups_", None) is not None else None
        metrics["members"] = [
            {"member": k, "mutations": None if labels is None else labels[k],
             "test": regression_metrics(data.rows.labels[test], members[test, k])}
            for k in range(members.shape[1])]
        metrics["uncertainty"] = {
            part: uncertainty_metrics(data.rows.labels[mask], mean[mask], std[mask])
            for part, mask in (("test", test), ("valid", valid))}
        metrics["uncertainty"]["interval"] = {
            "level": INTERVAL_LEVEL, "scale": scale, "offset": offset,
            **{part: interval_metrics(data.rows.labels[mask], lower[mask], upper[mask])
               for part, mask in (("valid", valid), ("test", test))}}
    run_dir = make_run_dir(out, model.name)
    write_run(run_dir, metrics, predictions, data.source)
    model.save(run_dir / "model.pt")
    plot_loss_curve(metrics, run_dir / "loss_curve.svg")
    return run_dir, metrics


def plot_loss_curve(metrics: dict, path: Path) -> Path:
    """Train and validation loss per epoch (the report's Figure 4), best epoch marked, as SVG."""
    history = metrics["history"]
    series = {"train loss": [h["train_loss"] for h in history], "valid loss": [h["valid_loss"] for h in history]}
    dashed = ()
    if metrics["model"] == "mimo":
        series["valid MSE (members averaged)"] = [h["valid_mse"] for h in history]
        dashed = ("valid MSE (members averaged)",)
    train = metrics["params"]["train"]
    return line_chart([h["epoch"] for h in history], series, path,
                      title=f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']}): "
                            f"Adam, StepLR, lr={train['lr']:g}, MSE",
                      xlabel="epoch", ylabel="MSE", dashed=dashed,
                      marker=(metrics["best_epoch"], f"best epoch {metrics['best_epoch']}"))
