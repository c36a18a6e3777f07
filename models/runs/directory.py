"""Run directories: checked before training, written whole or not at all, read back.

A run directory holds ``metrics.json`` (metrics on train/valid/test, the head's parameters, the split's name
and hash), ``predictions.csv``, ``source.json`` (cache, dataset record, features manifest: what `mimo predict`
needs to featurize new input), ``support.json``, ``model.npz`` (``mimo.models.estimators.registry``'s one format) and
pictures (``test_predictions.svg``; ``loss_curve.svg`` for neural heads).
"""
from __future__ import annotations

import fcntl
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
from mimo.pipeline.writes import check_name_length, disk_errors

from mimo.models.estimators.base import Estimator
from mimo.models.runs.evaluate import interval_ends, predict_spread, used_manifest
from mimo.models.report.html import REPORT_FILE, write_html_report
from mimo.models.metrics import with_sd
from mimo.models.report.plots import write_run_pictures
from mimo.models.estimators.registry import MODEL_FILE, load_model, save_model
from mimo.models.report.summary import summary_line
from mimo.models.report.tables import runs_table
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.models.runs.record import upgrade
from mimo.models.runs.support import TrainingSupport, mark_support

RUN_FILES = ("metrics.json", "source.json")
DEFAULT_ROOT = "runs"


def run_identity(source: dict) -> dict:
    """What ties a model file to its run: the features it reads and the data they were built from."""
    features = source["features"]
    return {"features": features.get("features"), "dataset": source["dataset"].get("name"),
            "dataset_checksum": features.get("dataset_checksum")}


def is_run_dir(path: str | Path) -> bool:
    """A finished run: its files are there and it is not the staging directory of a fit (killed or running)."""
    path = Path(path)
    return path.is_dir() and not _is_staging(path) and all((path / name).is_file() for name in RUN_FILES)


def check_run_dir(path: str | Path) -> Path:
    """``path`` if it is a run directory, else a DataError saying what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise DataError("not a run directory: no such directory", path)
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise DataError(f"not a run directory: no {' or '.join(missing)}", path)
    return path


RUN_OWN_FILES = ("metrics.json", "source.json", "predictions.csv", "support.json", MODEL_FILE, REPORT_FILE,
                 "test_predictions.svg", "loss_curve.svg")  # what a fit writes: the run itself


def check_outside_run(path: str | Path, run_dir: str | Path, option: str = "--out") -> None:
    """Refuse an output ``path`` that is one of the run's own files (through a symlink or a hard link too):
    writing there would destroy the run. Other files inside the run directory (a scan, a plate) are allowed."""
    path, run = Path(path), Path(run_dir)
    try:
        target = path.resolve()
        own = [run.resolve() / name for name in RUN_OWN_FILES]
    except (RuntimeError, OSError) as exc:
        raise DataError(f"{option} cannot be resolved ({exc})", path) from None
    same = target in own or (target.exists() and any(f.exists() and os.path.samefile(target, f) for f in own))
    if same:
        raise DataError(f"{option} is the run's own {target.name}: writing there would destroy the run; choose "
                        f"another file", path)


def default_run_dir(model: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """``runs/<timestamp>-<model>``, with a suffix when that exists."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(root) / f"{stamp}-{model}"
    suffix = 1
    while out.exists():
        suffix += 1
        out = Path(root) / f"{stamp}-{model}-{suffix}"
    return out


def _resolved(out: Path) -> Path:
    try:
        return out.resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13)
        raise DataError(f"--out cannot be resolved ({exc}); choose another --out", out) from None


