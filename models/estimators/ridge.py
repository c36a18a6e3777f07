"""Ridge regression with its penalty chosen on a validation set (the linear algebra: ``ridge_solver``)."""
from __future__ import annotations

import math

import numpy as np
from sklearn.utils._param_validation import InvalidParameterError

from mimo.pipeline.runtime import threads

from mimo.models.estimators.base import Estimator, FitData, Param
from mimo.models.estimators.ridge_solver import dot, raw_coefficients, ridge_path

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))
MAX_EXTEND = 8  # alphas added beyond an edge of the grid when the best one is there


class ValidatedRidge(Estimator):
    """Ridge on standardised features; ``alpha`` is the one of ``alphas`` with the lowest validation MSE.

    One-hot columns stay sparse and one factorisation serves every alpha, so the search costs about one fit
    (``mimo.models.estimators.ridge_solver``). When the best alpha is the smallest or the largest of a grid of three or
    more, the grid is extended past that edge (by its own spacing, up to 8 alphas) until the best is inside;
    where it is still at the edge, the run summary says so.

    Fitted attributes: ``coef_`` (d,) and ``intercept_`` in raw feature units; ``alpha_`` the chosen alpha;
    ``valid_mse_`` {alpha: validation MSE}, the grid's and the added ones; ``alphas_added_`` (beyond the
    grid); ``y_mean_``; ``n_features_in_``; ``validation_rows_`` (the rows carved for validation when ``fit``
    got none, else None).
    """

    name = "ridge"
    _param_specs = {
        "standardize": Param("bool", "Fit on standardised features (else on raw ones)."),
    }
    _fit_specs = {**Estimator._fit_specs, "seed": Param("int", "Seed of the validation rows carved when fit gets "
                                                        "none.", low=0)}
    _extra_constraints = {"alphas": ["array-like"]}  # and positive, finite: checked in _validate_params

    def __init__(self, *, alphas: tuple[float, ...] = DEFAULT_ALPHAS, standardize: bool = True,
                 validation_fraction: float = 0.1, seed: int = 0, threads: int | None = None):
        self._store(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        alphas = np.asarray(self.alphas, dtype=np.float64)
        if alphas.ndim != 1 or not len(alphas) or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise InvalidParameterError(f"The 'alphas' parameter of {type(self).__name__} must be a non-empty "
                                        f"sequence of positive finite numbers. Got {self.alphas!r} instead.")

    def _fit(self, data: FitData) -> None:
        """Fit for every alpha, keep the one with the lowest MSE on the validation rows."""
        threads.adapt()  # the CLI's thread policy (nothing from Python unless turned on)
        y = np.asarray(data.y, np.float64)
        self.y_mean_ = float(y.mean())
        y_scale = float(y.std()) or 1.0
        path, columns = ridge_path(data.X, (y - self.y_mean_) / y_scale, self.standardize)
        X_valid, solutions = path.design(data.X_valid), {}

        def valid_mse(alpha: float) -> float:
            solutions[alpha] = raw_coefficients(path, alpha, columns, self.y_mean_, y_scale)
            coef, intercept = solutions[alpha]
            return float(np.mean((dot(X_valid, coef) + intercept - data.y_valid) ** 2))

        self.valid_mse_ = {float(a): valid_mse(float(a)) for a in self.alphas}
        self.alphas_added_ = self._extend_grid(valid_mse) if len(self.alphas) >= 3 else []
        self.alpha_ = min(self.valid_mse_, key=self.valid_mse_.get)
        self.coef_, self.intercept_ = solutions[self.alpha_]

    def _extend_grid(self, valid_mse) -> list[float]:
        """Alphas past the edge of the grid where the best one is, by the grid's spacing at that edge."""
        added = []
        for _ in range(MAX_EXTEND):
            grid = sorted(self.valid_mse_)
            best = min(self.valid_mse_, key=self.valid_mse_.get)
            if best == grid[0]:
                alpha = grid[0] / _spacing(grid[1], grid[0])
            elif best == grid[-1]:
                alpha = grid[-1] * _spacing(grid[-1], grid[-2])
            else:
                break
            self.valid_mse_[alpha] = valid_mse(alpha)
            added.append(alpha)
        return added

    def _members(self, X: np.ndarray) -> np.ndarray:
        """(n, 1): one member, as every head's ``predict_members`` returns (n, members)."""
        return dot(X, self.coef_[:, None]) + self.intercept_

    def refit_params(self) -> dict:
        return {"alphas": (self.alpha_,)}

    def run_summary(self) -> dict:
        summary = {"alpha": self.alpha_, "valid_mse_by_alpha": {f"{a:g}": m for a, m in self.valid_mse_.items()}}
        added = getattr(self, "alphas_added_", [])
        if added:
            summary["alphas_added"] = added
        grid = sorted(self.valid_mse_)
        if len(grid) >= 3 and self.alpha_ in (grid[0], grid[-1]):
            summary["alpha_at_grid_edge"] = (f"the best alpha {self.alpha_:g} is at the edge of the alphas tried "
                                             f"({grid[0]:g} to {grid[-1]:g}): a better one may lie beyond")
        return summary

    def fitted_state(self) -> dict:
        return {"coef": self.coef_, "intercept": self.intercept_, "alpha": self.alpha_, "y_mean": self.y_mean_,
                "valid_alphas": list(self.valid_mse_), "valid_mse": list(self.valid_mse_.values())}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        self.coef_ = np.asarray(state["coef"], np.float64)
        self.intercept_, self.alpha_, self.y_mean_ = state["intercept"], state["alpha"], state["y_mean"]
        self.valid_mse_ = dict(zip(state.get("valid_alphas", self.alphas), state["valid_mse"]))
        self.alphas_added_ = [a for a in self.valid_mse_ if a not in self.alphas]
        self.n_features_in_ = len(self.coef_)


def _spacing(outer: float, inner: float) -> float:
    """The ratio of two neighbouring alphas, or sqrt(10) where they (nearly) coincide."""
    ratio = outer / inner
    return ratio if ratio > 1.01 else math.sqrt(10)
