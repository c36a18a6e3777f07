"""`mimo report`'s runs table: one row per run (head, parameters, features, split, losses, Spearman, intervals)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mimo.models.estimators.registry import HEADS, head_class
from mimo.models.report.summary import is_cv


def _train_params(metrics: dict) -> dict:
    """The head's parameters, flat (runs written before the training parameters were the head's own nest
    them under ``train``)."""
    params = dict(metrics.get("params", {}))
    return {**params.pop("train", {}), **params}


def _settings(metrics: dict) -> str:
    """Training summary: alpha for ridge, epochs and learning rate for neural heads."""
    params = _train_params(metrics)
    if "auto" in metrics:
        chosen = metrics["auto"]["chosen"]
        return f"chose {chosen['head']} on {'+'.join(chosen['features'])}"
    if metrics["model"] == "ridge":
        return f"alpha {params.get('alpha', metrics.get('alpha', float('nan'))):.3g}"
    if metrics["model"] == "sklearn":  # no epochs: the scikit-learn estimator's name
        return str(params.get("estimator", "?"))
    if "epochs_run" not in metrics:  # a head not trained by epochs (gp: marginal likelihood)
        return ""
    return (f"{metrics.get('epochs_run', '?')} epochs (best {metrics.get('best_epoch', '?')}), "
            f"lr {params.get('lr', float('nan')):g}")


def _distinguishing(metrics: dict) -> str:
    """The head's parameters that differ from its defaults (training ones aside), so two runs never look alike."""
    if metrics["model"] not in HEADS:
        return ""
    defaults = head_class(metrics["model"]).param_defaults()
    skip = {"device", "alphas", "blocks", "candidates"}
    params = _train_params(metrics)
    out = []
    for name, value in params.items():
        if name in skip or name not in defaults:
            continue
        default = defaults[name]
        if isinstance(default, tuple):
            default = list(default)
        if value != default:
            out.append(f"{name}={','.join(map(str, value)) if isinstance(value, list) else value}")
    return " ".join(out)


def held_out_metrics(metrics: dict) -> dict:
    """The figures on the rows the run was measured on: ``test``, or ``oof`` (out of fold) where a run names them so."""
    return metrics.get("test") or metrics.get("oof") or {}


def scheme(metrics: dict) -> str:
    """How the run was measured: its split, or its fold scheme and fold count under cross-validation."""
    if is_cv(metrics):
        folds = metrics.get("evaluation", {}).get("folds") or metrics.get("cv", {}).get("folds")
        return f"{metrics['split']} ({folds}-fold CV)" if folds else f"{metrics['split']} (CV)"
    return f"{metrics['split']} split"


def _lines_of(value) -> list[str]:
    """Message lines kept in a record: a string, a list of strings, or of {"message": ...} (kind in "kind")."""
    if isinstance(value, str):
        return [value]
    out = []
    for item in value or []:
        if isinstance(item, dict) and item.get("message"):
            kind = item.get("kind") or item.get("level") or ""
            message = item["message"]
            out.append(f"{kind}: {message}" if kind and not message.startswith(kind) else message)
        elif isinstance(item, str):
            out.append(item)
    return out


def _prefixed(line: str, kind: str) -> str:
    return line if line.startswith(("warning", "note")) else f"{kind}: {line}"


def messages(record: dict, source: dict | None = None) -> list[str]:
    """Every warning and note a command printed about a run (or a plate): those its record keeps (``warnings``,
    ``notes``), and, for a run's metrics with ``source``, those ``summary.run_notes`` derives; each once,
    warnings first."""
    lines = [_prefixed(line, "warning") for line in _lines_of(record.get("warnings"))]
    lines += [_prefixed(line, "note") for line in _lines_of(record.get("notes"))]
    if source is not None:
        from mimo.models.report.summary import run_notes

        try:
            lines += run_notes(record, source)
        except (KeyError, TypeError):  # a record of another shape: its own lists are what it says
            pass
    unique = list(dict.fromkeys(lines))
    return sorted(unique, key=lambda line: not line.startswith("warning"))


