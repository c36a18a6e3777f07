"""`mimo fit sklearn`: a scikit-learn regressor by name (any of ``sklearn.linear_model``, ``sklearn.ensemble``,
``sklearn.gaussian_process``), with its parameters given as ``NAME=VALUE`` literals, saved in the project's
``model.npz``.

A fitted scikit-learn estimator is usually saved with pickle, which a run file must never need (loading a
pickle can run code). It is saved with skops (``skops.io.dumps``: the estimator's parameters and arrays, no
pickled code), as bytes inside ``model.npz``; loading (``skops.io.loads``) accepts only the types skops trusts
by default (scikit-learn's estimators, numpy, builtins) and those of ``trusted_types()`` (decision trees' node
tables, gaussian-process kernels, GLM losses), and refuses a file that holds any other. The estimator must be
of the class the run names, and every decision tree in it must form a tree over its features (checked on
the tree's public arrays before its compiled ``predict`` walks them). ``HistGradientBoostingRegressor`` is
refused before fitting (its compiled predictors' node tables are not checked that way); after every fit the
saved bytes are loaded back and must predict what the fitted estimator predicts, or ``fit`` says so.
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
UNSAVABLE = {"HistGradientBoostingRegressor": "its compiled tree predictors' node tables are not checked when "
                                                "loaded; GradientBoostingRegressor's trees are"}
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
    if name.startswith("MultiTask"):
        raise ValueError(f"--estimator: {name} fits several labels at once, mimo fits one: use "
                         f"{name.removeprefix('MultiTask')}")
    return cls


def savable(cls) -> str | None:
    """Why a fitted ``cls`` cannot be saved and loaded back safely, or None when it can."""
    return UNSAVABLE.get(cls.__name__)


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


# ------------------------------------------------------------------------------------------ saving
def _plain(value):
    """A number, string, None or list of them, as JSON holds it (numpy scalars as Python ones); anything else
    (an estimator or kernel given as a parameter) as its repr."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


TRUSTED_EXTRA = ("sklearn.tree._tree.Tree",)  # a decision tree's node table (checked by _check_trees)


def trusted_types() -> list[str]:
    """What a saved estimator may hold beyond skops's default trust: decision trees' node tables, the public
    kernels of ``sklearn.gaussian_process.kernels`` and the losses of GLMs (``TweedieRegressor``)."""
    from sklearn._loss import loss
    from sklearn.gaussian_process import kernels

    found = list(TRUSTED_EXTRA)
    found += [f"{kernels.__name__}.{name}" for name, cls in inspect.getmembers(kernels, inspect.isclass)
              if issubclass(cls, kernels.Kernel) and cls.__module__ == kernels.__name__]
    found += [f"{loss.__name__}.{name}" for name, cls in inspect.getmembers(loss, inspect.isclass)
              if issubclass(cls, loss.BaseLoss) and cls.__module__ == loss.__name__]
    return found


def dump_estimator(estimator) -> np.ndarray:
    """A fitted scikit-learn estimator as skops bytes, in a uint8 array (what ``model.npz`` holds)."""
    import skops.io

    return np.frombuffer(skops.io.dumps(estimator), dtype=np.uint8)


