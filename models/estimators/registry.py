"""The heads by name, and the one file format every fitted head is saved in (``model.npz``).

``model.npz`` holds numpy arrays only (loaded with ``allow_pickle=False``: a run file cannot run code) plus
one JSON entry with the head's name, its parameters and the fitted state's non-array values. No torch is
needed to read it, so ridge runs never import torch. Runs of earlier versions (``model.pt`` of neural heads,
``model.pkl`` of ridge) keep loading.

Head classes are imported when first asked for, so `mimo fit ridge` does not pay for importing torch.
"""
from __future__ import annotations

import copyreg
import importlib
import json
import os
import pickle
import uuid
import zipfile
from pathlib import Path

import numpy as np

from mimo.pipeline.errors import DataError

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
FORMAT = 2  # 1: model.pt (torch pickle, neural heads, training parameters nested under "train"), model.pkl


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
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    other: dict = {}
    _flatten(model.fitted_state(), "", arrays, other)
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in model.get_params().items()}
    meta = {"format": FORMAT, "head": model.name, "params": params, "state": other, "arrays": sorted(arrays),
            "identity": identity}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp.npz")
    np.savez(tmp, __meta__=np.array(json.dumps(meta, default=_json_scalar)),
             **{f"a{i}": arrays[k] for i, k in enumerate(meta["arrays"])})
    os.replace(tmp, path)
    return path


def _json_scalar(value):
    """numpy's scalars (a grid search may set a parameter to one) as Python's."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_model(run_dir_or_file: str | Path, device: str = "cpu", identity: dict | None = None) -> Estimator:
    """A fitted head from a run directory (or its model file), saved by this or an earlier version. With
    ``identity``, a model file that recorded another one (copied from another run) is refused."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        found = [path / name for name in (MODEL_FILE, "model.pt", "model.pkl") if (path / name).exists()]
        if not found:
            raise DataError(f"no fitted model ({MODEL_FILE}) in the run directory", path)
        path = found[0]
    if path.suffix == ".pkl":
        return _load_pickled_ridge(path)
    if path.suffix == ".pt":
        return _load_torch_head(path, device)
    try:
        with np.load(path, allow_pickle=False) as saved:
            meta = json.loads(str(saved["__meta__"]))
            flat = {**meta["state"], **{k: saved[f"a{i}"] for i, k in enumerate(meta["arrays"])}}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
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
    except ValueError as exc:  # e.g. a scikit-learn estimator saved by a version whose trees this one cannot read
        raise DataError(f"cannot rebuild the fitted model: {exc}", path) from None


def _rebuild(cls: type[Estimator], params: dict, state: dict, device: str) -> Estimator:
    model = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    model.load_fitted_state(state, device)
    return model


def _load_torch_head(path: Path, device: str) -> Estimator:
    """A neural head saved before ``model.npz`` (torch pickle; training parameters under ``train``), read with
    torch's ``weights_only`` unpickler: tensors, numbers, strings and containers only, so it cannot run code."""
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read the fitted model ({type(exc).__name__}: {exc})", path) from None
    classes = {HEADS[name].split(":")[1]: name for name in HEADS}
    if saved.get("class") not in classes:
        raise DataError(f"unknown head {saved.get('class')!r} in the model file", path)
    cls = head_class(classes[saved["class"]])
    params = {k: v for k, v in saved["params"].items() if k != "train"}
    params.update({k: v for k, v in saved["params"]["train"].items() if k in cls.param_defaults()})
    state = {"module": saved["state"], "in_dim": saved["in_dim"], "x_mean": saved["x_mean"], "x_std": saved["x_std"],
             "y_mean": saved["y_mean"], "y_std": saved["y_std"], "extra": saved["extra"]}
    return _rebuild(cls, params, state, device)


def _numpy_globals() -> list:
    """What a pickled numpy array or scalar needs to be rebuilt, and nothing that can run other code."""
    import numpy.core.multiarray as multiarray  # numpy 1.x name, kept as an alias in 2.x

    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, type(np.dtype(np.float64)),
            type(np.dtype(np.float32)), type(np.dtype(np.int64))]


class _LegacyRidgeUnpickler(pickle.Unpickler):
    """Reads ``model.pkl`` of earlier versions (a pickled ``ValidatedRidge`` under the old top-level name
    ``models.ridge``) and refuses every other global, so a crafted file cannot run code."""

    def find_class(self, module: str, name: str):
        if module in ("models.ridge", "mimo.models.estimators.ridge") and name == "ValidatedRidge":
            return _LegacyRidgeState
        allowed = {(g.__module__, g.__name__): g for g in _numpy_globals()}
        allowed[("copyreg", "_reconstructor")] = copyreg._reconstructor
        allowed[("builtins", "object")] = object
        allowed[("builtins", "dict")] = dict
        key = (module.replace("numpy._core", "numpy.core"), name)
        for (mod, attr), value in allowed.items():
            if (mod.replace("numpy._core", "numpy.core"), attr) == key:
                return value
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: a run file holds arrays and numbers only")


class _LegacyRidgeState:
    """Receives the attributes of a pickled ridge (plain ``__dict__``), without running any of its code."""


def _load_pickled_ridge(path: Path) -> Estimator:
    """A ridge run saved before ``model.npz`` (a pickle of the same class), read by an unpickler that accepts
    only numpy arrays and the ridge's attributes."""
    try:
        with open(path, "rb") as handle:
            old = _LegacyRidgeUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"cannot read the fitted model ({exc})", path) from None
    model = head_class("ridge")(alphas=tuple(old.alphas), standardize=old.standardize)
    model.load_fitted_state({"coef": old.coef_, "intercept": old.intercept_, "alpha": old.alpha_,
                             "y_mean": old.y_mean_, "valid_mse": [old.valid_mse_[a] for a in old.alphas]}, "cpu")
    return model
