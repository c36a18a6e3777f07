"""Cross-validation as ProteinGym scores it: each fold held out in turn, one pooled Spearman."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mimo.pipeline.runtime import threads

from mimo.models.estimators.base import Estimator
from mimo.models.data import SplitData
from mimo.models.runs.evaluate import (calibrate, check_finite_metrics, held_out_extras, interval_ends, label_range,
                                       label_warnings, predict_spread, prediction_warnings, used_manifest,
                                       with_data_blocks)
from mimo.models.metrics import interval_metrics, regression_metrics, uncertainty_metrics
from mimo.models.runs.record import KINDS, RunRecord, support_counts
from mimo.pipeline.errors import DataError
from mimo.models.runs.directory import DEFAULT_ROOT, Run, default_run_dir, prepare_run_dir, release_run_dir, write_run
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.runs.support import TrainingSupport, mark_support, substitution_sets
from mimo.models.metrics import with_sd
from mimo.models.zero_shot import zero_shot_baselines


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
    Spearman over all pooled out-of-fold predictions (``metrics["test"]``; their rows are ``split="oof"`` in
    ``predictions.csv``), plus per-fold figures (``per_fold``). The record is a ``RunRecord`` of kind ``cv``.

    ``data.split`` holds fold ids (``load_cv_data``). For held-out fold k, the next fold is the inner
    validation (choices such as ridge's alpha and the number of epochs are made there, and MIMO's intervals
    calibrated there: a fold disjoint from training, as the held-out one is); with ``refit`` the model is then
    refitted on all other folds with those choices. The run's saved model is fitted the same way on every fold,
    for `mimo predict`."""
    model = with_data_blocks(model, data)
    folds = np.asarray(data.split, dtype=object)
    ids = fold_ids(folds, data.split_name)
    out = Path(out) if out is not None else default_run_dir(f"{model.name}-cv", root)
    staging = prepare_run_dir(out, force)
    labels, n = data.rows.labels, len(folds)
    info = data.source["dataset"]
    fmt, parent = mutation_format_from(info), info.get("parent")
    columns = {name: np.full(n, np.nan) for name in ("prediction", "std", "lower", "upper")}
    marks = pd.DataFrame({"unseen": pd.array([None] * n, dtype="Int64"),
                          "unseen_sites": pd.array([None] * n, dtype="Int64"), "no_signal": np.zeros(n, bool)})
    per_fold, spreads, intervals = [], [], []
    # every row's substitutions read once: each fold's training support is made from its rows' sets
    sets = substitution_sets(data.rows.mutations, parent, fmt, data.rows.n_mutations)

    def support_of(rows: np.ndarray) -> TrainingSupport:
        return TrainingSupport.from_sets([sets[i] for i in np.flatnonzero(rows)], labels[rows])

    try:
        start = time.perf_counter()
        for i, fold in enumerate(ids):
            test, valid = folds == fold, folds == ids[(i + 1) % len(ids)]
            train = (folds != "none") & ~test & ~valid
            chosen, final = _fit_one(model, data, train, valid, refit, log)
            mean, std, _ = predict_spread(final, data.rows.embeddings[test])
            columns["prediction"][test] = mean
            spreads.append(std is not None)
            if std is not None:  # calibrated on the inner validation fold, by the model that had not seen it
                inner_mean, inner_std, _ = predict_spread(chosen, data.rows.embeddings[valid])
                counts = data.rows.n_mutations
                interval = calibrate(chosen, data.rows.embeddings[valid], labels[valid], counts[valid], inner_mean,
                                     inner_std)
                columns["std"][test] = std
                columns["lower"][test], columns["upper"][test] = interval_ends(final, data.rows.embeddings[test], mean,
                                                                               std, interval, counts[test])
                intervals.append(interval)
            seen = train | valid
            support = support_of(seen)
            marked = mark_support(pd.DataFrame({k: v[test] for k, v in columns.items()}), support,
                                  used_manifest(final, data.source["features"]), data.rows.mutations[test],
                                  data.rows.n_mutations[test], parent, fmt, features=data.rows.embeddings[test],
                                  joined=data.source["features"])
            for name in ("lower", "upper"):
                columns[name][test] = marked[name].to_numpy()
            for name in ("unseen", "unseen_sites", "no_signal"):
                marks.loc[test, name] = marked[name].to_numpy()
            per_fold.append({"fold": fold, "validation_fold": ids[(i + 1) % len(ids)],
                             **regression_metrics(labels[test], columns["prediction"][test]),
                             "rows_without_signal": int(marked["no_signal"].sum()), **_choice(chosen)})
        seconds = time.perf_counter() - start
        tested = folds != "none"
        prediction = columns["prediction"]
        extra = {"partial_cache": data.source["partial_cache"]} if "partial_cache" in data.source else {}
        if all(spreads):  # `fit auto` may choose a single-output head in some folds
            extra["uncertainty"] = {
                "test": uncertainty_metrics(labels[tested], prediction[tested], columns["std"][tested]),
                "interval": {"level": intervals[0]["level"], "calibration": "per fold, on its inner validation fold",
                             "test": interval_metrics(labels[tested], columns["lower"][tested],
                                                      columns["upper"][tested])}}
        predictions = pd.DataFrame({"id": data.rows.ids, "split": np.where(tested, KINDS["cv"], "none"),
                                    "fold": folds, "mutations": data.rows.mutations,
                                    "n_mutations": data.rows.n_mutations, "y": labels, "prediction": prediction})
        if all(spreads):  # the calibrated interval, its sd (what a user reads) and the raw spread behind them
            for name in ("lower", "upper"):
                predictions[name] = columns[name]
            predictions["member_spread"] = columns["std"]
            predictions = with_sd(predictions)
        for name in ("unseen", "unseen_sites", "no_signal"):
            predictions[name] = marks[name].to_numpy()
        # the model `mimo predict` uses: the same recipe on every fold (the first as inner validation)
        everything = folds != "none"
        first = folds == ids[0]
        fitted = everything & ~first if not refit else everything
        chosen, final = _fit_one(model, data, everything & ~first, first, refit, None)
        inner_mean, inner_std, _ = predict_spread(chosen, data.rows.embeddings[first])
        if inner_std is not None:  # the saved model's intervals, for `mimo predict`
            extra.setdefault("uncertainty", {}).setdefault("interval", {}).update(calibrate(
                chosen, data.rows.embeddings[first], labels[first], data.rows.n_mutations[first], inner_mean,
                inner_std))
        # the saved model's choices (alpha, epochs, fit auto's head); not its loss curve: refitted, its "valid"
        # fold is among its training rows
        extra.update({k: v for k, v in final.run_summary().items() if k != "history"})
        baseline = zero_shot_baselines(data.rows.embeddings[tested], labels[tested], prediction[tested], data.blocks)
        extra.update({"zero_shot": baseline} if baseline else {})  # the features' own zero-shot Spearman
        own, _, _ = predict_spread(final, data.rows.embeddings[fitted])
        record = RunRecord(
            model=model.name, features=data.features, dataset=data.dataset, split=data.split_name,
            split_hash=data.split_hash, kind="cv", train=regression_metrics(labels[fitted], own),
            valid=regression_metrics(labels[first], inner_mean),
            test={**regression_metrics(labels[tested], prediction[tested]),
                  **held_out_extras(labels[tested], prediction[tested], data.rows.n_mutations[tested])},
            fit_seconds=seconds, params=model.get_params(), label_range=label_range(labels[tested]),
            support=support_counts(predictions[tested]), folds=len(ids),
            refit=refit, per_fold=per_fold, unused_rows=int((~tested).sum()), threads=threads.POLICY.summary(),
            warnings=label_warnings(labels[tested]) + prediction_warnings(prediction[tested], labels[tested], extra),
            extra=extra)
        metrics = record.metrics()
        check_finite_metrics(metrics)
        support = support_of(everything)
        write_run(staging, out, metrics, data.source, predictions, support, final)
    finally:
        release_run_dir(staging)
    return Run(out, metrics, data.source, final)


def fold_ids(folds: np.ndarray, scheme: str) -> list[str]:
    """The fold ids of a fold scheme, in order; one line refuses a split's parts (train/valid/test: that is
    ``fit_run``'s data) and fewer than 3 folds (each held-out fold needs the next one as inner validation and at
    least one more to train on)."""
    ids = {f for f in folds if f != "none"}
    if not all(str(f).lstrip("-").isdigit() for f in ids):
        raise DataError(f"split {scheme!r} holds parts ({', '.join(sorted(map(str, ids))[:3])}), not fold ids: "
                        f"cross-validation needs folds (mimo.load_cv_data, or `mimo fit --cv`); fit a split with "
                        f"fit_run")
    if len(ids) < 3:
        raise DataError(f"fold scheme {scheme!r} has {len(ids)} fold(s): cross-validation here needs at least 3 "
                        f"(each held-out fold takes the next one as its inner validation and trains on the rest); "
                        f"give --cv 3 or more")
    return sorted(ids, key=int)


def _choice(model: Estimator) -> dict:
    """What a model chose on its validation fold (``fit auto``: the head and features), for the fold's record."""
    chosen = model.run_summary().get("auto", {}).get("chosen")
    return {} if chosen is None else {"chosen": chosen}