def load_estimator(saved: np.ndarray, name: str):
    """The estimator ``dump_estimator`` saved, of class ``name``; a ValueError (one line) for a file that holds
    a type outside skops's default trust and ``trusted_types()``, another class, or a tree that is not one."""
    import skops.io

    blob = np.asarray(saved, dtype=np.uint8).tobytes()
    try:
        untrusted = skops.io.get_untrusted_types(data=blob)
    except Exception as exc:  # a damaged or crafted file: whatever the reader raises
        raise ValueError(f"not a skops file ({type(exc).__name__}: {str(exc)[:200]})") from None
    refused = sorted(set(untrusted) - set(trusted_types()))
    if refused:
        raise ValueError(f"the saved estimator holds types mimo does not load: {', '.join(refused)[:300]}")
    try:
        estimator = skops.io.loads(blob, trusted=untrusted)
    except Exception as exc:
        raise ValueError(f"skops cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    if type(estimator) is not regressor_class(name):
        raise ValueError(f"the saved estimator is a {type(estimator).__name__}, not the run's {name}")
    _check_trees(estimator)
    return estimator


def _estimators_in(value):
    """Every scikit-learn estimator in ``value``: itself, its attributes, lists and object arrays of them."""
    from sklearn.base import BaseEstimator

    if isinstance(value, BaseEstimator):
        yield value
        for item in vars(value).values():
            yield from _estimators_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _estimators_in(item)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        for item in value.flat:
            yield from _estimators_in(item)


def _check_trees(estimator) -> None:
    """Every decision tree (``tree_``) in ``estimator``: each child after its parent and within the tree (so a
    walk ends), each split on one of the tree's features, one value row per node. scikit-learn checks the saved
    arrays' types only; a crafted file could otherwise send the compiled ``predict`` outside them."""
    for owner in _estimators_in(estimator):
        tree = getattr(owner, "tree_", None)
        if tree is None:
            continue
        count = int(tree.node_count)
        left, right, feature = (np.asarray(a, np.int64) for a in (tree.children_left, tree.children_right,
                                                                 tree.feature))
        index, leaf = np.arange(count), left == -1
        inner_ok = ((left > index) & (right > index) & (left < count) & (right < count) & (feature >= 0)
                    & (feature < int(tree.n_features)))
        if (len(left) != count or len(tree.value) != count or int(tree.n_features) != owner.n_features_in_
                or not np.all(leaf & (right == -1) | ~leaf & inner_ok)):
            raise ValueError("a saved tree's nodes do not form a tree over its features")


# ------------------------------------------------------------------------------------------ the head
class SklearnRegressor(Estimator):
    """A scikit-learn regressor by name, its parameters given as NAME=VALUE literals.

    ``estimator``: a class of ``sklearn.linear_model``, ``sklearn.ensemble`` or ``sklearn.gaussian_process``;
    ``estimator_params``: its parameters; ``random_state`` is ``seed`` unless given. It is fitted on the
    training rows (validation rows choose nothing here, and ``fit(X, y)`` carves none). It is saved with skops,
    never pickle (see ``mimo.models.estimators.external``).

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
            raise ValueError(f"--estimator {self.estimator}: a fitted one cannot be saved safely ({why})")

    def _fit(self, data: FitData) -> None:
        estimator = make_estimator(self.estimator, self.estimator_params, self.seed)
        self.estimator_ = estimator.fit(data.X, data.y)
        self._check_saved_predicts_the_same(data.X[:CHECK_ROWS])

    def _check_saved_predicts_the_same(self, X: np.ndarray) -> None:
        """The fit, saved and loaded back as ``model.npz`` will, predicts what it predicts."""
        try:
            again = load_estimator(dump_estimator(self.estimator_), self.estimator)
            same = np.allclose(again.predict(X), self.estimator_.predict(X), rtol=1e-9, atol=1e-12)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"--estimator {self.estimator}: the fitted estimator cannot be saved safely "
                             f"({exc})") from None
        if not same:
            raise ValueError(f"--estimator {self.estimator}: the fitted estimator, saved and loaded back, does not "
                             f"predict the same; it cannot be saved safely")

    def _members(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator_.predict(X), dtype=np.float64).reshape(len(X), 1)

    def run_summary(self) -> dict:
        """The parameters the estimator was fitted with (its defaults included)."""
        params = self.estimator_.get_params(deep=False)
        return {"estimator_fitted_with": {k: _plain(v) for k, v in params.items()}}

    def fitted_state(self) -> dict:
        import sklearn
        import skops

        return {"skops": dump_estimator(self.estimator_), "sklearn_version": sklearn.__version__,
                "skops_version": skops.__version__}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        import sklearn

        if "skops" not in state:
            raise ValueError(f"the saved {self.estimator} is in the array export of an earlier mimo (before skops), "
                             f"which this version does not read: fit the run again")
        try:
            self.estimator_ = load_estimator(state["skops"], self.estimator)
        except ValueError as exc:
            raise ValueError(f"cannot load the saved {self.estimator} (saved with scikit-learn "
                             f"{state.get('sklearn_version')}, this is {sklearn.__version__}): {exc}") from None
        self.n_features_in_ = int(self.estimator_.n_features_in_)
        self.validation_rows_ = None
