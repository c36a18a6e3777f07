"""Runs: the one place that fits a head and writes a run directory, and reads one back.

A run directory holds ``metrics.json`` (metrics on train/valid/test, the head's parameters, the split's name
and hash), ``predictions.csv``, ``source.json`` (cache, dataset record, features manifest: what `mimo predict`
needs to featurize new input), ``model.pt`` (``mimo.models.registry``'s one format) and, for neural heads,
``loss_curve.svg``.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mimo.pipeline import threads
from mimo.pipeline.errors import DataError

from .base import Estimator
from .data import SplitData
from .metrics import (calibrate_interval, interval_bounds, interval_metrics, metrics_by_mutations,
                      regression_metrics, spearman_ties_broken, tied_share, uncertainty_metrics)
from .registry import MODEL_FILE, load_model, save_model
from .support import TrainingSupport, mark_support, mutation_format, substitution_sets
from .svg import line_chart, scatter_chart

PARTS = ("train", "valid", "test")
RUN_FILES = ("metrics.json", "source.json")
DEFAULT_ROOT = "runs"


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and all((path / name).is_file() for name in RUN_FILES)


def check_run_dir(path: str | Path) -> Path:
    """``path`` if it is a run directory, else a DataError saying what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise DataError("not a run directory: no such directory", path)
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise DataError(f"not a run directory: no {' or '.join(missing)}", path)
    return path


