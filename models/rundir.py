"""Run directories: checked before training, written whole or not at all, read back.

A run directory holds ``metrics.json`` (metrics on train/valid/test, the head's parameters, the split's name
and hash), ``predictions.csv``, ``source.json`` (cache, dataset record, features manifest: what `mimo predict`
needs to featurize new input), ``support.json``, ``model.npz`` (``mimo.models.registry``'s one format) and
pictures (``test_predictions.svg``; ``loss_curve.svg`` for neural heads).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError

from .base import Estimator
from .evaluate import check_finite, used_manifest
from .metrics import interval_bounds
from .plots import plot_loss_curve, plot_test_predictions
from .registry import MODEL_FILE, load_model, save_model
from .support import TrainingSupport, mark_support, mutation_format

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


def write_run(staging: Path, out: Path, metrics: dict, source: dict, predictions: pd.DataFrame,
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