def _is_staging(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def prepare_run_dir(out: str | Path, force: bool = False) -> Path:
    """Check, before any training, that ``out`` can become a run directory: refused when it exists and is not
    empty, unless ``force`` and it is a mimo run (nothing else is ever replaced); refused while another fit
    writes the same ``out``. Its parent is created and must be writable. Returns a fresh staging directory
    beside ``out`` (left-over ones of killed fits to the same ``out`` are removed), renamed into place by
    ``commit_run_dir`` once everything is written."""
    out = Path(out)
    check_name_length(out, "--out")
    resolved = _resolved(out)
    if out.is_symlink():  # replacing it would remove the link's target or fail half-way
        raise DataError(f"--out is a symbolic link (to {os.readlink(out)}): give the folder itself; nothing was "
                        f"touched", out)
    if out.exists() and not out.is_dir():
        raise DataError("--out exists and is not a directory", out)
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DataError("--out is not empty (a run is never written over another; choose another --out, or "
                            "pass --force to replace an earlier run)", out)
        if not is_run_dir(out):
            raise DataError("--force replaces only a run directory of mimo (with metrics.json and source.json); "
                            "this one holds other files, so nothing was touched: choose another --out", out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(resolved)
        for stale in out.parent.glob(f".{out.name}.*.tmp"):  # staging of a killed fit to the same --out
            shutil.rmtree(stale, ignore_errors=True)
        staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
    except OSError as exc:
        raise DataError(f"cannot write the run directory here ({exc.strerror or exc})", out) from None
    _LOCKS[staging] = lock
    return staging


_LOCKS: dict[Path, int] = {}  # staging directory -> the descriptor holding its --out's lock


def _lock(out: Path) -> int:
    """An exclusive lock on ``out``: a hidden lock file beside it, held until the fit ends (or dies)."""
    path = out.parent / f".{out.name}.lock"
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise DataError("another fit is writing this --out right now; wait for it, or choose another --out",
                            out) from None
        try:  # the file we locked is still the one at the path (not removed by a fit that just ended)
            if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)


def release_run_dir(staging: Path) -> None:
    """Remove an unfinished staging directory and release its lock (``fit_run``'s and ``fit_cv``'s cleanup)."""
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
    descriptor = _LOCKS.pop(staging, None)
    if descriptor is not None:
        name = staging.name.removeprefix(".").rsplit(".", 2)[0]  # .<out>.<hex>.tmp
        try:
            (staging.parent / f".{name}.lock").unlink()
        except OSError:
            pass
        os.close(descriptor)


def commit_run_dir(staging: Path, out: Path) -> Path:
    """Move a completely written run into place (replacing ``out`` only when ``prepare_run_dir`` allowed it)."""
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(staging, out)
    return out


def write_run(staging: Path, out: Path, metrics: dict, source: dict, predictions: pd.DataFrame,
           support: TrainingSupport, model: Estimator) -> None:
    """Every file of a run into ``staging``, then the whole run into place at ``out``."""
    with disk_errors(out, "the run was not written (an earlier run at this --out, if any, is unchanged)"):
        _write_files(staging, metrics, source, predictions, support, model)
        write_html_report([Run(staging, metrics, source)], staging / REPORT_FILE, names=[out.name])  # the run's page to share
    commit_run_dir(staging, out)


def _write_files(staging: Path, metrics: dict, source: dict, predictions: pd.DataFrame, support: TrainingSupport,
                 model: Estimator) -> None:
    (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    (staging / "source.json").write_text(json.dumps(source, indent=2) + "\n")
    predictions.to_csv(staging / "predictions.csv", index=False)  # shortest exact repr: metrics recompute exactly
    support.save(staging)
    save_model(model, staging / MODEL_FILE, run_identity(source))
    write_run_pictures(staging, metrics, source, predictions)


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

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r}: {summary_line(self.metrics)})"

    @property
    def model(self) -> Estimator:
        if self._model is None:
            self._model = load_model(self.directory, identity=run_identity(self.source))
        return self._model

    @property
    def parent(self) -> str | None:
        return self.source["dataset"].get("parent")

    def predictions(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The run's ``predictions.csv`` (ids and mutation strings as text; ``columns``: just those)."""
        path = self.directory / "predictions.csv"
        numbers = {name: ["", "nan", "NaN"]
                   for name in ("y", "prediction", "sd", "lower", "upper", "member_spread", "std")}  # std: older runs
        try:
            return pd.read_csv(path, dtype={"id": str, "mutations": str}, keep_default_na=False, na_values=numbers,
                               usecols=columns)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"cannot read the run's predictions.csv ({str(exc).splitlines()[0][:160]}); fit the run "
                            f"again", path) from None

    def training_rows(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The rows of ``predictions.csv`` that the saved model was fitted on: a split's train rows, every
        out-of-fold row of a cross-validation (its saved model is refitted on all folds; the one place this is
        decided, from ``metrics["evaluation"]["training"]``)."""
        table = self.predictions(None if columns is None else sorted({"split", *columns}))
        return table[table["split"].isin(self.metrics["evaluation"]["training"])].reset_index(drop=True)

    @cached_property
    def support(self) -> TrainingSupport:
        """The substitutions and positions of the run's training rows (``support.json``; for runs written
        before it, read from the training rows of ``predictions.csv``)."""
        support = TrainingSupport.load(self.directory)
        if support is None:
            train = self.training_rows(["mutations", "n_mutations", "y"])
            info = self.source["dataset"]
            support = TrainingSupport.from_rows(train["mutations"].tolist(), train["n_mutations"].tolist(),
                                                train["y"].astype(float), info.get("parent"), mutation_format_from(info))
        return support

    def predict(self, X: np.ndarray, mutations=None, n_mutations=None) -> pd.DataFrame:
        """``prediction`` for each row of features ``X``; with an uncertainty, ``sd`` (the standard deviation the
        run's calibrated 95% interval implies: half its width / 1.96, the scale acquisitions use), that interval
        ``lower``, ``upper``, and ``member_spread`` (the head's raw spread it is calibrated from: MIMO's members'
        std, about 10x too narrow to be an error bar, or the GP's predictive std). With the rows' mutation strings (and counts; the run's dataset's format), also
        ``unseen``, ``unseen_sites`` and ``no_signal`` (see ``mimo.models.runs.support``; a no-signal row's interval,
        and so its ``sd``, spans the training labels)."""
        mean, std, _ = predict_spread(self.model, X)
        out = pd.DataFrame({"prediction": mean})
        if std is not None:
            interval = self.metrics.get("uncertainty", {}).get("interval")
            if interval is not None:
                out["lower"], out["upper"] = interval_ends(self.model, X, out["prediction"].to_numpy(), std, interval,
                                                           n_mutations)
            out["member_spread"] = std
        if mutations is not None:
            info = self.source["dataset"]
            out = mark_support(out, self.support, used_manifest(self.model, self.source["features"]), mutations,
                               n_mutations, info.get("parent"), mutation_format_from(info), features=X,
                               joined=self.source["features"])
        level = self.metrics.get("uncertainty", {}).get("interval", {}).get("level", 0.95)
        return with_sd(out, level)


def read_run_file(directory: Path, name: str, required: tuple[str, ...] = ()) -> dict:
    """A run's JSON file as a dict, with the keys this version reads; a DataError names a damaged one."""
    path = directory / name
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the run's {name} ({exc}); was it edited by hand? Fit the run again", path) from None
    if not isinstance(value, dict):
        raise DataError(f"the run's {name} is not a JSON object; fit the run again", path)
    missing = [key for key in required if key not in value]
    if missing:
        raise DataError(f"the run's {name} lacks {', '.join(missing)}; was it edited by hand? Fit the run again",
                        path)
    return value


def load_run(directory: str | Path) -> Run:
    """A run directory written by ``fit_run`` (or by an earlier version of mimo)."""
    directory = check_run_dir(directory)
    metrics = read_run_file(directory, "metrics.json", ("model", "features", "split", "test", "fit_seconds"))
    metrics = upgrade(metrics, directory / "metrics.json")
    source = read_run_file(directory, "source.json", ("dataset", "features"))
    return Run(directory, metrics, source)


def gather_runs(run_dirs: list[str | Path]) -> pd.DataFrame:
    """The runs table (``mimo.models.report.tables.runs_table``) of the run directories ``run_dirs``."""
    return runs_table([load_run(d) for d in run_dirs])
