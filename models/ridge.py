"""Ridge regression with its penalty chosen on a validation set."""
from __future__ import annotations

import numpy as np

from mimo.pipeline import threads

from .base import Estimator, FitData, Param

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 5, 15))
CHUNK = 4096  # rows per block: no full-size temporaries of the (n, d) training matrix


class ValidatedRidge(Estimator):
    """Ridge on standardised features; ``alpha`` is the one of ``alphas`` with the lowest validation MSE.

    One eigendecomposition of the Gram matrix serves every alpha, so the search costs about one fit.

    Fitted attributes: ``coef_`` (d,) and ``intercept_`` in raw feature units; ``alpha_`` the chosen alpha;
    ``valid_mse_`` {alpha: validation MSE}; ``y_mean_``; ``n_features_in_``; ``validation_rows_`` (the rows
    carved for validation when ``fit`` got none, else None).
    """

    name = "ridge"
    _param_specs = {
        "standardize": Param("bool", "Fit on standardised features (else on raw ones)."),
    }
    _fit_specs = {**Estimator._fit_specs, "seed": Param("int", "Seed of the validation rows carved when fit gets "
                                                        "none.", low=0)}

    def __init__(self, *, alphas: tuple[float, ...] = DEFAULT_ALPHAS, standardize: bool = True,
                 validation_fraction: float = 0.1, seed: int = 0, threads: int | None = None):
        self._store(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        alphas = np.asarray(self.alphas, dtype=np.float64)
        if alphas.ndim != 1 or not len(alphas) or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError(f"alphas must be a non-empty sequence of positive numbers, not {self.alphas!r}")

    def _fit(self, data: FitData) -> None:
        """Fit for every alpha, keep the one with the lowest MSE on the validation rows."""
        X, y, X_valid, y_valid = data.X, data.y, data.X_valid, data.y_valid
        threads.adapt()  # the CLI's thread policy (nothing from Python unless turned on)
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        n, d = X.shape
        mean64 = X.mean(axis=0, dtype=np.float64)
        mean = mean64.astype(np.float32)
        self.y_mean_ = float(y.mean())
        yc = y - self.y_mean_
        gram = np.zeros((d, d)) if n >= d else None
        xty = np.zeros(d)
        if gram is not None and np.count_nonzero(X) < X.size / 16:
            # Mostly zeros (one-hot): the Gram matrix from the non-zeros alone, centred afterwards.
            from scipy import sparse

            Xs = sparse.csr_matrix(X, dtype=np.float64)
            gram = np.asarray((Xs.T @ Xs).todense()) - n * np.outer(mean64, mean64)
            xty = Xs.T @ yc
        else:
            # Centred Gram matrix and X^T y, block by block, in float32 products summed in float64.
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

    def _members(self, X: np.ndarray) -> np.ndarray:
        """(n, 1): one member, as every head's ``predict_members`` returns (n, members)."""
        return ((np.asarray(X, np.float32) @ self.coef_.astype(np.float32)).astype(np.float64)
                + self.intercept_)[:, None]

    def refit_params(self) -> dict:
        return {"alphas": (self.alpha_,)}

    def run_summary(self) -> dict:
        return {"alpha": self.alpha_, "valid_mse_by_alpha": {f"{a:g}": m for a, m in self.valid_mse_.items()}}

    def fitted_state(self) -> dict:
        return {"coef": self.coef_, "intercept": self.intercept_, "alpha": self.alpha_, "y_mean": self.y_mean_,
                "valid_mse": [self.valid_mse_[a] for a in self.alphas]}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        self.coef_ = np.asarray(state["coef"], np.float64)
        self.intercept_, self.alpha_, self.y_mean_ = state["intercept"], state["alpha"], state["y_mean"]
        self.valid_mse_ = dict(zip(self.alphas, state["valid_mse"]))
        self.n_features_in_ = len(self.coef_)
