"""The heads by name, and the one file format every fitted head is saved in (``model.npz``).

``model.npz`` holds numpy arrays only (loaded with ``allow_pickle=False``: a run file cannot run code) plus
one JSON entry with the head's name, its parameters and the fitted state's non-array values. No torch is
needed to read it, so ridge runs never import torch. Runs of earlier versions (``model.pt`` or ``model.pkl``,
format 1) and model files of a format this version does not know are refused in one line that names both
formats: refit them.

Head classes are imported when first asked for, so `mimo fit ridge` does not pay for importing torch.
"""
from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path

import numpy as np

from sklearn.utils.validation import check_is_fitted

from mimo.pipeline.errors import DataError
from mimo.pipeline.writes import write_atomic

from mimo.models.estimators.base import Estimator

HEADS: dict[str, str] = {
    "ridge": "mimo.models.estimators.ridge:ValidatedRidge",
    "mlp": "mimo.models.estimators.neural.regressors:MlpRegressor",
    "cnn": "mimo.models.estimators.neural.regressors:CnnRegressor",
    "ge": "mimo.models.estimators.neural.regressors:GlobalEpistasisRegressor",
    "mimo": "mimo.models.estimators.neural.regressors:MimoRegressor",
    "auto": "mimo.models.estimators.auto:AutoRegressor",
    "gp": "mimo.models.estimators.gp.regressor:GaussianProcessRegressor",
    "sklearn": "mimo.models.estimators.external:SklearnRegressor",
}
MODEL_FILE = "model.npz"
FORMAT = 2  # 1: model.pt (torch pickle, neural heads) or model.pkl (ridge), refused since
OLD_FILES = ("model.pt", "model.pkl")


def head_class(name: str) -> type[Estimator]:
    """The estimator class of a head name (``ridge``, ``mlp``, ``cnn``, ``ge``, ``mimo``)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(HEADS)}")
    module, cls = HEADS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_head(name: str, **params) -> Estimator:
    """A head by name with its own defaults, overridden by ``params`` (checked when it is fitted)."""
    return head_class(name)(**params)


def _flatten(value, path: str, arrays: dict, other: dict) -> None:
    """Arrays (numpy, or anything with ``.numpy()``, e.g. a CPU tensor) to ``arrays``; the rest to ``other``."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}/{key}" if path else str(key), arrays, other)
    elif isinstance(value, np.ndarray):
        arrays[path] = value
    elif hasattr(value, "detach") and hasattr(value, "numpy"):
        arrays[path] = value.detach().cpu().numpy()
    else:
        other[path] = list(value) if isinstance(value, tuple) else value


def _nest(flat: dict) -> dict:
    out: dict = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def save_model(model: Estimator, path: str | Path, identity: dict | None = None) -> Path:
    """One file for any fitted head: its name, parameters and fitted state (written atomically). ``identity``
    (a run's features and dataset checksum) is kept with it, so the file cannot serve another run unnoticed."""
    check_is_fitted(model)  # an unfitted head: scikit-learn's NotFittedError
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    other: dict = {}
    _flatten(model.fitted_state(), "", arrays, other)
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params().items()}
    meta = {"format": FORMAT, "head": model.name, "params": params, "state": other, "arrays": sorted(arrays),
            "identity": identity}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:  # a file object: numpy adds no ".npz" to the temporary name
            np.savez(handle, __meta__=np.array(json.dumps(meta, default=_json_scalar)),
                     **{f"a{i}": arrays[k] for i, k in enumerate(meta["arrays"])})

    return write_atomic(path, write)


def _json_scalar(value):
    """numpy's scalars (a grid search may set a parameter to one) as Python's."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_model(run_dir_or_file: str | Path, device: str = "cpu", identity: dict | None = None) -> Estimator:
    """A fitted head from a run directory (or its model file) of this version's format. With
    ``identity``, a model file that recorded another one (copied from another run) is refused."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        old = [name for name in OLD_FILES if (path / name).exists()]
        if old and not (path / MODEL_FILE).exists():
            path = path / old[0]
        else:
            path = path / MODEL_FILE
            if not path.exists():
                raise DataError(f"no fitted model ({MODEL_FILE}) in the run directory", path.parent)
    if path.name in OLD_FILES:
        raise DataError(f"a model file of format 1 (an earlier mimo's {path.name}); this version reads {MODEL_FILE} "
                        f"of format {FORMAT}: fit the run again", path)
    try:
        with np.load(path, allow_pickle=False) as saved:
            meta = json.loads(str(saved["__meta__"]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else None
                raise DataError(f"a model file of format {str(found)[:20]}; this version reads format {FORMAT}: "
                                f"fit the run again with this version", path)
            flat = {**meta["state"], **{k: saved[f"a{i}"] for i, k in enumerate(meta["arrays"])}}
    except DataError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read the fitted model ({type(exc).__name__}: {exc})", path) from None
    if meta.get("head") not in HEADS:
        raise DataError(f"unknown head {meta.get('head')!r} in the model file (known: {', '.join(HEADS)})", path)
    recorded = meta.get("identity")
    if identity is not None and recorded is not None and recorded != identity:
        differ = next(k for k in identity if recorded.get(k) != identity[k])
        raise DataError(f"this model file belongs to another run ({differ}: {str(recorded.get(differ))[:24]} in the "
                        f"file, {str(identity[differ])[:24]} in the run); copy the whole run directory, not its "
                        f"model file", path)
    try:
        return _rebuild(head_class(meta["head"]), meta["params"], _nest(flat), device)
    except (ValueError, TypeError, KeyError) as exc:  # e.g. a scikit-learn estimator this version cannot rebuild
        raise DataError(f"cannot rebuild the fitted model: {exc}", path) from None


def _rebuild(cls: type[Estimator], params: dict, state: dict, device: str) -> Estimator:
    model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    model._validate_params()  # a hand-edited parameter: scikit-learn's one-line InvalidParameterError
    model.load_fitted_state(state, device)
    return model
