"""Evaluating a fitted head: metrics on every part of a split, members' spread and calibrated intervals, which
rows the training data gives signal for, and the checks that keep non-finite numbers out of results; the
label range the intervals are judged against."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError

from mimo.models.estimators.base import Estimator
from mimo.models.data import SplitData
from mimo.models.metrics import (calibrate_interval, interval_bounds, interval_metrics, metrics_by_mutations,
                      regression_metrics, spearman_ties_broken, tied_share, uncertainty_metrics)
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.runs.support import TrainingSupport, substitution_sets

PARTS = ("train", "valid", "test")


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def evaluate(data: SplitData, prediction: np.ndarray, model: str, fit_seconds: float, extra: dict | None = None
             ) -> tuple[dict, pd.DataFrame]:
    """Metrics on train/valid/test (test also by mutation count) and the predictions table."""
    metrics: dict = {"model": model, "features": data.features, "dataset": data.dataset, "split": data.split_name,
                     "split_hash": data.split_hash}
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
    metrics["label_range"] = label_range(data.rows.labels[data.mask("train")])
    metrics["split_unused_rows"] = data.source.get("split_unused_rows", 0)
    if "partial_cache" in data.source:
        metrics["partial_cache"] = data.source["partial_cache"]
    metrics.update(extra or {})
    predictions = pd.DataFrame({
        "id": data.rows.ids, "split": data.split, "mutations": data.rows.mutations,
        "n_mutations": data.rows.n_mutations, "y": data.rows.labels, "prediction": prediction,
    })
    return metrics, predictions


def label_range(labels: np.ndarray) -> list[float] | None:
    """[min, max] of the finite training labels (what intervals are judged against)."""
    labels = np.asarray(labels, np.float64)
    labels = labels[np.isfinite(labels)]
    return [float(labels.min()), float(labels.max())] if len(labels) else None


def predict_spread(model: Estimator, X) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(prediction, spread, members) of a fitted head: the spread is a GP's predictive std (heads that declare
    ``predicts_std``) or the members' std (MIMO), None for a single-output head. Non-finite values are errors."""
    if getattr(model, "predicts_std", False):
        mean, std = model.predict(X, return_std=True)
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        check_finite(np.stack([mean, std], axis=1), "the model's predictions")
        return mean, std, mean[:, None]
    members = model.predict_members(X)
    check_finite(members, "the model's predictions")
    return members.mean(axis=1), (members.std(axis=1) if members.shape[1] > 1 else None), members


def member_metrics(model: Estimator, data: SplitData, members: np.ndarray, mean: np.ndarray, std: np.ndarray,
                   metrics: dict, predictions: pd.DataFrame, interval: dict) -> None:
    """The spread as uncertainty: per-member test metrics (several members), how well the spread tracks the
    error, and the coverage of the intervals in ``predictions`` (calibrated by ``add_intervals``, widened where
    no signal)."""
    valid, test = data.mask("valid"), data.mask("test")
    labels = data.rows.labels
    groups = getattr(model, "groups_", None)
    names = groups.labels() if groups is not None else None
    if members.shape[1] > 1:
        metrics["members"] = [{"member": k, "mutations": None if names is None else names[k],
                               "test": regression_metrics(labels[test], members[test, k])}
                              for k in range(members.shape[1])]
    metrics["uncertainty"] = {part: uncertainty_metrics(labels[mask], mean[mask], std[mask])
                              for part, mask in (("test", test), ("valid", valid))}
    lower, upper = predictions["lower"].to_numpy(), predictions["upper"].to_numpy()
    metrics["uncertainty"]["interval"] = {
        **interval, **{part: interval_metrics(labels[mask], lower[mask], upper[mask])
                                       for part, mask in (("valid", valid), ("test", test))}}


def add_intervals(data: SplitData, mean: np.ndarray, std: np.ndarray, predictions: pd.DataFrame) -> dict:
    """``std`` and the 95% interval (calibrated on valid) as prediction columns; returns the calibration."""
    valid = data.mask("valid")
    counts = data.rows.n_mutations
    interval = calibrate_interval(data.rows.labels[valid], mean[valid], std[valid], counts[valid])
    predictions["std"] = std
    predictions["lower"], predictions["upper"] = interval_bounds(mean, std, interval, counts)
    return interval


def training_support(data: SplitData) -> tuple[TrainingSupport, list]:
    """What the train rows cover, and every row's substitutions (parsed once)."""
    info = data.source["dataset"]
    sets = substitution_sets(data.rows.mutations, info.get("parent"), mutation_format_from(info), data.rows.n_mutations)
    train = np.flatnonzero(data.mask("train"))
    return TrainingSupport.from_sets([sets[i] for i in train], data.rows.labels[train]), sets


def used_manifest(model: Estimator, manifest: dict) -> dict:
    """The features a fitted model reads (``fit auto`` may use some of the joined ones): what decides whether a
    variant gets any signal."""
    pick = getattr(model, "used_manifest", None)
    return manifest if pick is None else pick(manifest)


def check_finite(values: np.ndarray, what: str) -> None:
    """Non-finite numbers are errors, never results."""
    bad = ~np.isfinite(np.asarray(values, np.float64))
    if bad.any():
        raise DataError(f"{what} hold {int(bad.sum())} non-finite value(s) (NaN or infinity): the training "
                        f"diverged or the labels are too large to fit in floating point; check the labels' "
                        f"scale, or lower --lr")


def check_finite_metrics(metrics) -> None:
    """Every number in the metrics is finite (None stands for undefined, e.g. Spearman of constant values)."""
    def walk(value, path):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        elif isinstance(value, (float, np.floating)) and not np.isfinite(value):
            raise DataError(f"metric {path} is {value}: the labels are too large or too spread to fit in "
                            f"floating point, or training diverged; nothing was written")
    walk(metrics, "")
