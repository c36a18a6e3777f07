"""`mimo fit sklearn`: a scikit-learn regressor by name (any of ``sklearn.linear_model``, ``sklearn.ensemble``,
``sklearn.gaussian_process``), with its parameters given as ``NAME=VALUE`` literals, saved in the project's
``model.npz`` as arrays and JSON only.

A fitted scikit-learn estimator is usually saved with pickle, which a run file must never need (loading a
pickle can run code). So the fitted state is exported attribute by attribute: numbers, strings and arrays as
they are; a tree (``sklearn.tree._tree.Tree``) as the arrays of its ``__getstate__`` (nodes as a structured
array, values) and its constructor's arguments; a list of fitted sub-estimators (a forest's trees) one by one.
Loading builds the same class, from an allow-list of scikit-learn modules, and sets those attributes back.
What can be saved this way: linear models (``coef_``/``intercept_``), ``RandomForestRegressor`` and
``ExtraTreesRegressor``. Others (gaussian processes hold a kernel object, boosting holds a loss object,
generalised linear models a private link) are refused when ``fit`` is called, before the work; and after
every fit the export is rebuilt and must predict what the fitted estimator predicts, or ``fit`` says so.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import json
import math

import numpy as np

from mimo.models.estimators.base import Estimator, FitData, Param

MODULES = ("sklearn.linear_model", "sklearn.ensemble", "sklearn.gaussian_process")
REBUILDABLE = MODULES + ("sklearn.tree",)  # what a model file may name (a forest holds sklearn.tree trees)
FORESTS = ("RandomForestRegressor", "ExtraTreesRegressor")
UNSAVABLE_LINEAR = {  # in sklearn.linear_model, but predicting through a private attribute
    "TweedieRegressor": "it predicts through a private link function",
    "PoissonRegressor": "it predicts through a private link function",
    "GammaRegressor": "it predicts through a private link function",
}
LITERALS = {"None": None, "null": None, "True": True, "true": True, "False": False, "false": False}
CHECK_ROWS = 256  # training rows predicted by the fitted and the rebuilt estimator, which must agree


# ------------------------------------------------------------------------------------------ choosing
def _public_class(name: str, modules=MODULES):
    """The class ``name`` of one of ``modules`` (public names only), or None."""
    if not name.isidentifier() or name.startswith("_"):
        return None
    for module in modules:
        cls = getattr(importlib.import_module(module), name, None)
        if inspect.isclass(cls):
            return cls
    return None


def regressors() -> list[str]:
    """Names of the regressors in ``MODULES``."""
    from sklearn.base import RegressorMixin

    found = set()
    for module in MODULES:
        for name, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass):
            if issubclass(cls, RegressorMixin) and not name.startswith("_"):
                found.add(name)
    return sorted(found)


def regressor_class(name: str):
    """The scikit-learn regressor class called ``name``; ValueError (one line) for anything else."""
    from sklearn.base import RegressorMixin

    cls = _public_class(name)
    if cls is None:
        close = difflib.get_close_matches(name, regressors(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f"; known: {', '.join(regressors())}"
        raise ValueError(f"--estimator: no regressor {name!r} in {', '.join(MODULES)}{hint}")
    if not issubclass(cls, RegressorMixin):
        raise ValueError(f"--estimator: {name} is not a regressor (mimo fits numeric labels)")
    return cls


def savable(cls) -> str | None:
    """Why a fitted ``cls`` cannot be saved without pickle, or None when it can."""
    if cls.__name__ in FORESTS:
        return None
    if cls.__module__.startswith("sklearn.linear_model"):
        return UNSAVABLE_LINEAR.get(cls.__name__)
    return "only linear models and random forests / extra trees are saved as arrays"


# ------------------------------------------------------------------------------------------ parameters
def _check_literal(value, text: str):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"--param: {text!r} is not a finite number")
    if isinstance(value, list):
        for item in value:
            _check_literal(item, text)
    elif value is not None and not isinstance(value, (bool, int, float, str, list)):
        raise ValueError(f"--param: {text!r} must be a number, true/false, None, a string or a list")
    return value


def parse_value(text: str):
    """A ``--param`` value as a literal: an int, a float, true/false (or True/False), None (or null), a JSON
    list, or else the text itself as a string (quote it, e.g. '"1"', for a string of digits). No eval."""
    text = text.strip()
    if text in LITERALS:
        return LITERALS[text]
    try:
        number = float(text)  # also inf, nan, 1e999, which JSON would not read as numbers
    except ValueError:
        number = 0.0
    if not math.isfinite(number):
        raise ValueError(f"--param: {text!r} is not a finite number")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return _check_literal(value, text)


def parse_params(pairs) -> dict | None:
    """``("n_estimators=200", "max_depth=8")`` as ``{"n_estimators": 200, "max_depth": 8}`` (None if empty)."""
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--param: give NAME=VALUE (e.g. max_depth=8), not {pair!r}")
        if name in out:
            raise ValueError(f"--param: {name} is given twice")
        out[name] = parse_value(text)
    return out or None


def make_estimator(name: str, params: dict | None, seed: int):
    """The regressor ``name`` with ``params`` (and ``random_state=seed`` where it has one and none is given),
    every parameter checked the way scikit-learn's ``fit`` checks it."""
    cls = regressor_class(name)
    try:
        known = cls().get_params(deep=False)
    except TypeError:  # e.g. VotingRegressor(estimators) has no default
        raise ValueError(f"--estimator: {name} needs other estimators to be built; it cannot be used here") from None
    params = dict(params or {})
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f"; it has: {', '.join(sorted(known))}"
            raise ValueError(f"--param: {name} has no parameter {key!r}{hint}")
    if "random_state" in known and "random_state" not in params:
        params["random_state"] = seed
    estimator = cls(**params)
    if hasattr(estimator, "_validate_params"):  # scikit-learn >= 1.2: the check its fit runs first
        try:
            estimator._validate_params()
        except ValueError as exc:  # InvalidParameterError: names the parameter, the range and the value
            raise ValueError(f"--param: {exc}") from None
    return estimator


