"""`mimo fit gp`: a Gaussian process over the cached feature blocks, its predictive std as the uncertainty.

The covariance is a sum, with learned scales, of kernels per block of the joined features (one-hot: Hamming,
and the distance between substituted positions where the columns name them; a site profile: Kermut's site
kernel; embeddings, properties, scores: RBF or linear; see ``mimo.models.estimators.gp.kernels``); the prior mean is
constant or, where the features carry a zero-shot score (or a profile's ``dlogp``), linear in it. The GP models
the normal scores of the training labels by default (``mimo.models.estimators.gp.targets``). The hyperparameters maximise
the exact marginal likelihood (scipy's L-BFGS-B, at most ``steps`` iterations, float64 Cholesky; with
``prior_sd``, log-normal priors around the initial values) on at most ``optimize_rows`` training rows; the
posterior is then exact on every training row up to ``max_exact_rows`` (n^2 doubles: 0.2 GB at 5,000 rows, 0.8 GB
at 10,000), and beyond that the DTC approximation through ``inducing_rows`` random training rows (m^2 doubles).
Validation rows are not used for any choice: the run reports the validation
Spearman and the mean negative log-likelihood there (``run_summary``).

A fit and a prediction run on one thread unless the user chose a count (``threads``, ``--threads``,
``$MIMO_THREADS``, ``$OMP_NUM_THREADS``): ``mimo.pipeline.runtime.threads.blas_threads`` says why.

``predict(X, return_std=True)`` gives the predictive std of a new measurement (the noise included), in label
units, as scikit-learn's ``GaussianProcessRegressor`` does; runs calibrate intervals on it (``predicts_std``).
Fitted attributes: ``model_`` (the gpytorch modules), ``posterior_``, ``target_``, ``blocks_``, ``history_``
(the objective per row at each evaluation: the negative log marginal likelihood, plus the priors' with
``prior_sd``), ``valid_``, ``n_features_in_``.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from mimo.pipeline.runtime import threads

from mimo.models.estimators.base import Estimator, FitData, Param
from mimo.models.data import read_blocks
from mimo.models.estimators.gp.kernels import kernels_for, score_column
from mimo.models.estimators.gp.posterior import (ExactPosterior, GpModel, InducingPosterior, expand_rows,
                                                   negative_mll)
from mimo.models.estimators.gp.targets import TARGETS, label_interval, label_nll, label_std, target_from_state
from mimo.models.metrics import spearman

LOG_EVERY = 25  # marginal-likelihood evaluations between progress lines
FTOL = 1e-7     # L-BFGS stops when the negative log marginal likelihood per row changes by less (relative) ...
GTOL = 1e-5     # ... or when no gradient entry is larger (scipy's L-BFGS-B options)
WORK_THREADS = 1  # the GP's matrices (n <= optimize_rows) gain nothing from a second thread: threads.blas_threads
BAD_VALUE = 1e10  # returned where the covariance cannot be factorised: the line search steps back


def _normalise_blocks(blocks, width: int | None = None) -> tuple:
    """``blocks`` as (name, kind, start, stop, columns) covering columns 0..width side by side; without blocks,
    one block of every column (one-hot when every value is 0 or 1)."""
    out = read_blocks(blocks)
    position = 0
    for name, _, start, stop, columns in out:
        if start != position or stop <= start or (columns is not None and len(columns) != stop - start):
            raise ValueError(f"block {name!r} spans columns {start}..{stop}: blocks must lie side by side from "
                             f"column 0, each naming as many columns as it spans")
        position = stop
    if out and width is not None and position != width:
        raise ValueError(f"the blocks describe {position} columns but the features have {width}")
    return tuple(out)


def _at_most(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Every row index, or ``size`` of them drawn at random (sorted)."""
    return np.arange(n) if n <= size else np.sort(rng.choice(n, size, replace=False))


def _default_block(X: np.ndarray) -> tuple:
    binary = bool(np.all((X == 0) | (X == 1)))
    return (("features", "onehot" if binary else "dense", 0, X.shape[1], None),)


