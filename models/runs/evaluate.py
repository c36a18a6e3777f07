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
                                 regression_metrics, spearman, spearman_ties_broken, tied_share,
                                 uncertainty_metrics)
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.runs.support import TrainingSupport, substitution_sets

PARTS = ("train", "valid", "test")


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def part_metrics(data: SplitData, prediction: np.ndarray) -> dict:
    """Metrics of ``prediction`` on train, valid and test (test also by mutation count, and what ties are
    worth)."""
    parts = {part: regression_metrics(data.rows.labels[data.mask(part)], prediction[data.mask(part)])
             for part in PARTS}
    parts["test"].update(held_out_extras(data.rows.labels[data.mask("test")], prediction[data.mask("test")],
                                         data.rows.n_mutations[data.mask("test")]))
    return parts


def held_out_extras(labels: np.ndarray, prediction: np.ndarray, n_mutations: np.ndarray) -> dict:
    """The held-out figure's companions: Spearman with ties broken, the tied share, metrics by mutation count."""
    extras = {"spearman_ties_broken": spearman_ties_broken(labels, prediction),
              "tied_share": tied_share(prediction)} if len(labels) else {}
    return {**extras, "by_mutations": metrics_by_mutations(labels, prediction, n_mutations)}


def predictions_table(data: SplitData, prediction: np.ndarray, split=None) -> pd.DataFrame:
    """The predictions table: one row per dataset row, its part of the split (``split``: other labels)."""
    return pd.DataFrame({"id": data.rows.ids, "split": data.split if split is None else split,
                         "mutations": data.rows.mutations, "n_mutations": data.rows.n_mutations,
                         "y": data.rows.labels, "prediction": prediction})


def check_parts(data: SplitData) -> None:
    """A split with no training or no test rows is refused before any training, in one line."""
    for part in ("train", "test"):
        if not data.mask(part).any():
            raise DataError(f"split {data.split_name!r} has no {part} rows: nothing to "
                            f"{'fit on' if part == 'train' else 'evaluate the run on'}; give a split with "
                            f"train and test rows (--split, --split-file), or cross-validate (--cv)")


def label_warnings(labels: np.ndarray) -> list[str]:
    """Warnings about labels the heads cannot resolve: the features and heads compute in float32 (about 7
    significant digits), so labels that vary little around a large offset lose their differences."""
    labels = np.asarray(labels, np.float64)
    labels = labels[np.isfinite(labels)]
    if len(labels) < 2:
        return []
    spread, size = float(np.ptp(labels)), float(np.max(np.abs(labels)))
    if size > 0 and spread < 1e-3 * size:
        return [f"warning: the labels vary by {spread:.3g} around {float(np.median(labels)):.6g}: the heads compute "
                f"in float32 (about 7 significant digits), so their differences may be lost (tied or collapsed "
                f"predictions); subtract a constant from the scores (e.g. the parent's) and fit again"]
    return []


def prediction_warnings(predictions: np.ndarray, labels: np.ndarray, summary: dict) -> list[str]:
    """Warnings about what a fitted head says: predictions all but constant (any Spearman of them is rounding
    noise: never a figure to trust), and a choice at the edge of its grid (``*_at_grid_edge`` in the head's
    ``run_summary``, e.g. ridge's alpha), which the run records and the command prints."""
    out = []
    predictions = np.asarray(predictions, np.float64)
    labels = np.asarray(labels, np.float64)
    spread, scale = float(np.std(predictions)), float(np.std(labels[np.isfinite(labels)])) if len(labels) else 0.0
    if scale > 0 and spread < 1e-3 * scale:
        out.append(f"warning: the predictions are all but constant (spread {spread:.2g} against the labels' "
                   f"{scale:.3g}): the head found no signal it could use in these features, so its Spearman is "
                   f"rounding noise, not a figure to trust")
    out += [f"warning: {text}" for key, text in summary.items() if key.endswith("_at_grid_edge")]
    return out


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
    lower, upper = predictions["lower"].to_numpy(), predictions["upper"].to_numpy()  # (before no-signal widening)
    metrics["uncertainty"]["interval"] = {
        **interval, **{part: interval_metrics(labels[mask], lower[mask], upper[mask])
                                       for part, mask in (("valid", valid), ("test", test))}}


def with_data_blocks(model: Estimator, data: SplitData) -> Estimator:
    """A head that puts a kernel (or a choice) per feature block (the GP, ``fit auto``: a ``blocks`` parameter)
    and was given none is given the data's (``SplitData.blocks``, from the cache's manifest), so a head made in
    Python with its defaults fits as `mimo fit` fits it. Other heads, and blocks given, are left as they are."""
    if "blocks" in model.get_params(deep=False) and not model.get_params(deep=False)["blocks"] and data.blocks:
        model.set_params(blocks=data.blocks)
    return model


