"""Runs: fit a head on a split and write its run directory (``fit_run``); cross-validation is ``cv.fit_cv``,
the directory ``rundir``, evaluation ``evaluate``. This module is the entry point the API and CLI use."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from mimo.pipeline.runtime import threads

from mimo.models.estimators.base import Estimator
from mimo.models.runs.cv import fit_cv
from mimo.models.data import SplitData
from mimo.models.runs.evaluate import (add_intervals, check_finite_metrics, check_parts, label_range, label_warnings,
                                       prediction_warnings,
                                       member_metrics, part_metrics, predict_spread, predictions_table, timed,
                                       training_support, used_manifest, with_data_blocks)
from mimo.models.runs.record import RunRecord, support_counts
from mimo.models.runs.directory import (DEFAULT_ROOT, Run, check_run_dir, default_run_dir, is_run_dir, load_run, prepare_run_dir,
                     release_run_dir, write_run)
from mimo.models.report.summary import summary_line
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.runs.support import mark_support
from mimo.models.metrics import with_sd
from mimo.models.zero_shot import zero_shot_baselines

__all__ = ["DEFAULT_ROOT", "Run", "RunRecord", "check_run_dir", "fit_cv", "fit_run", "is_run_dir", "load_run",
           "summary_line"]


def fit_run(model: Estimator, data: SplitData, out: str | Path | None = None, *, force: bool = False,
            log: Callable[[str], None] | None = None, root: str | Path = DEFAULT_ROOT) -> "Run":
    """Fit ``model`` on the train split (validation for model choice and early stopping), evaluate it on every
    split, and write the run directory ``out`` (default ``runs/<timestamp>-<head>``). ``out`` is checked
    before training; the run appears complete or not at all. Its record (``metrics.json``) is a
    ``RunRecord`` of kind ``split``; warnings it holds are in ``run.metrics["warnings"]``."""
    check_parts(data)
    model = with_data_blocks(model, data)
    out = Path(out) if out is not None else default_run_dir(model.name, root)
    staging = prepare_run_dir(out, force)
    try:
        _, seconds = timed(lambda: model.fit(data.X("train"), data.y("train"), data.X("valid"), data.y("valid"),
                                             counts=data.n_mutations("train"), counts_valid=data.n_mutations("valid"),
                                             log=log))
        mean, std, members = predict_spread(model, data.rows.embeddings)
        predictions = predictions_table(data, mean)
        interval = add_intervals(model, data, mean, std, predictions) if std is not None else None
        support, sets = training_support(data)
        info = data.source["dataset"]
        predictions = mark_support(predictions, support, used_manifest(model, data.source["features"]),
                                   data.rows.mutations, data.rows.n_mutations, info.get("parent"),
                                   mutation_format_from(info), sets, features=data.rows.embeddings,
                                   joined=data.source["features"])
        extra = {**({"partial_cache": data.source["partial_cache"]} if "partial_cache" in data.source else {}),
                 **model.run_summary()}
        if interval is not None:
            member_metrics(model, data, members, mean, std, extra, predictions, interval)
        predictions = with_sd(predictions)  # the one uncertainty column a user reads (after no-signal widening)
        test = predictions["split"] == "test"
        baseline = zero_shot_baselines(data.rows.embeddings[test.to_numpy()], data.rows.labels[test.to_numpy()],
                                       mean[test.to_numpy()], data.blocks)
        extra.update({"zero_shot": baseline} if baseline else {})  # the features' own zero-shot Spearman
        parts = part_metrics(data, mean)
        record = RunRecord(
            model=model.name, features=data.features, dataset=data.dataset, split=data.split_name,
            split_hash=data.split_hash, kind="split", train=parts["train"], valid=parts["valid"],
            test=parts["test"], fit_seconds=seconds, params=model.get_params(),
            label_range=label_range(data.rows.labels[data.mask("train")]),
            support=support_counts(predictions[test]),
            unused_rows=data.source.get("split_unused_rows", 0), threads=threads.POLICY.summary(),
            warnings=label_warnings(data.rows.labels[data.mask("train")])
            + prediction_warnings(mean, data.rows.labels[data.mask("train")], extra), extra=extra)
        metrics = record.metrics()
        check_finite_metrics(metrics)
        write_run(staging, out, metrics, data.source, predictions, support, model)
    finally:
        release_run_dir(staging)
    return Run(out, metrics, data.source, model)