def default_run_dir(model: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """``runs/<timestamp>-<model>``, with a suffix when that exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(root) / f"{stamp}-{model}"
    suffix = 1
    while out.exists():
        suffix += 1
        out = Path(root) / f"{stamp}-{model}-{suffix}"
    return out


def prepare_run_dir(out: str | Path, force: bool = False) -> Path:
    """Check, before any training, that ``out`` can become a run directory: refused when it exists and is not
    empty (unless ``force``); its parent is created and must be writable. Returns a fresh staging directory
    beside ``out``, renamed into place by ``commit_run_dir`` once everything is written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError("--out exists and is not a directory", out)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError("--out is not empty (a run is never written over another; choose another --out, or "
                        "pass --force to replace it)", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
    except OSError as exc:
        raise DataError(f"cannot write the run directory here ({exc.strerror or exc})", out) from None
    return staging


def commit_run_dir(staging: Path, out: Path) -> Path:
    """Move a completely written run into place (replacing ``out`` only when ``prepare_run_dir`` allowed it)."""
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(staging, out)
    return out


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
    metrics["split_unused_rows"] = data.source.get("split_unused_rows", 0)
    if "partial_cache" in data.source:
        metrics["partial_cache"] = data.source["partial_cache"]
    metrics.update(extra or {})
    predictions = pd.DataFrame({
        "id": data.rows.ids, "split": data.split, "mutations": data.rows.mutations,
        "n_mutations": data.rows.n_mutations, "y": data.rows.labels, "prediction": prediction,
    })
    return metrics, predictions


def _member_metrics(model: Estimator, data: SplitData, members: np.ndarray, metrics: dict,
                    predictions: pd.DataFrame, interval: dict) -> None:
    """Members' spread as uncertainty: per-member test metrics, how well the spread tracks the error, and the
    coverage of the intervals in ``predictions`` (calibrated by ``_add_intervals``, widened where no signal)."""
    mean, std = members.mean(axis=1), members.std(axis=1)
    valid, test = data.mask("valid"), data.mask("test")
    labels = data.rows.labels
    groups = getattr(model, "groups_", None)
    names = groups.labels() if groups is not None else None
    metrics["members"] = [{"member": k, "mutations": None if names is None else names[k],
                           "test": regression_metrics(labels[test], members[test, k])}
                          for k in range(members.shape[1])]
    metrics["uncertainty"] = {part: uncertainty_metrics(labels[mask], mean[mask], std[mask])
                              for part, mask in (("test", test), ("valid", valid))}
    lower, upper = predictions["lower"].to_numpy(), predictions["upper"].to_numpy()
    metrics["uncertainty"]["interval"] = {
        **interval, **{part: interval_metrics(labels[mask], lower[mask], upper[mask])
                                       for part, mask in (("valid", valid), ("test", test))}}


def _add_intervals(data: SplitData, members: np.ndarray, predictions: pd.DataFrame) -> dict:
    """``std`` and the 95% interval (calibrated on valid) as prediction columns; returns the calibration."""
    mean, std = members.mean(axis=1), members.std(axis=1)
    valid = data.mask("valid")
    counts = data.rows.n_mutations
    interval = calibrate_interval(data.rows.labels[valid], mean[valid], std[valid], counts[valid])
    predictions["std"] = std
    predictions["lower"], predictions["upper"] = interval_bounds(mean, std, interval, counts)
    return interval


def _support(data: SplitData) -> tuple[TrainingSupport, list]:
    """What the train rows cover, and every row's substitutions (parsed once)."""
    info = data.source["dataset"]
    sets = substitution_sets(data.rows.mutations, info.get("parent"), mutation_format(info), data.rows.n_mutations)
    train = np.flatnonzero(data.mask("train"))
    return TrainingSupport.from_sets([sets[i] for i in train], data.rows.labels[train]), sets


def fit_run(model: Estimator, data: SplitData, out: str | Path | None = None, *, force: bool = False,
            log: Callable[[str], None] | None = None, root: str | Path = DEFAULT_ROOT) -> "Run":
    """Fit ``model`` on the train split (validation for model choice and early stopping), evaluate it on every
    split, and write the run directory ``out`` (default ``runs/<timestamp>-<head>``). ``out`` is checked
    before training; the run appears complete or not at all."""
    out = Path(out) if out is not None else default_run_dir(model.name, root)
    staging = prepare_run_dir(out, force)
    try:
        _, seconds = timed(lambda: model.fit(data.X("train"), data.y("train"), data.X("valid"), data.y("valid"),
                                             counts=data.n_mutations("train"), counts_valid=data.n_mutations("valid"),
                                             log=log))
        members = model.predict_members(data.rows.embeddings)
        check_finite(members, "the model's predictions")
        extra = {"params": model.get_params(), **model.run_summary(), "threads": threads.POLICY.summary()}
        metrics, predictions = evaluate(data, members.mean(axis=1), model.name, seconds, extra)
        interval = _add_intervals(data, members, predictions) if members.shape[1] > 1 else None
        support, sets = _support(data)
        info = data.source["dataset"]
        predictions = mark_support(predictions, support, used_manifest(model, data.source["features"]),
                                   data.rows.mutations, data.rows.n_mutations, info.get("parent"),
                                   mutation_format(info), sets)
        if interval is not None:
            _member_metrics(model, data, members, metrics, predictions, interval)
        test = predictions["split"] == "test"
        metrics["support"] = {"test_rows_with_unseen_substitutions": int((predictions["unseen"][test] > 0).sum()),
                              "test_rows_with_unseen_sites": int((predictions["unseen_sites"][test] > 0).sum()),
                              "test_rows_without_signal": int(predictions["no_signal"][test].sum())}
        check_finite_metrics(metrics)
        _write(staging, out, metrics, data.source, predictions, support, model)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Run(out, metrics, data.source, model)


def _fit_one(model: Estimator, data: SplitData, train: np.ndarray, valid: np.ndarray, refit: bool,
             log: Callable[[str], None] | None) -> tuple[Estimator, Estimator]:
    """Fit on ``train`` rows with ``valid`` for the choices (alpha, epochs); with ``refit``, fit again on both
    with those choices. Returns (the model fitted on train, the final model)."""
    rows, y, counts = data.rows.embeddings, data.rows.labels, data.rows.n_mutations
    chosen = model.clone()
    chosen.fit(rows[train], y[train], rows[valid], y[valid], counts=counts[train], counts_valid=counts[valid], log=log)
    if not refit:
        return chosen, chosen
    both = train | valid
    final = model.clone(**chosen.refit_params())
    final.fit(rows[both], y[both], rows[valid], y[valid], counts=counts[both], counts_valid=counts[valid])
    return chosen, final


def fit_cv(model: Estimator, data: SplitData, out: str | Path | None = None, *, refit: bool = True,
           force: bool = False, log: Callable[[str], None] | None = None, root: str | Path = DEFAULT_ROOT) -> "Run":
    """Cross-validation as ProteinGym scores it: for each fold, train on the others and predict it; ONE
    Spearman over all pooled out-of-fold predictions (``test``), plus per-fold figures (``per_fold``).

    ``data.split`` holds fold ids (``load_cv_data``). For held-out fold k, the next fold is the inner
    validation (choices such as ridge's alpha and the number of epochs are made there, and MIMO's intervals
    calibrated there: a fold disjoint from training, as the held-out one is); with ``refit`` the model is then
    refitted on all other folds with those choices. The run's saved model is fitted the same way on every fold,
    for `mimo predict`."""
    out = Path(out) if out is not None else default_run_dir(f"{model.name}-cv", root)
    staging = prepare_run_dir(out, force)
    folds = np.asarray(data.split, dtype=object)
    ids = sorted({f for f in folds if f != "none"}, key=int)
    labels, n = data.rows.labels, len(folds)
    info = data.source["dataset"]
    fmt, parent = mutation_format(info), info.get("parent")
    columns = {name: np.full(n, np.nan) for name in ("prediction", "std", "lower", "upper")}
    marks = pd.DataFrame({"unseen": pd.array([None] * n, dtype="Int64"),
                          "unseen_sites": pd.array([None] * n, dtype="Int64"), "no_signal": np.zeros(n, bool)})
    per_fold, member_counts, intervals = [], [], []
    try:
        start = time.perf_counter()
        for i, fold in enumerate(ids):
            test, valid = folds == fold, folds == ids[(i + 1) % len(ids)]
            train = (folds != "none") & ~test & ~valid
            chosen, final = _fit_one(model, data, train, valid, refit, log)
            members = final.predict_members(data.rows.embeddings[test])
            check_finite(members, "the model's predictions")
            columns["prediction"][test] = members.mean(axis=1)
            member_counts.append(members.shape[1])
            if members.shape[1] > 1:  # calibrated on the inner validation fold, by the model that had not seen it
                inner = chosen.predict_members(data.rows.embeddings[valid])
                counts = data.rows.n_mutations
                interval = calibrate_interval(labels[valid], inner.mean(axis=1), inner.std(axis=1), counts[valid])
                std = members.std(axis=1)
                columns["std"][test] = std
                columns["lower"][test], columns["upper"][test] = interval_bounds(members.mean(axis=1), std, interval,
                                                                                 counts[test])
                intervals.append(interval)
            seen = train | valid
            support = TrainingSupport.from_rows(data.rows.mutations[seen], data.rows.n_mutations[seen], labels[seen],
                                                parent, fmt)
            marked = mark_support(pd.DataFrame({k: v[test] for k, v in columns.items()}), support,
                                  used_manifest(final, data.source["features"]), data.rows.mutations[test],
                                  data.rows.n_mutations[test], parent, fmt)
            for name in ("lower", "upper"):
                columns[name][test] = marked[name].to_numpy()
            for name in ("unseen", "unseen_sites", "no_signal"):
                marks.loc[test, name] = marked[name].to_numpy()
            per_fold.append({"fold": fold, "validation_fold": ids[(i + 1) % len(ids)],
                             **regression_metrics(labels[test], columns["prediction"][test]),
                             "rows_without_signal": int(marked["no_signal"].sum())})
        seconds = time.perf_counter() - start
        tested = folds != "none"
        prediction = columns["prediction"]
        metrics = {"model": model.name, "features": data.features, "dataset": data.dataset, "split": data.split_name,
                   "split_hash": data.split_hash,
                   "cv": {"scheme": data.split_name, "folds": len(ids), "refit": refit,
                          "inner_validation": "the next fold"},
                   "test": {**regression_metrics(labels[tested], prediction[tested]),
                            "spearman_ties_broken": spearman_ties_broken(labels[tested], prediction[tested]),
                            "tied_share": tied_share(prediction[tested]),
                            "by_mutations": metrics_by_mutations(labels[tested], prediction[tested],
                                                                 data.rows.n_mutations[tested])},
                   "per_fold": per_fold,
                   "mean_fold_spearman": _mean([f["spearman"] for f in per_fold]),
                   "fit_seconds": round(seconds, 3), "params": model.get_params(),
                   "support": {"test_rows_without_signal": int(marks["no_signal"][tested].sum())}}
        predictions = pd.DataFrame({"id": data.rows.ids, "split": np.where(tested, "test", "none"),
                                    "fold": folds, "mutations": data.rows.mutations,
                                    "n_mutations": data.rows.n_mutations, "y": labels, "prediction": prediction})
        members_count = min(member_counts)  # `fit auto` may choose a single-output head in some folds
        if members_count > 1:
            for name in ("std", "lower", "upper"):
                predictions[name] = columns[name]
            metrics["uncertainty"] = {
                "test": uncertainty_metrics(labels[tested], prediction[tested], columns["std"][tested]),
                "interval": {"level": intervals[0]["level"], "calibration": "per fold, on its inner validation fold",
                             "test": interval_metrics(labels[tested], columns["lower"][tested],
                                                      columns["upper"][tested])}}
        for name in ("unseen", "unseen_sites", "no_signal"):
            predictions[name] = marks[name].to_numpy()
        check_finite_metrics(metrics)
        # the model `mimo predict` uses: the same recipe on every fold (the first as inner validation)
        everything = folds != "none"
        chosen, final = _fit_one(model, data, everything & (folds != ids[0]), folds == ids[0], refit, None)
        first = folds == ids[0]
        inner = chosen.predict_members(data.rows.embeddings[first])
        if inner.shape[1] > 1:  # the saved model's intervals, for `mimo predict`
            metrics.setdefault("uncertainty", {}).setdefault("interval", {}).update(calibrate_interval(
                labels[first], inner.mean(axis=1), inner.std(axis=1), data.rows.n_mutations[first]))
        support = TrainingSupport.from_rows(data.rows.mutations[everything], data.rows.n_mutations[everything],
                                            labels[everything], parent, fmt)
        _write(staging, out, metrics, data.source, predictions, support, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Run(out, metrics, data.source, final)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


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


def _write(staging: Path, out: Path, metrics: dict, source: dict, predictions: pd.DataFrame,
           support: TrainingSupport, model: Estimator) -> None:
    """Every file of a run into ``staging``, then the whole run into place at ``out``."""
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    (staging / "source.json").write_text(json.dumps(source, indent=2) + "\n")
    predictions.to_csv(staging / "predictions.csv", index=False)  # shortest exact repr: metrics recompute exactly
    support.save(staging)
    save_model(model, staging / MODEL_FILE)
    if "history" in metrics:
        plot_loss_curve(metrics, staging / "loss_curve.svg")
    plot_test_predictions(metrics, predictions, staging / "test_predictions.svg")
    commit_run_dir(staging, out)


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass
class Run:
    """A fitted run: its directory, metrics, source and (loaded when first needed) model."""

    directory: Path
    metrics: dict
    source: dict
    _model: Estimator | None = field(default=None, repr=False)

    @property
    def model(self) -> Estimator:
        if self._model is None:
            self._model = load_model(self.directory)
        return self._model

    @property
    def parent(self) -> str | None:
        return self.source["dataset"].get("parent")

    @cached_property
    def support(self) -> TrainingSupport:
        """The substitutions and positions of the run's training rows (``support.json``; for runs written
        before it, read from the training rows of ``predictions.csv``)."""
        support = TrainingSupport.load(self.directory)
        if support is None:
            table = pd.read_csv(self.directory / "predictions.csv", dtype={"mutations": str},
                                keep_default_na=False)
            train = table[table["split"] == "train"]
            info = self.source["dataset"]
            support = TrainingSupport.from_rows(train["mutations"].tolist(), train["n_mutations"].tolist(),
                                                train["y"].astype(float), info.get("parent"), mutation_format(info))
        return support

    def predict(self, X: np.ndarray, mutations=None, n_mutations=None) -> pd.DataFrame:
        """``prediction`` for each row of features ``X``; with several members also ``std`` and the run's
        calibrated 95% interval ``lower``, ``upper``. With the rows' mutation strings (and counts; the run's
        dataset's format), also ``unseen``, ``unseen_sites`` and ``no_signal`` (see ``mimo.models.support``)."""
        members = self.model.predict_members(X)
        check_finite(members, "the model's predictions")
        out = pd.DataFrame({"prediction": members.mean(axis=1)})
        if members.shape[1] > 1:
            out["std"] = members.std(axis=1)
            interval = self.metrics.get("uncertainty", {}).get("interval")
            if interval is not None:
                out["lower"], out["upper"] = interval_bounds(out["prediction"].to_numpy(), out["std"].to_numpy(),
                                                             interval, n_mutations)
        if mutations is not None:
            info = self.source["dataset"]
            out = mark_support(out, self.support, used_manifest(self.model, self.source["features"]), mutations,
                               n_mutations, info.get("parent"), mutation_format(info))
        return out


def load_run(directory: str | Path) -> Run:
    """A run directory written by ``fit_run`` (or by an earlier version of mimo)."""
    directory = check_run_dir(directory)
    metrics = json.loads((directory / "metrics.json").read_text())
    source = json.loads((directory / "source.json").read_text())
    return Run(directory, metrics, source)


def summary_line(metrics: dict) -> str:
    """One human line: test Spearman and MSE, valid Spearman (cross-validation: per-fold mean), fit time."""
    t, v = metrics["test"], metrics.get("valid", {})

    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    ties = ""
    if t.get("tied_share", 0) > 0.01:  # say what the ties are worth, as they raise Spearman
        ties = f" ({100 * t['tied_share']:.0f}% tied; ties broken at random: {fmt(t['spearman_ties_broken'])})"
    if "cv" in metrics:
        return (f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']}, "
                f"{metrics['cv']['folds']} folds): pooled out-of-fold Spearman {fmt(t['spearman'])}{ties}, MSE "
                f"{fmt(t['mse'])}; per fold {', '.join(fmt(f['spearman']) for f in metrics['per_fold'])}; "
                f"fit {metrics['fit_seconds']:.2f}s")
    return (f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']} split): "
            f"test Spearman {fmt(t['spearman'])}{ties}, test MSE {fmt(t['mse'])}, "
            f"valid Spearman {fmt(v.get('spearman'))}, fit {metrics['fit_seconds']:.2f}s")


def _trained_params(metrics: dict) -> dict:
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
                            f"Adam, StepLR, lr={_trained_params(metrics)['lr']:g}, MSE",
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