class GaussianProcessRegressor(Estimator):
    """Gaussian process: a kernel per feature block (Hamming on one-hot, Kermut's site kernel on a profile, RBF
    on embeddings), hyperparameters by marginal likelihood; its predictive std is the uncertainty.

    ``blocks``: (name, kind, first column, end column, column names or None) of each featurizer in the joined
    features, as ``mimo.models.data.feature_blocks`` reads them from a features manifest (`mimo fit gp` passes
    them); empty: all columns as one block."""

    name = "gp"
    needs_validation = False  # no choice is made on validation rows: fit(X, y) carves none
    predicts_std = True  # ``predict(X, return_std=True)``: the uncertainty runs calibrate intervals on
    _param_specs = {
        "dense": Param("str", "Kernel on embeddings, amino-acid properties and scores: rbf or linear.",
                       choices=("rbf", "linear")),
        "positions": Param("bool", "Add a kernel on the distance between substituted positions (one-hot blocks "
                           "whose columns name them: onehot, onehot-sites, onehot-full)."),
        "mean": Param("str", "Prior mean: auto (linear in a zero-shot score, else in a profile's dlogp, when the "
                      "features have one; else constant), constant, or score (that line, required).",
                      choices=("auto", "constant", "score")),
        "steps": Param("int", "L-BFGS iterations at most on the exact marginal likelihood (0: the initial "
                       "hyperparameters).", low=0),
        "prior_sd": Param("float", "Log-normal priors on the scales, length scales and noise, centred on their "
                          "initial values with this standard deviation of the log (0: none, the plain marginal "
                          "likelihood). They weigh as much as a few rows: they matter on a few dozen, not on "
                          "hundreds.", low=0),
        "optimize_rows": Param("int", "Hyperparameters are fitted on at most this many training rows (a seeded "
                               "random subset beyond).", low=2),
        "max_exact_rows": Param("int", "Exact posterior up to this many training rows (memory: rows^2 x 8 "
                                "bytes); beyond, the DTC approximation through --inducing-rows of them.", low=1),
        "inducing_rows": Param("int", "Inducing rows (chosen at random) beyond --max-exact-rows.", low=1),
        "target": Param("str", "What the GP models: normal-scores (the training labels' rank-based normal "
                        "quantiles, mapped back monotonically; a prediction is the predictive median) or raw "
                        "(standardised labels).", choices=tuple(TARGETS)),
        "seed": Param("int", "Seed of the random row subsets.", low=0),
    }

    def __init__(self, *, blocks: tuple = (), dense: str = "rbf", positions: bool = True, mean: str = "auto",
                 target: str = "normal-scores", steps: int = 20, prior_sd: float = 1.0, optimize_rows: int = 1000,
                 max_exact_rows: int = 10000, inducing_rows: int = 2000, start: dict | None = None, seed: int = 0,
                 threads: int | None = None):
        self._store(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        _normalise_blocks(self.blocks)
        if self.start is not None and not (isinstance(self.start, dict) and all(
                isinstance(k, str) and np.all(np.isfinite(np.asarray(v, np.float64))) for k, v in self.start.items())):
            raise ValueError("start must be a dict of the model's parameter names to finite values (as "
                             "refit_params gives), or None")

    # ------------------------------------------------------------------ fitting

    def _build(self, blocks: tuple) -> GpModel:
        kernels = [kernel for _, kernel in kernels_for(blocks, self.dense, self.positions)]
        column = None if self.mean == "constant" else score_column(blocks)
        if self.mean == "score" and column is None:
            raise ValueError("mean='score' (--mean score) needs a zero-shot block (a 'score' column) or a site "
                             "profile (a 'dlogp' column) among the features")
        return GpModel(kernels, column)

    def _work_threads(self) -> int:
        """Threads of a fit or prediction: ``threads``, else the count the user chose for the process, else one
        (``WORK_THREADS``)."""
        return self.threads or threads.explicit_count() or WORK_THREADS

    def _fit(self, data: FitData) -> None:
        with threads.limited(self._work_threads()):
            self._fit_limited(data)

    def _fit_limited(self, data: FitData) -> None:
        """Hyperparameters by marginal likelihood on the training rows, then the posterior; validation rows (when
        ``fit`` gets some) are only scored."""
        X, y = np.asarray(data.X, np.float32), np.asarray(data.y, np.float64)
        if len(X) < 2:
            raise ValueError(f"a Gaussian process needs at least 2 training rows; got {len(X)} sample(s) "
                             f"(n_samples = {len(X)})")
        self.blocks_ = _normalise_blocks(self.blocks, X.shape[1]) if self.blocks else _default_block(X)
        self.in_dim_, self.training_rows_ = X.shape[1], len(X)
        self.target_ = TARGETS[self.target].fit(y)
        z = self.target_.forward(y)
        self.model_ = self._build(self.blocks_)
        self.model_.fit_inputs(X, z)
        rng = np.random.default_rng(self.seed)
        subset = _at_most(len(X), self.optimize_rows, rng)
        self.history_ = self._optimise(X[subset], z[subset], data.log)
        self.optimized_rows_ = len(subset) if self.steps else 0
        self.posterior_ = self._condition(X, z, rng)
        self.valid_ = self._score_valid(data.X_valid, data.y_valid)

    def _condition(self, X: np.ndarray, z: np.ndarray, rng: np.random.Generator):
        """The posterior given every training row: exact, or through inducing rows beyond ``max_exact_rows``."""
        residual = z - self.model_.prior_mean(X)
        if len(X) <= self.max_exact_rows:
            return ExactPosterior(self.model_, X, residual)
        return InducingPosterior(self.model_, X[_at_most(len(X), self.inducing_rows, rng)], X, residual)

    def _optimise(self, X: np.ndarray, z: np.ndarray, log) -> list[float]:
        """L-BFGS (scipy's L-BFGS-B) on the negative exact marginal log-likelihood per row, over the raw
        hyperparameters; at most ``steps`` iterations, the best point kept. Returns the value at each
        evaluation (the first: the initial hyperparameters)."""
        from scipy.optimize import minimize

        model = self.model_
        rows = model.prepare(X)
        bases = model.bases(rows, rows)
        self._initialise(bases)
        target = torch.as_tensor(z)
        parameters = [p for p in model.parameters() if p.requires_grad]
        history: list[float] = []
        anchors = [value().detach().log() for value in self._positive()] if self.prior_sd else []

        def objective() -> torch.Tensor:
            loss = negative_mll(model, bases, rows, target)
            if anchors:  # -log of the log-normal priors (constants dropped), per row as the likelihood
                logs = [value().log() for value in self._positive()]
                loss = loss + sum(((v - a) ** 2).sum() for v, a in zip(logs, anchors)) / (
                    2 * self.prior_sd ** 2 * rows.n)
            return loss

        def set_vector(vector: np.ndarray) -> None:
            with torch.no_grad():
                offset = 0
                for p in parameters:
                    p.copy_(torch.as_tensor(vector[offset:offset + p.numel()]).reshape(p.shape))
                    offset += p.numel()

        def value_and_gradient(vector: np.ndarray) -> tuple[float, np.ndarray]:
            set_vector(vector)
            model.zero_grad()
            try:
                loss = objective()
            except ValueError:  # not positive definite even with jitter: a step too far, the line search backs off
                history.append(math.inf)
                return BAD_VALUE, np.zeros_like(vector)
            history.append(loss.item())
            if not math.isfinite(history[-1]):
                return BAD_VALUE, np.zeros_like(vector)
            loss.backward()
            if log is not None and len(history) % LOG_EVERY == 0:
                log(f"gp: evaluation {len(history)}  negative log marginal likelihood per row {min(history):.4f}")
            return history[-1], np.concatenate([p.grad.numpy().ravel() for p in parameters])

        start = np.concatenate([p.detach().numpy().ravel() for p in parameters]).astype(np.float64)
        if not self.steps:
            value_and_gradient(start)
        else:
            found = minimize(value_and_gradient, start, jac=True, method="L-BFGS-B",
                             options={"maxiter": self.steps, "ftol": FTOL, "gtol": GTOL})
            best = found.x if found.fun <= history[0] else start
            set_vector(best)
        model.zero_grad(set_to_none=True)
        if not math.isfinite(min(history)):
            raise ValueError("the marginal likelihood is not finite at the initial hyperparameters: check the "
                             "features for non-finite or huge values")
        return history

    def _positive(self) -> list:
        """Getters of the positive hyperparameters the priors hold: each kernel's scale and length scales, the
        noise."""
        out = [lambda: self.model_.likelihood.noise.reshape(-1)]
        for scaled in self.model_.kernels:
            kernel = scaled.base_kernel
            out.append(lambda scaled=scaled: scaled.outputscale.reshape(-1))
            if hasattr(kernel, "site_lengthscale"):
                out.append(lambda kernel=kernel: kernel.site_lengthscale.reshape(-1))
            elif kernel.has_lengthscale:
                out.append(lambda kernel=kernel: kernel.lengthscale.reshape(-1))
        return out

    def _initialise(self, bases) -> None:
        """``start``'s hyperparameters, else length scales from the median distances, equal scales, noise 0.1."""
        if self.start is not None:
            return self._load_start()
        for scaled, block_bases in zip(self.model_.kernels, bases):
            scaled.base_kernel.init_hyperparameters(block_bases)
            scaled.initialize(outputscale=1.0 / len(self.model_.kernels))
        self.model_.likelihood.initialize(noise=0.1)

    def _load_start(self) -> None:
        """The hyperparameters of ``start`` (raw values, by parameter name)."""
        named = dict(self.model_.named_parameters())
        if set(named) != set(self.start):
            raise ValueError(f"start names the parameters {sorted(self.start)}; a model on these features has "
                             f"{sorted(named)}")
        with torch.no_grad():
            for name, parameter in named.items():
                parameter.copy_(torch.as_tensor(np.asarray(self.start[name], np.float64)).reshape(parameter.shape))

    def refit_params(self) -> dict:
        """Refitted on more rows (train and valid), the hyperparameters stay those of the training rows' marginal
        likelihood: only the posterior is computed again."""
        with torch.no_grad():
            start = {name: p.numpy().tolist() for name, p in self.model_.named_parameters()}
        return {"start": start, "steps": 0}

    def _score_valid(self, X_valid: np.ndarray, y_valid: np.ndarray) -> dict:
        """Spearman and the mean negative log-likelihood per row (label units) of the validation rows."""
        if not len(y_valid):
            return {"rows": 0, "spearman": None, "nll": None}
        mean, var = self.posterior_.predict(self.model_, np.asarray(X_valid, np.float32), True)
        std = np.sqrt(np.maximum(var, 0.0) + self.model_.noise_value())
        nll = label_nll(self.target_, np.asarray(y_valid, np.float64), mean, std)
        return {"rows": len(y_valid), "spearman": spearman(y_valid, self.target_.inverse(mean)),
                "nll": float(nll.mean())}

    # ------------------------------------------------------------------ prediction

    def predict(self, X, return_std: bool = False):
        """Posterior mean in label units; with ``return_std``, also the predictive std of a new measurement
        (latent variance plus the noise)."""
        X = self._predict_input(X)
        with threads.limited(self._work_threads()):
            return self._posterior(np.asarray(X, np.float32), return_std)

    def _posterior(self, X: np.ndarray, return_std: bool = False):
        mean, var = self.posterior_.predict(self.model_, X, return_std)
        if not return_std:
            return self.target_.inverse(mean)
        std = np.sqrt(np.maximum(var, 0.0) + self.model_.noise_value())
        return self.target_.inverse(mean), label_std(self.target_, mean, std)

    def predict_latent(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of a new measurement on the scale the GP models (``target_``: the training labels' normal
        scores by default), the noise included. Intervals are made there and mapped back (``predict_interval``):
        calibrate them on validation rows' ``to_latent(y)`` against this, as on any Gaussian."""
        X = self._predict_input(X)
        with threads.limited(self._work_threads()):
            mean, var = self.posterior_.predict(self.model_, np.asarray(X, np.float32), True)
        return mean, np.sqrt(np.maximum(var, 0.0) + self.model_.noise_value())

    def to_latent(self, y) -> np.ndarray:
        """Labels on the scale the GP models (``target_.forward``)."""
        return self.target_.forward(np.asarray(y, np.float64))

    def to_labels(self, z, bounded: bool = True) -> np.ndarray:
        """Values on the modelled scale back in label units; ``bounded``: within the training labels' range under
        normal scores (for an interval's ends, e.g. ``interval_bounds`` of ``predict_latent`` calibrated on
        ``to_latent(y_valid)``)."""
        return self.target_.inverse(np.asarray(z, np.float64), bounded=bounded)

    def predict_interval(self, X, level: float = 0.95, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) in label units: the latent ``level`` interval (its half-width ``scale`` times the
        Gaussian quantile times the std; ``scale`` as calibrated on validation rows) mapped back through the
        target transform, so asymmetric, and bounded by the training labels' range under normal scores."""
        from scipy.stats import norm

        mean, std = self.predict_latent(X)
        return label_interval(self.target_, mean, scale * norm.ppf(0.5 + level / 2) * std)

    def predict_std(self, X: np.ndarray) -> np.ndarray:
        """The predictive std alone (see ``predict``)."""
        return self.predict(X, return_std=True)[1]

    def _members(self, X: np.ndarray) -> np.ndarray:
        """(n, 1): the posterior mean, as every head's ``predict_members`` returns (n, members)."""
        return self._posterior(np.asarray(X, np.float32))[:, None]

    # ------------------------------------------------------------------ reporting and saving

    def hyperparameters(self) -> dict:
        """The fitted hyperparameters; scales, noise and the mean in the units the GP models (``units``)."""
        with torch.no_grad():
            return self._hyperparameters()

    def _hyperparameters(self) -> dict:
        model = self.model_
        kernels = []
        names = [name for name, _ in kernels_for(self.blocks_, self.dense, self.positions)]
        for name, scaled in zip(names, model.kernels):
            kernels.append({"block": name, **scaled.base_kernel.describe(),
                            "scale": float(scaled.outputscale)})
        mean = model.mean_module
        if hasattr(mean, "linear"):
            described = {"kind": "linear in column", "column": mean.column,
                         "slope_per_std": float(mean.linear.weights), "intercept": float(mean.linear.bias)}
        else:
            described = {"kind": "constant", "value": float(mean.constant)}
        units = "normal scores of the training labels" if self.target_.kind == "normal-scores" else \
            "standardised labels"
        return {"units": units, "kernels": kernels, "mean": described, "noise": model.noise_value()}

    def run_summary(self) -> dict:
        """What a run records of the fit besides its parameters."""
        return {"gp": {"posterior": self.posterior_.kind, "training_rows": self.training_rows_,
                       "optimized_on_rows": self.optimized_rows_, "steps": self.steps,
                       "neg_mll_per_row": {"first": self.history_[0], "best": min(self.history_)},
                       "hyperparameters": self.hyperparameters(), "valid": self.valid_}}

    def fitted_state(self) -> dict:
        return {"module": {k: v for k, v in self.model_.state_dict().items()},
                "blocks": [list(b[:4]) + [None if b[4] is None else list(b[4])] for b in self.blocks_],
                "in_dim": self.in_dim_, "training_rows": self.training_rows_, "target": self.target_.state(),
                "optimized_rows": self.optimized_rows_, "history": list(self.history_), "valid": self.valid_,
                "posterior": {"kind": self.posterior_.kind, **self.posterior_.state()}}

    def load_fitted_state(self, state: dict, device: str = "cpu") -> None:
        self.blocks_ = _normalise_blocks(state["blocks"], int(state["in_dim"]))
        self.in_dim_, self.training_rows_ = int(state["in_dim"]), int(state["training_rows"])
        self.n_features_in_ = self.in_dim_
        self.target_ = target_from_state(state["target"])
        self.optimized_rows_, self.history_ = int(state["optimized_rows"]), list(state["history"])
        self.valid_ = state["valid"]
        self.model_ = self._build(self.blocks_)
        self.model_.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state["module"].items()})
        saved = state["posterior"]
        if saved["kind"] == "exact":
            self.posterior_ = ExactPosterior(self.model_, expand_rows(saved), None,
                                             alpha=np.asarray(saved["alpha"], np.float64))
        else:
            self.posterior_ = InducingPosterior(self.model_, np.asarray(saved["z"], np.float32), state=saved)

    # ------------------------------------------------------------------ joint posterior (batch acquisition)

    def posterior(self, X):
        """The joint posterior of the latent function (in the units the GP models: monotone in the labels) at
        the rows ``X``, as a gpytorch ``MultivariateNormal``: what batch acquisition draws from
        (``mimo.acquisition``). Exact: K** - V^T V with V = L^-1 K(X_train, X*); through inducing rows (DTC):
        K** - W^T W + U^T U with W = Lm^-1 K(Z, X*), U = LB^-1 W (``posterior.InducingPosterior``)."""
        from gpytorch.distributions import MultivariateNormal
        from linear_operator import to_linear_operator
        from scipy.linalg import solve_triangular

        X = np.asarray(self._predict_input(X), np.float32)
        model, post = self.model_, self.posterior_
        rows = model.prepare(X)
        prior = model.cross(rows, rows)
        with torch.no_grad():
            mean = model.mean(rows).numpy().astype(np.float64)
        if post.kind == "exact":
            if post.chol is None:
                post.chol = post._factor(model)
            cross = model.cross(rows, post.rows)
            v = solve_triangular(post.chol, cross.T, lower=True, check_finite=False)
            mean, covariance = mean + cross @ post.alpha, prior - v.T @ v
        else:
            w = solve_triangular(post.chol, model.cross(post.rows, rows), lower=True, check_finite=False)
            u = solve_triangular(post.chol_b, w, lower=True, check_finite=False)
            mean, covariance = mean + w.T @ post.beta, prior - w.T @ w + u.T @ u
        covariance = (covariance + covariance.T) / 2  # lazy: no factorisation until a draw asks for one
        return MultivariateNormal(torch.as_tensor(mean), to_linear_operator(torch.as_tensor(covariance)))
