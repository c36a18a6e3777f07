"""Ridge regression with its penalty chosen on a validation set."""
from __future__ import annotations

import numpy as np

from .base import Estimator

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))
CHUNK = 4096  # rows per block: no full-size temporaries of the (n, d) training matrix


class ValidatedRidge(Estimator):
    """Ridge on standardised features; ``alpha`` is the one of ``alphas`` with the lowest validation MSE.

    One eigendecomposition of the Gram matrix serves every alpha, so the search costs about one fit.
    """

    def __init__(self, alphas: tuple[float, ...] = DEFAULT_ALPHAS, standardize: bool = True):
        self.alphas = alphas
        self.standardize = standardize

    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> "ValidatedRidge":
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.y_mean_ = float(y.mean())
        yc = y - self.y_mean_
        # Centred Gram matrix and X^T y, block by block, in float32 products summed in float64.
        gram = np.zeros((d, d)) if n >= d else None
        xty = np.zeros(d)
        for start in range(0, n, CHUNK):
            block = X[start:start + CHUNK] - mean
            if gram is not None:
                gram += block.T @ block
            xty += block.T @ yc[start:start + CHUNK].astype(np.float32)
        if self.standardize:
            variance = (np.diag(gram) if gram is not None else ((X - mean) ** 2).sum(axis=0)) / n
            scale = np.sqrt(variance)
            scale[scale == 0] = 1.0
        else:
            scale = np.ones(d)
        xty /= scale
        if gram is not None:  # primal: d x d system
            eigvals, eigvecs = np.linalg.eigh(gram / np.outer(scale, scale))
            projected = eigvecs.T @ xty
            weights = np.stack([eigvecs @ (projected / (eigvals + a)) for a in self.alphas], axis=1)
        else:  # dual: n x n system, for fewer rows than features
            Xs = (X - mean) / scale.astype(np.float32)
            eigvals, eigvecs = np.linalg.eigh((Xs @ Xs.T).astype(np.float64))
            projected = eigvecs.T @ yc
            weights = np.stack([Xs.T.astype(np.float64) @ (eigvecs @ (projected / (eigvals + a)))
                                for a in self.alphas], axis=1)
        coefs = weights / scale[:, None]                       # (d, n_alphas) in raw feature units
        intercepts = self.y_mean_ - mean.astype(np.float64) @ coefs
        valid = np.asarray(X_valid, np.float32) @ coefs.astype(np.float32) + intercepts
        mse = ((valid - np.asarray(y_valid, np.float64)[:, None]) ** 2).mean(axis=0)
        self.valid_mse_ = {a: float(m) for a, m in zip(self.alphas, mse)}
        best = int(np.argmin(mse))
        self.alpha_ = self.alphas[best]
        self.coef_ = coefs[:, best]
        self.intercept_ = float(intercepts[best])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float32) @ self.coef_.astype(np.float32)).astype(np.float64) + self.intercept_