# ------------------------------------------------------------------------------------------ arrays and JSON
def _plain(value, where: str):
    """A number, string, None or list of them, as JSON holds it (numpy scalars as Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"cannot save {where} (a {type(value).__name__}) without pickle")


def _export(value, where: str):
    """One fitted attribute as arrays and JSON values (see the module's docstring)."""
    from sklearn.base import BaseEstimator
    from sklearn.tree._tree import Tree

    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            if value.dtype == object and value.size and all(isinstance(v, BaseEstimator) for v in value.flat):
                return {"__array__": _export(list(value.flat), where), "shape": list(value.shape)}
            raise ValueError(f"cannot save {where} (an array of Python objects) without pickle")
        return value
    if isinstance(value, Tree):
        constructor, args, state = value.__reduce__()
        return {"__tree__": {"n_features": int(args[0]), "n_classes": np.asarray(args[1]), "n_outputs": int(args[2]),
                             "state": {k: v if isinstance(v, np.ndarray) else _plain(v, where)
                                       for k, v in state.items()}}}
    if isinstance(value, BaseEstimator):
        return {"__estimator__": export_estimator(value)}
    if isinstance(value, (list, tuple)) and any(isinstance(v, (np.ndarray, BaseEstimator)) for v in value):
        return {"__list__": {str(i): _export(v, f"{where}[{i}]") for i, v in enumerate(value)},
                "length": len(value)}
    return _plain(value, where)


def _import(value):
    """The inverse of ``_export``."""
    from sklearn.tree._tree import Tree

    if not isinstance(value, dict):
        return value
    if "__tree__" in value:
        t = value["__tree__"]
        state = _checked_tree(dict(t["state"]), int(t["n_features"]))
        tree = Tree(int(t["n_features"]), np.asarray(t["n_classes"], dtype=np.intp), int(t["n_outputs"]))
        tree.__setstate__(state)
        return tree
    if "__estimator__" in value:
        return rebuild_estimator(value["__estimator__"])
    if "__list__" in value:
        return [_import(value["__list__"][str(i)]) for i in range(int(value["length"]))]
    if "__array__" in value:
        items = _import(value["__array__"])
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(value["shape"])
    raise ValueError(f"unknown entry {sorted(value)} in a saved scikit-learn estimator")


def _checked_tree(state: dict, n_features: int) -> dict:
    """A saved tree's arrays, checked before its compiled code walks them: every child after its parent and
    within the tree (so a walk ends), every split on an existing feature, one value row per node. scikit-learn
    checks the arrays' types only; a crafted file could otherwise send ``predict`` outside them."""
    nodes, values = state.get("nodes"), state.get("values")
    if not isinstance(nodes, np.ndarray) or nodes.dtype.names is None or not isinstance(values, np.ndarray):
        raise ValueError("a saved tree has no node and value arrays")
    count, index = len(nodes), np.arange(len(nodes))
    left, right, feature = (nodes[k].astype(np.int64) for k in ("left_child", "right_child", "feature"))
    leaf = left == -1
    inner_ok = (left > index) & (right > index) & (left < count) & (right < count) & (feature >= 0) & (
        feature < n_features)
    if state.get("node_count") != count or len(values) != count or not np.all(leaf & (right == -1) | ~leaf & inner_ok):
        raise ValueError("a saved tree's nodes do not form a tree over its features")
    return state


def _module_of(cls) -> str:
    """The public module (one of ``REBUILDABLE``) that exports ``cls``."""
    for module in REBUILDABLE:
        if getattr(importlib.import_module(module), cls.__name__, None) is cls:
            return module
    raise ValueError(f"cannot save a {cls.__module__}.{cls.__name__}: not from {', '.join(REBUILDABLE)}")


def export_estimator(estimator) -> dict:
    """A (fitted) scikit-learn estimator as arrays and JSON values: its class, parameters, fitted attributes."""
    cls = type(estimator)
    fitted = {name: _export(value, f"{cls.__name__}.{name}") for name, value in vars(estimator).items()
              if name.endswith("_") and not name.startswith("_")}
    return {"module": _module_of(cls), "class": cls.__name__,
            "params": {k: _plain(v, f"{cls.__name__}({k}=...)") for k, v in estimator.get_params(deep=False).items()},
            "fitted": fitted}


def rebuild_estimator(state: dict):
    """The estimator ``export_estimator`` saved: a class from ``REBUILDABLE`` by name, its parameters and its
    fitted attributes set back. Nothing else is imported or run."""
    if state.get("module") not in REBUILDABLE:
        raise ValueError(f"a saved estimator names module {state.get('module')!r}, not one of {REBUILDABLE}")
    cls = _public_class(str(state.get("class")), (state["module"],))
    if cls is None:
        raise ValueError(f"no class {state.get('class')!r} in {state['module']}")
    estimator = cls(**state.get("params", {}))
    for name, value in state.get("fitted", {}).items():
        if not (name.endswith("_") and not name.startswith("_")):
            raise ValueError(f"a saved estimator sets {name!r}, which is not a fitted attribute")
        setattr(estimator, name, _import(value))
    return estimator


def _json_roundtrip(state):
    """``state`` as ``model.npz`` gives it back: arrays as they are, everything else through JSON."""
    if isinstance(state, dict):
        return {k: _json_roundtrip(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return state
    return json.loads(json.dumps(state))


# ------------------------------------------------------------------------------------------ the head
class SklearnRegressor(Estimator):
    """A scikit-learn regressor by name, its parameters given as NAME=VALUE literals.

    ``estimator``: a class of ``sklearn.linear_model``, ``sklearn.ensemble`` or ``sklearn.gaussian_process``;
    ``estimator_params``: its parameters; ``random_state`` is ``seed`` unless given. It is fitted on the
    training rows (validation rows choose nothing here, and ``fit(X, y)`` carves none). Only estimators that
    can be saved without pickle are accepted (see ``mimo.models.estimators.external``).

    Fitted attributes: ``estimator_`` (the fitted scikit-learn estimator), ``n_features_in_``,
    ``validation_rows_`` (always None).
    """

    name = "sklearn"
    needs_validation = False
    _param_specs = {
        "estimator": Param("str", "Regressor class of sklearn.linear_model, sklearn.ensemble or "
                           "sklearn.gaussian_process, e.g. RandomForestRegressor, Ridge, ElasticNet."),
        "estimator_params": Param("pairs", "A parameter of the estimator as NAME=VALUE (repeat the option); "
                                  "VALUE: an int, float, true/false, None or a string.", none_ok=True,
                                  flag="--param"),
        "seed": Param("int", "random_state of the estimator, unless --param random_state=... gives one.", low=0),
    }

    def __init__(self, *, estimator: str = "RandomForestRegressor", estimator_params: dict | None = None,
                 seed: int = 0, threads: int | None = None):
        self._store(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        estimator = make_estimator(self.estimator, self.estimator_params, self.seed)
        why = savable(type(estimator))
        if why is not None:
            raise ValueError(f"--estimator {self.estimator}: a fitted one cannot be saved without pickle ({why}); "
                             f"use a linear model or {' / '.join(FORESTS)}")

    def _fit(self, data: FitData) -> None:
        estimator = make_estimator(self.estimator, self.estimator_params, self.seed)
        self.estimator_ = estimator.fit(data.X, data.y)
        self._check_saved_predicts_the_same(data.X[:CHECK_ROWS])

    def _check_saved_predicts_the_same(self, X: np.ndarray) -> None:
        try:
            again = rebuild_estimator(_json_roundtrip(export_estimator(self.estimator_)))
            same = np.allclose(again.predict(X), self.estimator_.predict(X), rtol=1e-9, atol=1e-12)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"--estimator {self.estimator}: the fitted estimator cannot be saved without "
                             f"pickle ({exc})") from None
        if not same:
            raise ValueError(f"--estimator {self.estimator}: the fitted estimator, saved as arrays and rebuilt, "
                             f"does not predict the same; it cannot be saved without pickle")

    def _members(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.predict(X), dtype=np.float64).reshape(len(X), 1)

    def run_summary(self) -> dict:
        """The parameters the estimator was fitted with (its defaults included)."""
        params = self.estimator_.get_params(deep=False)
        return {"estimator_fitted_with": {k: _plain(v, k) for k, v in params.items()}}

    def fitted_state(self) -> dict:
        import sklearn

        return {"estimator": export_estimator(self.estimator_), "sklearn_version": sklearn.__version__}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        try:
            self.estimator_ = rebuild_estimator(state["estimator"])
        except (ValueError, TypeError, KeyError) as exc:
            import sklearn

            raise ValueError(f"cannot rebuild the saved {self.estimator} (saved with scikit-learn "
                             f"{state.get('sklearn_version')}, this is {sklearn.__version__}): {exc}") from None
        self.n_features_in_ = int(self.estimator_.n_features_in_)
        self.validation_rows_ = None
