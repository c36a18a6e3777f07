"""Ridge regression with its penalty chosen on a validation set."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))


class ValidatedRidge(RegressorMixin, BaseEstimator):
    """Ridge on standardised features; ``alpha`` is the one of ``alphas`` with the lowest validation MSE.

    One eigendecomposition of the Gram matrix serves every alpha, so the search costs about one fit.
    """

    def __init__(self, alphas: tuple[float, ...] = DEFAULT_ALPHAS, standardize: bool = True):
        self.alphas = alphas
        self.standardize = standardize

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> "ValidatedRidge":
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.x_mean_ = X.mean(axis=0, dtype=np.float64)
        scale = X.std(axis=0, dtype=np.float64) if self.standardize else np.ones(X.shape[1])
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        self.y_mean_ = float(y.mean())
        Xs = self._scaled(X)
        yc = y - self.y_mean_
        Xv = self._scaled(np.asarray(X_valid, dtype=np.float32))
        if Xs.shape[0] >= Xs.shape[1]:  # primal: d x d system
            gram = (Xs.T @ Xs).astype(np.float64)
            eigvals, eigvecs = np.linalg.eigh(gram)
            projected = eigvecs.T @ (Xs.T.astype(np.float64) @ yc)
            weights = {a: eigvecs @ (projected / (eigvals + a)) for a in self.alphas}
        else:  # dual: n x n system, for fewer rows than features
            kernel = (Xs @ Xs.T).astype(np.float64)
            eigvals, eigvecs = np.linalg.eigh(kernel)
            projected = eigvecs.T @ yc
            weights = {a: Xs.T.astype(np.float64) @ (eigvecs @ (projected / (eigvals + a))) for a in self.alphas}
        self.valid_mse_ = {a: float(np.mean((Xv @ w + self.y_mean_ - y_valid) ** 2)) for a, w in weights.items()}
        self.alpha_ = min(self.valid_mse_, key=self.valid_mse_.get)
        self.coef_ = weights[self.alpha_] / self.x_scale_
        self.intercept_ = self.y_mean_ - float(self.x_mean_ @ self.coef_)
        return self

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.x_mean_) / self.x_scale_).astype(np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_
