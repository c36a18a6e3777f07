"""scikit-learn estimators: every head has scikit-learn's estimator API (``get_params``/``set_params``, the
regressor's tags, ``score``), so ``sklearn.base.clone``, ``cross_val_score``, ``GridSearchCV``, ``Pipeline``
and ``check_estimator`` work with it, without importing scikit-learn itself: that import (with the scipy.stats
it pulls in) cost 1.1-2.6 s of every `mimo fit` on our 2-core machines. scikit-learn is imported only where it
is the one asking (its tags), and for input it must judge: anything but a finite float or integer numpy matrix
goes through scikit-learn's own ``validate_data`` (its checks and error messages), and so does ``predict``
before ``fit`` (its ``NotFittedError``).

Keyword-only parameters in ``__init__`` are stored under their own names and validated in one place
(``_validate_params``, at the start of ``fit``); fitted attributes end with ``_``; ``predict`` before ``fit``
raises sklearn's ``NotFittedError``; ``n_features_in_`` is recorded by ``fit`` and checked by ``predict``.

Each estimator declares its parameters' ranges in ``_param_specs``; the CLI builds its options (types, ranges,
defaults, help) from the same declarations, so nothing is written twice. ``_fit_specs`` declares the
parameters every head shares that are not CLI options (the CLI always gives a validation split, and its
``--threads`` is the process's).

``fit(X, y)`` alone carves ``validation_fraction`` of the rows (drawn with ``seed``) for the choices a head
makes on validation data (ridge's alpha, the best epoch); ``fit(X, y, X_valid, y_valid)`` uses those instead.
"""
from __future__ import annotations

import copy
import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mimo.pipeline.runtime import threads


def validate_data(estimator, *args, **kwargs):
    """scikit-learn's ``validate_data`` (imported when first needed)."""
    try:
        from sklearn.utils.validation import validate_data as validate
    except ImportError:  # scikit-learn < 1.6: the same checks as a method
        return estimator._validate_data(*args, **kwargs)
    return validate(estimator, *args, **kwargs)


def _plain_matrix(X) -> bool:
    """Whether ``X`` is a non-empty 2-D float or integer numpy array with finite values: what scikit-learn's
    checks would pass unchanged (``dtype="numeric"``)."""
    return (type(X) is np.ndarray and X.ndim == 2 and X.dtype.kind in "fiu" and X.shape[0] > 0
            and X.shape[1] > 0 and _finite(X))


def _finite(a: np.ndarray) -> bool:
    """No NaN or infinity: the sum is finite (one pass, no mask), or else every value (a sum can overflow)."""
    return a.dtype.kind != "f" or bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all())


def _plain_labels(y, rows: int) -> bool:
    """Whether ``y`` is ``rows`` finite float or integer labels, 1-D."""
    return (type(y) is np.ndarray and y.ndim == 1 and len(y) == rows and y.dtype.kind in "fiu"
            and _finite(y))


@dataclass(frozen=True)
class Param:
    """What values a parameter takes: ``kind`` (int, float, bool, str, sizes, pairs: a dict of names to values),
    an inclusive or open range, or ``choices``; ``none_ok`` when None is allowed (meaning "chosen from the
    data"). Integers and reals of numpy count as well (a ``GridSearchCV`` grid may hold them)."""

    kind: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    none_ok: bool = False
    flag: str | None = None  # the CLI option's name, where it is not --<name>

    def check(self, name: str, value) -> None:
        if value is None:
            if not self.none_ok:
                raise ValueError(f"{name} must be set, not None")
            return
        if self.kind == "pairs":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ValueError(f"{name} must be a dict of parameter names to values, not {value!r}")
            return
        if self.kind == "sizes":
            if not isinstance(value, (tuple, list)) or not all(_integer(v) and v > 0 for v in value):
                raise ValueError(f"{name} must be a sequence of positive integers, not {value!r}")
            return
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, not {value!r}")
            return
        if self.kind == "str":
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"{name} must be one of {list(self.choices)}, not {value!r}")
            return
        if self.kind == "int" and not _integer(value):
            raise ValueError(f"{name} must be an integer, not {value!r}")
        if self.kind == "float" and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                                     or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ValueError(f"{name} must be {'>' if self.low_open else '>='} {self.low:g}, not {value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{name} must be <= {self.high:g}, not {value!r}")


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


SHARED_SPECS = {
    "validation_fraction": Param("float", "Share of the rows carved for validation when fit gets none.", low=0,
                                 low_open=True, high=0.5),
    "threads": Param("int", "CPU threads (torch and BLAS) during fit and predict, restored afterwards; None: the "
                     "process's own settings.", low=1, none_ok=True),
}


@dataclass
class FitData:
    """What a head's ``_fit`` receives: checked training and validation rows, their mutation counts (or None),
    and a progress callback (or None)."""

    X: np.ndarray
    y: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    counts: np.ndarray | None = None
    counts_valid: np.ndarray | None = None
    log: Callable[[str], None] | None = None