def _latent(model: Estimator) -> bool:
    """Whether the head models its labels on a scale of its own (the GP: their normal scores) and says so."""
    return all(callable(getattr(model, name, None)) for name in ("predict_latent", "to_latent", "to_labels"))


def calibrate(model: Estimator, X: np.ndarray, y: np.ndarray, counts, mean: np.ndarray, std: np.ndarray) -> dict:
    """The 95% interval calibrated on validation rows (``X``, ``y``, their mutation ``counts``, and the head's
    ``mean`` and ``std`` there). A head with a modelled scale of its own (``predict_latent``: the GP) is
    calibrated on that scale (``space: latent``), where its errors are Gaussian; its intervals are made there
    and mapped back (``interval_ends``), so they are asymmetric and stay inside what the transform can reach
    (the training labels' range under normal scores). Other heads: on the labels' scale."""
    if _latent(model):
        latent_mean, latent_std = model.predict_latent(X)
        return {**calibrate_interval(model.to_latent(y), latent_mean, latent_std, counts), "space": "latent"}
    return calibrate_interval(y, mean, std, counts)


def interval_ends(model: Estimator, X: np.ndarray, mean: np.ndarray, std: np.ndarray, interval: dict, counts
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of ``calibrate``'s ``interval`` for rows ``X`` (the head's ``mean``, ``std`` there), on the
    scale it was calibrated on and in label units."""
    if interval.get("space") == "latent":
        lower, upper = interval_bounds(*model.predict_latent(X), interval, counts)
        return model.to_labels(lower), model.to_labels(upper)
    return interval_bounds(mean, std, interval, counts)


def add_intervals(model: Estimator, data: SplitData, mean: np.ndarray, std: np.ndarray,
                  predictions: pd.DataFrame) -> dict:
    """The 95% interval (calibrated on valid) and the raw spread it is calibrated from (``member_spread``) as
    prediction columns; returns the calibration. (``sd``, what a user reads, is added once the interval is
    final: ``mimo.models.metrics.with_sd``.)"""
    valid = data.mask("valid")
    counts = data.rows.n_mutations
    X = data.rows.embeddings
    interval = calibrate(model, X[valid], data.rows.labels[valid], counts[valid], mean[valid], std[valid])
    predictions["lower"], predictions["upper"] = interval_ends(model, X, mean, std, interval, counts)
    predictions["member_spread"] = std
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


MIN_GROUP = 20  # fewer variants of one mutation count: noise, not a figure


def zero_shot_spearman(table: pd.DataFrame, dataset: str, source: str | None = None) -> dict:
    """Zero-shot scores against the labels (``mimo.zero_shot_scores``'s table: ``label``, ``score``,
    ``n_mutations``, and ``covered`` for a file's scores). Variants without a label, and those a file gives no
    signal (``covered`` false), are left out; a Spearman per mutation count where there are several counts and at
    least ``MIN_GROUP`` variants of it. Returns ``spearman`` (None where undefined or fewer than 2 variants),
    ``n``, ``left_out``, ``by_mutations`` [(count, spearman, n)] and ``lines`` (what to print; ``source``, the
    model or file the scores came from, is named in them)."""
    labelled = table[table["label"].notna()]
    lines, left_out = [], 0
    if "covered" in table and not labelled["covered"].all():
        left_out = int((~labelled["covered"].astype(bool)).sum())
        lines.append(f"{left_out} labelled variants not covered by the file: left out")
        labelled = labelled[labelled["covered"].astype(bool)]
    out = {"spearman": None, "n": len(labelled), "left_out": left_out, "by_mutations": [], "lines": lines}
    if len(labelled) < 2:
        return out
    fmt = lambda r: "n/a" if r is None else f"{r:.3f}"  # noqa: E731
    out["spearman"] = spearman(labelled["label"].to_numpy(), labelled["score"].to_numpy())
    of = f"of {source} " if source else ""
    lines.append(f"{dataset}: zero-shot Spearman {of}{fmt(out['spearman'])} over {len(labelled)} variants")
    if labelled["n_mutations"].nunique() > 1:
        for count, part in labelled.groupby("n_mutations"):
            if len(part) >= MIN_GROUP:
                r = spearman(part["label"].to_numpy(), part["score"].to_numpy())
                out["by_mutations"].append((int(count), r, len(part)))
                lines.append(f"  {count} mutations: {fmt(r)} ({len(part)} variants)")
    return out
