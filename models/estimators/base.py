"""The heads' common base: scikit-learn's ``BaseEstimator`` and ``RegressorMixin`` (``get_params``/``set_params``,
``clone``, the repr, the regressor's tags, ``score``), so ``sklearn.base.clone``, ``cross_val_score``,
``GridSearchCV``, ``Pipeline`` and ``check_estimator`` work with every head.

Keyword-only parameters in ``__init__`` are stored as given; they are validated as scikit-learn validates its
own, in one place: ``_parameter_constraints`` (built from the declarations below) checked by
``self._validate_params()`` at the start of ``fit`` (scikit-learn's ``InvalidParameterError``, a ValueError).
Input goes through scikit-learn's ``validate_data`` (its checks, its messages, ``n_features_in_``); ``predict``
before ``fit`` raises its ``NotFittedError`` (``check_is_fitted``); fitted attributes end with ``_``.

Each head declares its parameters' ranges in ``_param_specs`` (``Param``); the CLI builds its options (types,
ranges, defaults, help) from the same declarations, so nothing is written twice. ``_fit_specs`` declares the
parameters every head shares that are not CLI options (the CLI always gives a validation split, and its
``--threads`` is the process's). A parameter without a ``Param`` (e.g. ridge's ``alphas``) gets its constraint
from the class's own ``_extra_constraints``, or else ``"no_validation"`` and a check in the head's
``_validate_params``.

``fit(X, y)`` alone carves ``validation_fraction`` of the rows (drawn with ``seed``) for the choices a head
makes on validation data (ridge's alpha, the best epoch); ``fit(X, y, X_valid, y_valid)`` uses those instead.
"""
from __future__ import annotations

import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from mimo.pipeline.runtime import threads


@dataclass(frozen=True)
class Param:
    """What values a parameter takes: ``kind`` (int, float, bool, str, sizes, pairs: a dict of names to values),
    an inclusive or open range, or ``choices``; ``none_ok`` when None is allowed (meaning "chosen from the
    data"). The CLI reads the same declaration; ``constraints()`` is it in scikit-learn's terms."""

    kind: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    none_ok: bool = False
    flag: str | None = None  # the CLI option's name, where it is not --<name>

    def constraints(self) -> list:
        """The parameter's constraints as scikit-learn's ``_parameter_constraints`` lists them. Real intervals
        without an upper bound are open there, so infinity and NaN are refused as well. Sizes are a tuple or
        list there (scikit-learn takes no constraint of our own); ``Estimator._validate_params`` checks their
        items."""
        if self.kind in ("int", "float"):
            left_closed = self.low is not None and not self.low_open
            right_closed = self.high is not None
            closed = {(True, True): "both", (True, False): "left", (False, True): "right"}.get(
                (left_closed, right_closed), "neither")
            kind = numbers.Integral if self.kind == "int" else numbers.Real
            found = [Interval(kind, self.low, self.high, closed=closed)]
        elif self.kind == "bool":
            found = ["boolean"]
        elif self.kind == "str":
            found = [StrOptions(set(self.choices))] if self.choices is not None else [str]
        elif self.kind == "sizes":
            found = [tuple, list]
        elif self.kind == "pairs":
            found = [dict]
        else:
            raise ValueError(f"unknown parameter kind {self.kind!r}")
        return found + [None] if self.none_ok else found


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


LABEL_RANGE = (1e-30, 1e30)  # float32 (every head's predictions, the neural heads' training) holds these


def check_label_range(y: np.ndarray, what: str = "y") -> np.ndarray:
    """``y`` unchanged; a one-line ValueError when float32 cannot hold labels of its size."""
    top = float(np.max(np.abs(y), initial=0.0))
    if top > LABEL_RANGE[1] or 0 < top < LABEL_RANGE[0]:
        raise ValueError(f"{what}: labels reach at most |{top:.3g}|, outside what float32 holds "
                         f"({LABEL_RANGE[0]:g} to {LABEL_RANGE[1]:g}); rescale them (e.g. multiply by a power of 10)")
    return y