def _labels(y, what: str) -> np.ndarray:
    """Finite numeric labels as a 1-D array."""
    if _plain_labels(y, len(y) if type(y) is np.ndarray and y.ndim == 1 else -1):
        return check_label_range(y, what)
    from sklearn.utils.validation import check_array, column_or_1d

    y = check_array(y, ensure_2d=False, dtype="numeric", input_name=what)
    return check_label_range(column_or_1d(y, warn=True), what)


LABEL_RANGE = (1e-30, 1e30)  # float32 (every head's predictions, the neural heads' training) holds these


def check_label_range(y: np.ndarray, what: str = "y") -> np.ndarray:
    """``y`` unchanged; a one-line ValueError when float32 cannot hold labels of its size."""
    top = float(np.max(np.abs(y), initial=0.0))
    if top > LABEL_RANGE[1] or 0 < top < LABEL_RANGE[0]:
        raise ValueError(f"{what}: labels reach at most |{top:.3g}|, outside what float32 holds "
                         f"({LABEL_RANGE[0]:g} to {LABEL_RANGE[1]:g}); rescale them (e.g. multiply by a power of 10)")
    return y


class Estimator:
    """Parameters are the ``__init__`` keyword arguments, stored under the same names.

    Subclasses implement ``_fit(data: FitData)`` and ``_members(X)``; ``fit``, ``predict_members`` and
    ``predict`` check the input and run those under the head's ``threads``.
    """

    _param_specs: dict[str, Param] = {}
    _fit_specs: dict[str, Param] = SHARED_SPECS
    needs_validation = True  # False: the head makes no choice on validation rows; fit(X, y) carves none

    # ----------------------------------------------- scikit-learn's estimator API (as ``BaseEstimator``'s)
    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The ``__init__`` parameters' names, sorted (as scikit-learn's)."""
        init = cls.__init__
        if init is object.__init__:
            return []
        parameters = [p for p in inspect.signature(init).parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD]
        if any(p.kind == p.VAR_POSITIONAL for p in parameters):
            raise RuntimeError(f"scikit-learn estimators should always specify their parameters in the signature "
                               f"of their __init__ (no varargs); {cls} does not")
        return sorted(p.name for p in parameters)

    @classmethod
    def _param_names(cls) -> list[str]:
        return cls._get_param_names()

    def get_params(self, deep: bool = True) -> dict:
        """The parameters by name; with ``deep``, those of parameters that are estimators too (``name__key``)."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{key}", item) for key, item in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params) -> "Estimator":
        """Set parameters (``name__key`` for a parameter that is an estimator); returns the estimator."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested: dict[str, dict] = {}
        for key, value in params.items():
            key, delim, sub = key.partition("__")
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. Valid parameters are: "
                                 f"{self._get_param_names()!r}.")
            if delim:
                nested.setdefault(key, {})[sub] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub_params in nested.items():
            valid[key].set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        """``Name(param=value, ...)`` with the parameters that differ from their defaults (as scikit-learn's)."""
        defaults = self.param_defaults()
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name, None)
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = type(value) is type(default) and bool(value == default)
            except Exception:  # arrays and other values without one truth value
                same = value is default
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        """A regressor that requires y (``RegressorMixin``'s tags); called only by scikit-learn."""
        from sklearn.utils import RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor", target_tags=TargetTags(required=True), transformer_tags=None,
                    regressor_tags=RegressorTags(), classifier_tags=None)

    def score(self, X, y, sample_weight=None) -> float:
        """R² of ``predict(X)`` against ``y`` (``RegressorMixin.score``)."""
        from sklearn.metrics import r2_score

        return r2_score(y, self.predict(X), sample_weight=sample_weight)

    @classmethod
    def param_defaults(cls) -> dict:
        """Each parameter's default, as the class declares it."""
        signature = inspect.signature(cls.__init__)
        return {name: p.default for name, p in signature.parameters.items() if name != "self"}

    def _store(self, values: dict) -> None:
        """Store ``__init__``'s arguments under their own names (call as ``self._store(locals())``)."""
        for name in self._param_names():
            setattr(self, name, values[name])

    def _validate_params(self) -> None:
        """Check every parameter against its declared range; called at the start of ``fit``. (scikit-learn's
        own ``_validate_params`` reads ``_parameter_constraints``; ours reads ``_param_specs``, which the CLI
        shares.)"""
        specs = {**self._fit_specs, **self._param_specs}
        for name in self._param_names():
            spec = specs.get(name)
            if spec is not None:
                spec.check(name, getattr(self, name))

    def clone(self, **params) -> "Estimator":
        """A new, unfitted estimator with the same parameters (``params`` override some): ``sklearn.base.clone``'s
        result (parameters that are estimators cloned, the others deep-copied), without importing it."""
        values = {}
        for name, value in self.get_params(deep=False).items():
            if isinstance(value, Estimator):
                value = value.clone()
            elif hasattr(value, "get_params") and not isinstance(value, type):
                from sklearn.base import clone

                value = clone(value)
            else:
                value = copy.deepcopy(value)
            values[name] = value
        return type(self)(**values).set_params(**params)

    def refit_params(self) -> dict:
        """Parameters that refit this fitted estimator's choices (made on validation rows) on more rows."""
        return {}

    def run_summary(self) -> dict:
        """What a run records of the fit besides its parameters."""
        return {}

    # ------------------------------------------------------------------------------------------ fit, predict
    def fit(self, X, y, X_valid=None, y_valid=None, *, counts=None, counts_valid=None,
            log: Callable[[str], None] | None = None) -> "Estimator":
        """Fit on (X, y); choices (alpha, best epoch) are made on (X_valid, y_valid), or when those are not
        given, on ``validation_fraction`` of the rows carved with ``seed`` (``validation_rows_`` records them).
        ``counts``/``counts_valid``: each row's number of mutations (MIMO's routing by mutations needs them);
        ``log``: a callback for progress lines."""
        self._validate_params()
        data = self._fit_data(X, y, X_valid, y_valid, counts, counts_valid)
        data.log = log
        with threads.limited(self.threads):
            self._fit(data)
        return self

    def _fit(self, data: FitData) -> None:
        raise NotImplementedError

    def _checked(self, X, reset: bool) -> np.ndarray:
        """``X`` as scikit-learn's ``validate_data(self, X, reset=reset, dtype="numeric")`` returns it, recording
        (``reset``) or checking ``n_features_in_``: numpy matrices of finite numbers here, anything else there."""
        if _plain_matrix(X) and not hasattr(self, "feature_names_in_"):
            if reset:
                self.n_features_in_ = X.shape[1]
                return X
            if getattr(self, "n_features_in_", None) == X.shape[1]:
                return X
        return validate_data(self, X, reset=reset, dtype="numeric")

    def _fit_data(self, X, y, X_valid, y_valid, counts, counts_valid) -> FitData:
        if _plain_matrix(X) and _plain_labels(y, len(X)):
            X = self._checked(X, reset=True)
        else:
            X, y = validate_data(self, X, y, reset=True, dtype="numeric", y_numeric=True)
        check_label_range(y)
        counts = None if counts is None else np.asarray(counts).reshape(-1)
        if counts is not None and len(counts) != len(y):
            raise ValueError(f"counts has {len(counts)} rows, X has {len(y)}")
        if (X_valid is None) != (y_valid is None):
            raise ValueError("give both X_valid and y_valid, or neither (validation rows are then carved from X)")
        if X_valid is not None:
            self.validation_rows_ = None
            X_valid = self._checked(X_valid, reset=False)
            y_valid = _labels(y_valid, "y_valid")
            if len(y_valid) != len(X_valid):
                raise ValueError(f"X_valid has {len(X_valid)} rows, y_valid {len(y_valid)}")
            return FitData(X, y, X_valid, y_valid, counts, counts_valid)
        if not self.needs_validation:
            self.validation_rows_ = None
            return FitData(X, y, X[:0], y[:0], counts, None if counts is None else counts[:0])
        return self._carve(X, y, counts)

    def _carve(self, X, y, counts) -> FitData:
        """Validation rows drawn from the training rows with ``seed``: ``validation_fraction`` of them, at least
        one."""
        n = len(y)
        if n < 2:
            raise ValueError(f"fit needs at least 2 rows to carve validation rows from; got {n} sample(s) "
                             f"(n_samples = {n})")
        size = min(n - 1, max(1, math.ceil(self.validation_fraction * n)))
        order = np.random.default_rng(self.seed).permutation(n)
        valid, train = np.sort(order[:size]), np.sort(order[size:])
        self.validation_rows_ = valid
        pick = (lambda a, rows: None if a is None else a[rows])
        return FitData(X[train], y[train], X[valid], y[valid], pick(counts, train), pick(counts, valid))

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted: some public attribute ends with ``_`` (scikit-learn's own test)."""
        return any(k.endswith("_") and not k.startswith("__") for k in vars(self))

    def _predict_input(self, X) -> np.ndarray:
        if not self.__sklearn_is_fitted__():
            from sklearn.utils.validation import check_is_fitted

            check_is_fitted(self)  # scikit-learn's NotFittedError
        return self._checked(X, reset=False)

    def _members(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_members(self, X) -> np.ndarray:
        """(n, M) predictions in label units: one column per member (M = 1 for single-output heads)."""
        X = self._predict_input(X)
        with threads.limited(self.threads):
            return self._members(X)

    def predict(self, X) -> np.ndarray:
        """(n,) predictions in label units: the members' mean."""
        return self.predict_members(X).mean(axis=1)

    # one save/load format for every head: see models.registry.save_model / load_model
    def fitted_state(self) -> dict:
        """Everything ``predict`` needs besides the parameters (tensors, numbers, strings)."""
        raise NotImplementedError

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        """Restore ``fitted_state()``'s output, onto ``device`` where the head computes on one."""
        raise NotImplementedError
