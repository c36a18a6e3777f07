"""What a run says to a person, in one place: the headline, what it chose, how far its uncertainty can be
trusted (the calibrated intervals, not the raw member spread), and warnings a number alone would hide. The CLI
prints these lines; ``mimo report`` reads the same metrics."""
from __future__ import annotations

NO_SIGNAL_SHARE = 0.1  # warn when at least this share of the test rows get no signal from the features


def is_cv(metrics: dict) -> bool:
    """Whether a run was cross-validated: ``evaluation.kind`` of metrics.json (``mimo.models.runs.record``); a
    ``cv`` entry in a hand-made or format-1 record."""
    return metrics.get("evaluation", {}).get("kind") == "cv" or "cv" in metrics


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def summary_line(metrics: dict) -> str:
    """One human line: test Spearman and MSE, valid Spearman (cross-validation: per-fold mean), fit time."""
    t, v = metrics["test"], metrics.get("valid", {})

    ties = ""
    if t.get("tied_share", 0) > 0.01:  # say what the ties are worth, as they raise Spearman
        ties = f" ({100 * t['tied_share']:.0f}% tied; ties broken at random: {_fmt(t['spearman_ties_broken'])})"
    what = f"{metrics['model']} on {metrics['dataset']}/{metrics['features']}"
    chosen = metrics.get("auto", {}).get("chosen")
    if chosen is not None and is_cv(metrics):  # fit auto --cv: each fold chose its own head
        heads = fold_choices(metrics)
        what = (f"fit auto on {metrics['dataset']} (chose {', '.join(heads)} in the {len(heads)} folds among "
                f"{metrics['features']})" if heads else
                f"fit auto on {metrics['dataset']} (among {metrics['features']})")
    elif chosen is not None:  # fit auto: the model it chose first, then what it chose among
        from mimo.models.estimators.auto import describe

        what = f"{describe(chosen)} on {metrics['dataset']} (fit auto's choice among {metrics['features']})"
    if is_cv(metrics):
        folds = metrics.get("evaluation", {}).get("folds") or metrics.get("cv", {}).get("folds")
        return (f"{what} ({metrics['split']}, {folds} folds): pooled out-of-fold Spearman "
                f"{_fmt(t['spearman'])}{ties}, MSE {_fmt(t['mse'])}; per fold "
                f"{', '.join(_fmt(f['spearman']) for f in metrics['per_fold'])}; fit {metrics['fit_seconds']:.2f}s")
    return (f"{what} ({metrics['split']} split): test Spearman {_fmt(t['spearman'])}{ties}, test MSE "
            f"{_fmt(t['mse'])}, valid Spearman {_fmt(v.get('spearman'))}, fit {metrics['fit_seconds']:.2f}s")


def fold_choices(metrics: dict) -> list[str]:
    """The head each fold of `fit auto --cv` chose (``per_fold[i]["chosen"]``), in fold order."""
    return [f["chosen"]["head"] for f in metrics.get("per_fold", []) if f.get("chosen")]


def auto_lines(metrics: dict, shown: int = 10) -> list[str]:
    """What `fit auto` scored and chose (for the saved model under --cv), best first: ``shown`` candidates."""
    auto = metrics.get("auto")
    if not auto:
        return []
    from mimo.models.estimators.auto import describe

    scored = [c for c in auto["candidates"] if c["valid_spearman"] is not None]
    whose = "for the saved model, " if is_cv(metrics) else ""
    lines = [f"auto: {whose}{len(scored)} of {len(auto['candidates'])} candidates scored by {auto['selection']} "
             f"(budget {auto['budget_seconds']:g}s per fit); best first:"]
    for entry in auto["candidates"][:shown]:
        score = entry["valid_spearman"]
        text = entry.get("skipped") if score is None else f"{score:.3f}"
        lines.append(f"  {text:>7}  {describe(entry)}")
    lines.append(f"chosen: {describe(auto['chosen'])}")
    return lines


