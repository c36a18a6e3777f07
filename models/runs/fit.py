"""Runs: fit a head on a split and write its run directory (``fit_run``); cross-validation is ``cv.fit_cv``,
the directory ``rundir``, evaluation ``evaluate``. This module is the entry point the API and CLI use."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from mimo.pipeline.runtime import threads

from mimo.models.estimators.base import Estimator
from mimo.models.runs.cv import fit_cv
from mimo.models.data import SplitData
from mimo.models.runs.evaluate import (add_intervals, check_finite_metrics, evaluate, member_metrics, predict_spread, timed,
                       training_support, used_manifest)
from mimo.models.runs.directory import (DEFAULT_ROOT, Run, check_run_dir, default_run_dir, is_run_dir, load_run, prepare_run_dir,
                     release_run_dir, write_run)
from mimo.models.report.summary import summary_line
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.runs.support import mark_support

__all__ = ["DEFAULT_ROOT", "Run", "check_run_dir", "fit_cv", "fit_run", "is_run_dir", "load_run", "summary_line"]


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
        mean, std, members = predict_spread(model, data.rows.embeddings)
        extra = {"params": model.get_params(), **model.run_summary(), "threads": threads.POLICY.summary()}
        metrics, predictions = evaluate(data, mean, model.name, seconds, extra)
        interval = add_intervals(data, mean, std, predictions) if std is not None else None
        support, sets = training_support(data)
        info = data.source["dataset"]
        predictions = mark_support(predictions, support, used_manifest(model, data.source["features"]),
                                   data.rows.mutations, data.rows.n_mutations, info.get("parent"),
                                   mutation_format_from(info), sets, features=data.rows.embeddings,
                                   joined=data.source["features"])
        if interval is not None:
            member_metrics(model, data, members, mean, std, metrics, predictions, interval)
        test = predictions["split"] == "test"
        metrics["support"] = {"test_rows_with_unseen_substitutions": int((predictions["unseen"][test] > 0).sum()),
                              "test_rows_with_unseen_sites": int((predictions["unseen_sites"][test] > 0).sum()),
                              "test_rows_without_signal": int(predictions["no_signal"][test].sum())}
        check_finite_metrics(metrics)
        write_run(staging, out, metrics, data.source, predictions, support, model)
    finally:
        release_run_dir(staging)
    return Run(out, metrics, data.source, model)