class Estimator(RegressorMixin, BaseEstimator):
    """Parameters are the ``__init__`` keyword arguments, stored under the same names.

    Subclasses implement ``_fit(data: FitData)`` and ``_members(X)``; ``fit``, ``predict_members`` and
    ``predict`` check the input and run those under the head's ``threads``.
    """

    _param_specs: dict[str, Param] = {}
    _fit_specs: dict[str, Param] = SHARED_SPECS
    _extra_constraints: dict[str, list] = {}  # parameters that are not CLI options, in scikit-learn's terms
    _parameter_constraints: dict[str, list] = {}
    needs_validation = True  # False: the head makes no choice on validation rows; fit(X, y) carves none

    def __init_subclass__(cls, **kwargs):
        """Every ``__init__`` parameter's constraints: its ``Param``'s, its ``_extra_constraints``, or else
        ``"no_validation"`` (the head's own ``_validate_params`` checks it)."""
        super().__init_subclass__(**kwargs)
        specs = {**cls._fit_specs, **cls._param_specs}
        cls._parameter_constraints = {
            name: specs[name].constraints() if name in specs else cls._extra_constraints.get(name, "no_validation")
            for name in cls._get_param_names()}

    @classmethod
    def param_defaults(cls) -> dict:
        """Each parameter's default, as the class declares it."""
        signature = inspect.signature(cls.__init__)
        return {name: p.default for name, p in signature.parameters.items() if name != "self"}

    def _store(self, values: dict) -> None:
        """Store ``__init__``'s arguments under their own names (call as ``self._store(locals())``)."""
        for name in self._get_param_names():
            setattr(self, name, values[name])

    def _validate_params(self) -> None:
        """scikit-learn's check of every parameter against ``_parameter_constraints`` (called at the start of
        ``fit``), then the items of sizes (positive integers, at least one), in the same words."""
        super()._validate_params()
        specs = {**self._fit_specs, **self._param_specs}
        for name in self._get_param_names():
            value = getattr(self, name)
            if name in specs and specs[name].kind == "sizes" and value is not None and not (len(value) and all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
                raise InvalidParameterError(f"The {name!r} parameter of {type(self).__name__} must be a non-empty "
                                            f"sequence of positive integers. Got {value!r} instead.")

    def set_params(self, **params) -> "Estimator":
        """scikit-learn's ``set_params``; a nested name (``key__sub``) under a parameter that is not an
        estimator is a ValueError (scikit-learn's own raises AttributeError there)."""
        for key in params:
            name, delim, _ = key.partition("__")
            value = getattr(self, name, None) if name in self._get_param_names() else None
            if delim and name in self._get_param_names() and not hasattr(value, "set_params"):
                raise ValueError(f"Invalid parameter {key!r} for estimator {type(self).__name__}: {name} is "
                                 f"{type(value).__name__}, not an estimator with parameters of its own.")
        return super().set_params(**params)

    def clone(self, **params) -> "Estimator":
        """``sklearn.base.clone(self)`` with ``params`` set on the copy."""
        return clone(self).set_params(**params)

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

    def _fit_data(self, X, y, X_valid, y_valid, counts, counts_valid) -> FitData:
        X, y = validate_data(self, X, y, reset=True, dtype="numeric", y_numeric=True)
        y = check_label_range(check_array(y, ensure_2d=False, dtype="numeric", input_name="y"))  # y_numeric passes str
        counts = None if counts is None else np.asarray(counts).reshape(-1)
        if counts is not None and len(counts) != len(y):
            raise ValueError(f"counts has {len(counts)} rows, X has {len(y)}")
        if (X_valid is None) != (y_valid is None):
            raise ValueError("give both X_valid and y_valid, or neither (validation rows are then carved from X)")
        if X_valid is not None:
            self.validation_rows_ = None
            X_valid = validate_data(self, X_valid, reset=False, dtype="numeric")
            y_valid = check_array(y_valid, ensure_2d=False, dtype="numeric", input_name="y_valid")
            y_valid = check_label_range(column_or_1d(y_valid, warn=True), "y_valid")
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

    def _members(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _predict_input(self, X) -> np.ndarray:
        """``X`` checked against the fit (``check_is_fitted``, then ``validate_data`` with ``n_features_in_``)."""
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype="numeric")

    def predict_members(self, X) -> np.ndarray:
        """(n, M) predictions in label units: one column per member (M = 1 for single-output heads)."""
        X = self._predict_input(X)
        with threads.limited(self.threads):
            return self._members(X)

    def predict(self, X) -> np.ndarray:
        """(n,) predictions in label units: the members' mean."""
        return self.predict_members(X).mean(axis=1)

    # one save/load format for every head: see models.estimators.registry.save_model / load_model
    def fitted_state(self) -> dict:
        """Everything ``predict`` needs besides the parameters (tensors, numbers, strings)."""
        raise NotImplementedError

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        """Restore ``fitted_state()``'s output, onto ``device`` where the head computes on one."""
        raise NotImplementedError