def zero_shot_lines(metrics: dict) -> list[str]:
    """The features' own zero-shot Spearman on the same held-out rows as the model's (``metrics["zero_shot"]``,
    ``mimo.models.zero_shot``), one line, and a warning for each zero-shot column the model does not beat."""
    z = metrics.get("zero_shot")
    if not z:
        return []
    rows = "out-of-fold" if is_cv(metrics) else "test"
    figures = ", ".join(f"{c['block']}:{c['column']} {_fmt(c['spearman'])}" for c in z["columns"])
    lines = [f"zero-shot baseline on the same {z['rows']} {rows} rows: {figures} (the model: "
             f"{_fmt(z['model_spearman'])})"]
    for c in z["columns"]:
        if not c["beaten"]:
            lines.append(f"warning: the model ({_fmt(z['model_spearman'])}) does not beat the zero-shot score "
                         f"{c['block']}:{c['column']} alone ({_fmt(c['spearman'])}) on the {rows} rows: its "
                         f"predictions add nothing to that score here")
    return lines


def run_notes(metrics: dict, source: dict) -> list[str]:
    """Notes and warnings about a fitted run, each one line (for standard error)."""
    notes = []
    if metrics.get("split_unused_rows"):
        notes.append(f"note: {metrics['split_unused_rows']} rows of the dataset are in no part of split "
                     f"{metrics['split']} (neither train, valid nor test): they are not used")
    if (metrics.get("auto") or {}).get("stopped_early"):
        notes.append(f"note: fit auto stopped early: {metrics['auto']['stopped_early']}")
    if "routing_note" in metrics:
        notes.append(f"note: {metrics['routing_note']}")
    if "cv_note" in source:
        notes.append(f"note: {source['cv_note']}")
    if "label_leak" in source:
        notes.append(f"warning: {source['label_leak']}")
    if "partial_cache" in metrics:
        p = metrics["partial_cache"]
        notes.append(f"warning: fitted on a partial cache ({p['cached_rows']} of {p['dataset_rows']} rows; "
                     f"recorded in metrics.json)")
    tested = metrics["test"].get("n") or 0
    blind = metrics.get("support", {}).get("test_rows_without_signal", 0)
    if tested and blind >= NO_SIGNAL_SHARE * tested:
        what = "out-of-fold" if is_cv(metrics) else "test"
        figure = "pooled Spearman" if is_cv(metrics) else "test Spearman"
        notes.append(f"warning: {blind} of {tested} {what} rows get no signal from the features (substitutions or "
                     f"positions never measured in training; column no_signal of predictions.csv): the {figure} "
                     f"{_fmt(metrics['test'].get('spearman'))} does not measure the model there"
                     + ("; with every row so, it is an artefact of the folds' means" if blind == tested else ""))
    interval = metrics.get("uncertainty", {}).get("interval", {}).get("test")
    low_high = metrics.get("label_range")
    if interval and low_high and interval["mean_width"] > low_high[1] - low_high[0]:
        notes.append(f"warning: the 95% intervals are wider on average ({interval['mean_width']:.2f}) than the "
                     f"whole range of training labels ({low_high[1] - low_high[0]:.2f}): the model is unsure here")
    return notes


def uncertainty_lines(metrics: dict) -> list[str]:
    """How far the run's uncertainty can be trusted: calibrated 95% intervals' coverage and width."""
    u = metrics.get("uncertainty")
    if not u or "interval" not in u:
        return []
    i = u["interval"]
    if is_cv(metrics):
        if "test" not in i:  # `fit auto` chose a head without a spread in some folds: no out-of-fold intervals
            return ["95% intervals: not measured out of fold (some folds chose a head without a spread); the saved "
                    "model's intervals are calibrated on its inner validation fold"]
        t = i["test"]
        return [f"95% intervals (each fold calibrated on its inner validation fold): out-of-fold coverage "
                f"{t['coverage']:.3f}, mean width {t['mean_width']:.2f}"]
    if "test" not in i or "valid" not in i or "test" not in u:
        return []
    rho = u["test"]["spearman_std_abs_error"]
    return [f"{100 * i['level']:.0f}% intervals (calibrated on valid): coverage on valid {i['valid']['coverage']:.3f}, "
            f"on test {i['test']['coverage']:.3f}; mean width on test {i['test']['mean_width']:.2f}; "
            f"Spearman(spread, |error|) on test {_fmt(rho)}"]