def key_table(runs: list, names: list[str] | None = None) -> pd.DataFrame:
    """The runs table that fits a page: run, head, features, scheme, Spearman (test, or pooled out of fold), 95%
    interval coverage and width, warnings (how many), ``best`` (True for the highest Spearman among the runs of
    one dataset and scheme, when there are two or more; the first of those tied at the top) and ``tied`` (how
    many other runs the best ties with)."""
    rows = []
    for run, name in zip(runs, names or [Path(r.directory).name for r in runs]):
        m = run.metrics
        interval = m.get("uncertainty", {}).get("interval", {})
        interval = interval.get("test") or interval.get("oof") or {}
        head = m["model"]
        if m.get("auto", {}).get("chosen"):
            head = f"auto: {m['auto']['chosen']['head']}"
        params = _distinguishing(m) if m["model"] in HEADS else ""
        rows.append({"run": name, "head": f"{head} {params}".strip(), "features": m["features"],
                     "dataset": m.get("dataset", ""), "scheme": scheme(m),
                     "Spearman": held_out_metrics(m).get("spearman"), "coverage": interval.get("coverage"),
                     "width": interval.get("mean_width"),
                     "warnings": sum(line.startswith("warning") for line in messages(m, getattr(run, "source", None)))})
    table = pd.DataFrame(rows, columns=["run", "head", "features", "dataset", "scheme", "Spearman", "coverage",
                                        "width", "warnings"])
    rho = pd.to_numeric(table["Spearman"], errors="coerce")
    keys = [table["dataset"], table["scheme"]]
    top = rho.notna() & (rho == rho.groupby(keys).transform("max"))
    top &= table.groupby(keys)["run"].transform("size") > 1
    table["best"] = top & ~top.groupby(keys).cumsum().gt(1)  # the first of runs tied at the top
    table["tied"] = (top.groupby(keys).transform("sum") - 1).where(table["best"], 0).astype(int)
    if table["dataset"].nunique() <= 1:
        table = table.drop(columns="dataset")
    return table


def runs_table(runs: list) -> pd.DataFrame:
    """One row per run (anything with ``directory`` and ``metrics``, as ``Run``): model, its non-default
    parameters, dataset, features, split (and hash), training summary, train/valid/test loss (MSE), Spearman,
    fit seconds."""
    rows = []
    for run in runs:
        m = run.metrics
        row = {"run": Path(run.directory).name, "model": m["model"], "params": _distinguishing(m),
               "dataset": m.get("dataset", ""), "features": m["features"],
               "split": m["split"] + (f" ({m['split_hash'][:8]})" if m.get("split_hash") else ""),
               "epochs & lr": _settings(m) if "cv" not in m else f"{m['cv']['folds']}-fold CV",
               "train loss": m.get("train", {}).get("mse"), "valid loss": m.get("valid", {}).get("mse"),
               "test loss": held_out_metrics(m).get("mse"), "valid Spearman": m.get("valid", {}).get("spearman"),
               "test Spearman": held_out_metrics(m).get("spearman"),
               "test Spearman, ties broken": held_out_metrics(m).get("spearman_ties_broken"),
               "fit s": m.get("fit_seconds")}
        u = m.get("uncertainty", {})
        row["test Spearman(std, abs err)"] = u.get("test", {}).get("spearman_std_abs_error")
        interval = u.get("interval", {}).get("test", {})  # calibrated on validation rows, not the raw spread
        row["test 95% interval coverage"] = interval.get("coverage")
        row["test 95% interval width"] = interval.get("mean_width")
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_cell(value) -> str:
    """A markdown table cell: floats to 3 decimals, missing empty; ``|`` escaped and line breaks as spaces (a cell
    never ends its row or its table early)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return " ".join(text.splitlines()).replace("|", "\\|")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every text cell (and column name) that a spreadsheet would run as a formula (starting with
    = + - @, a tab or a carriage return) prefixed with ``'``: opened in Excel or LibreOffice it reads as text.
    Numbers are left as numbers."""
    def safe(value):
        return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value

    out = table.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(safe)
    out.columns = [safe(str(c)) for c in out.columns]
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency), every cell escaped (``markdown_cell``)."""
    cell = markdown_cell
    lines = ["| " + " | ".join(cell(str(c)) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)
