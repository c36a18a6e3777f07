"""The Gaussian-process head's model (kernels, mean, noise), its marginal likelihood, and its posteriors.

``GpModel`` holds gpytorch modules: one ``ScaleKernel`` per block kernel (so the covariance is a sum with learned
scales), a constant or score-following mean, and a ``GaussianLikelihood``'s noise. Its covariance is computed
from each kernel's row bases (see ``mimo.models.estimators.gp.kernels``), which the optimisation computes once.

Why the marginal likelihood and its gradient are written here rather than taken from gpytorch's ``ExactGP`` and
``ExactMarginalLogLikelihood`` (the project's rule: a hand-written replacement needs a measured 2x): the
hyperparameters are fitted on at most ``optimize_rows`` (1,000) rows, so a step costs the same at the shipped
sizes (1,215 and 5,000 rows). One value and gradient on 1,000 synthetic rows (one-hot, aaprops-sized and profile
blocks), one thread in torch and in BLAS: 0.249 s here against 1.104 s for gpytorch's on the same kernels with
their row bases cached as here (4.4x; ``python -m bench.gp_speed --step``, commit 9d4a9af, 2-core AMD EPYC VM,
shared, load 11; scratch runs of the same at load 9-12 gave 0.27-0.49 s against 0.92-1.33 s). gpytorch's backward goes through triangular solves and autograd's elementwise passes
over each n^2 kernel matrix (profiled: mul, add, neg and solve_triangular take 70% of it); here LAPACK's
``potri`` gives K^-1 once and each hyperparameter's gradient is one dot product. ``GaussianNll`` is
-log N(r; 0, K) with the gradient 0.5 (K^-1 - a a^T), a = K^-1 r; ``SummedKernels`` the sum of scaled kernels
with its gradients; both tested equal to gpytorch's value and gradient (``tests/test_gp.py``).

Two posteriors with fixed hyperparameters: ``ExactPosterior`` (Cholesky of all n training rows: n^2 doubles,
800 MB at 10,000) and ``InducingPosterior`` (the DTC approximation of Quinonero-Candela & Rasmussen 2005 on m
training rows chosen at random: m^2 doubles, streamed over the training rows; equal to the exact posterior when
every row is an inducing row).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import gpytorch
import numpy as np
import torch
from scipy import sparse
from scipy.linalg import blas, lapack, solve_triangular

from mimo.models.estimators.gp.kernels import BlockKernel, Prepared, ScoreMean, take_rows

NOISE_FLOOR = 1e-4      # the noise variance's lower bound, in standardised label units
CELLS = 4_000_000       # kernel entries per chunk when assembling or predicting (32 MB per matrix)
JITTERS = (1e-8, 1e-6, 1e-4)  # relative to the mean diagonal, tried in turn when a factorisation fails


@dataclass
class Rows:
    """Rows prepared once for every kernel (and the mean's score), sliceable."""

    blocks: list[Prepared]
    score: torch.Tensor | None
    n: int

    def take(self, rows: slice | np.ndarray) -> "Rows":
        index = np.arange(self.n)[rows]
        score = None if self.score is None else self.score[torch.as_tensor(index)]
        return Rows([take_rows(b, rows) for b in self.blocks], score, len(index))


class GpModel(gpytorch.Module):
    """Kernels (each scaled), a prior mean and the noise, in float64."""

    def __init__(self, kernels: list[BlockKernel], score_column: int | None):
        super().__init__()
        self.kernels = torch.nn.ModuleList([gpytorch.kernels.ScaleKernel(k) for k in kernels])
        self.mean_module = gpytorch.means.ConstantMean() if score_column is None else ScoreMean(score_column)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_constraint=gpytorch.constraints.GreaterThan(NOISE_FLOOR))
        self.double()

    def fit_inputs(self, X: np.ndarray, y: np.ndarray) -> None:
        """Standardisation of the blocks (and of the score) from the training rows; the mean starts at y's."""
        for scaled in self.kernels:
            scaled.base_kernel.fit_inputs(X)
        if isinstance(self.mean_module, ScoreMean):
            self.mean_module.fit_inputs(X, y)
        else:
            self.mean_module.initialize(constant=float(np.mean(y)))

    def prior_mean(self, X: np.ndarray) -> np.ndarray:
        """The prior mean of rows (preparing the score alone, not every kernel's inputs)."""
        score = self.mean_module.prepare(X) if isinstance(self.mean_module, ScoreMean) else None
        with torch.no_grad():
            return self.mean(Rows([], score, len(X))).numpy()

    def prepare(self, X: np.ndarray) -> Rows:
        score = self.mean_module.prepare(X) if isinstance(self.mean_module, ScoreMean) else None
        return Rows([k.base_kernel.prepare(X) for k in self.kernels], score, len(X))

    def bases(self, a: Rows, b: Rows, diag: bool = False) -> list[list[torch.Tensor]]:
        with torch.no_grad():
            return [k.base_kernel.bases(pa, pb, diag) for k, pa, pb in zip(self.kernels, a.blocks, b.blocks)]

    def covariance(self, bases: list[list[torch.Tensor]]) -> torch.Tensor:
        """The kernel (without the noise) from ``bases``; differentiable in the hyperparameters."""
        forms, rates, offset = [], [], 0
        for scaled, block_bases in zip(self.kernels, bases):
            kernel = scaled.base_kernel
            if not kernel.exponential:
                forms.append((block_bases, None, None))
                continue
            distances, mask = kernel.exp_form(block_bases)
            rates.append(kernel.rates())
            forms.append((distances, mask, offset))
            offset += len(rates[-1])
        scales = torch.stack([scaled.outputscale.reshape(()) for scaled in self.kernels])
        rates = torch.cat(rates) if rates else torch.zeros(0, dtype=torch.float64)
        return SummedKernels.apply(forms, scales, rates)

    def mean(self, rows: Rows) -> torch.Tensor:
        if rows.score is not None:
            return self.mean_module.linear(rows.score.unsqueeze(-1))
        return self.mean_module.constant.expand(rows.n)

    @property
    def noise(self) -> torch.Tensor:
        return self.likelihood.noise.reshape(())

    def noise_value(self) -> float:
        return self.noise.item()

    def cross(self, a: Rows, b: Rows) -> np.ndarray:
        """K(a, b) as a numpy array, a's rows a chunk at a time."""
        out = np.empty((a.n, b.n))
        step = max(1, CELLS // max(b.n, 1))
        with torch.no_grad():
            for start in range(0, a.n, step):
                part = a.take(slice(start, start + step))
                out[start:start + step] = self.covariance(self.bases(part, b)).numpy()
        return out

    def prior_variance(self, rows: Rows) -> np.ndarray:
        with torch.no_grad():
            return self.covariance(self.bases(rows, rows, diag=True)).numpy()


def cholesky(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor; with a little jitter on the diagonal when rounding makes K indefinite."""
    scale = float(np.mean(np.diag(K))) or 1.0
    for jitter in (0.0, *JITTERS):
        L, info = lapack.dpotrf(K + jitter * scale * np.eye(len(K)) if jitter else K, lower=1, clean=1)
        if info == 0:
            return L
    raise ValueError("the Gaussian process's covariance is not positive definite even with jitter: check the "
                     "features for non-finite or huge values")


class SummedKernels(torch.autograd.Function):
    """sum_b s_b K_b with K_b = exp(-sum_k w_bk B_bk) * M_b (a linear kernel: its base), built in one buffer; the
    scales' and rates' gradients are dot products of the incoming gradient with K_b and with K_b * B_bk. Autograd
    through the same expression made three times as many passes over the n^2 entries (tested equal)."""

    @staticmethod
    def forward(ctx, forms, scales: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
        total, values = None, []
        for b, (distances, mask, offset) in enumerate(forms):
            if offset is None:
                value = distances[0]
            else:
                value = torch.mul(distances[0], float(rates[offset]))
                for k in range(1, len(distances)):
                    value.add_(distances[k], alpha=float(rates[offset + k]))
                value.neg_().exp_()
                if mask is not None:
                    value.mul_(mask)
            values.append(value)
            total = value * float(scales[b]) if total is None else total.add_(value, alpha=float(scales[b]))
        ctx.forms, ctx.values = forms, values
        ctx.save_for_backward(scales)
        ctx.n_rates = len(rates)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scales,) = ctx.saved_tensors
        flat = grad.reshape(-1)
        grad_scales = torch.zeros_like(scales)
        grad_rates = torch.zeros(ctx.n_rates, dtype=grad.dtype)
        for b, ((distances, _, offset), value) in enumerate(zip(ctx.forms, ctx.values)):
            grad_scales[b] = torch.dot(flat, value.reshape(-1))
            if offset is not None:
                weighted = (grad * value).reshape(-1)
                for k, distance in enumerate(distances):
                    grad_rates[offset + k] = -scales[b] * torch.dot(weighted, distance.reshape(-1))
        return None, grad_scales, grad_rates


class GaussianNll(torch.autograd.Function):
    """-log N(r; 0, K) summed over the rows, its gradient from LAPACK's inverse of the Cholesky factor."""

    @staticmethod
    def forward(ctx, K: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        L = cholesky(K.detach().numpy())
        alpha = lapack.dpotrs(L, r.detach().numpy(), lower=1)[0]
        value = 0.5 * float(r.detach().numpy() @ alpha) + float(np.log(np.diag(L)).sum()) \
            + 0.5 * len(alpha) * math.log(2 * math.pi)
        ctx.save_for_backward(torch.from_numpy(L), torch.from_numpy(alpha))
        return torch.tensor(value, dtype=K.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        """0.5 (K^-1 - a a^T), folded onto the lower triangle: LAPACK's ``potri`` leaves K^-1 there (zeros above),
        the diagonal is halved and the rank-one term taken in place. Its inner product with any symmetric matrix
        (every dK/dtheta here) is that of the full gradient, at a third of the passes."""
        L, alpha = (t.numpy() for t in ctx.saved_tensors)
        folded = lapack.dpotri(L, lower=1)[0]
        folded[np.diag_indices_from(folded)] *= 0.5
        folded = blas.dger(-0.5, alpha, alpha, a=folded, overwrite_a=1)
        g = float(grad)
        return torch.from_numpy(folded).mul_(g), torch.from_numpy(g * alpha)


def negative_mll(model: GpModel, bases, rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """The negative exact marginal log-likelihood per row (gpytorch's ``ExactMarginalLogLikelihood`` scale)."""
    K = model.covariance(bases)
    K.diagonal().add_(model.noise)
    return GaussianNll.apply(K, y - model.mean(rows)) / rows.n


def compact_rows(X: np.ndarray) -> dict:
    """Rows as scipy's compressed sparse rows: the non-zero values (float32, as the head reads its features), their
    columns and each row's start; a 5,000-row one-hot+aaprops+profile fit holds 3 MB of them, not 100 MB."""
    rows = sparse.csr_matrix(np.asarray(X, np.float32))
    return {"x_values": rows.data, "x_columns": rows.indices.astype(np.int32), "x_starts": rows.indptr.astype(np.int64),
            "x_shape": np.asarray(rows.shape, np.int64)}


def expand_rows(state: dict) -> np.ndarray:
    """The rows ``compact_rows`` kept (or the dense ``x`` of runs saved before it)."""
    if "x" in state:
        return np.asarray(state["x"], np.float32)
    shape = tuple(int(v) for v in np.asarray(state["x_shape"]))
    return sparse.csr_matrix((np.asarray(state["x_values"], np.float32), np.asarray(state["x_columns"]),
                              np.asarray(state["x_starts"])), shape=shape).toarray()


def _chunks(n: int, width: int):
    step = max(1, CELLS // max(width, 1))
    return (slice(start, start + step) for start in range(0, n, step))


class ExactPosterior:
    """The exact posterior given the training rows X: mean m(x) + K(x, X) a with a = (K(X, X) + noise I)^-1 r,
    latent variance k(x, x) - |L^-1 K(X, x)|^2 (the noise is added by the head)."""

    kind = "exact"

    def __init__(self, model: GpModel, X: np.ndarray, residual: np.ndarray, alpha: np.ndarray | None = None):
        self.X = X
        self.rows = model.prepare(X)
        self.chol = None
        if alpha is None:
            self.chol = self._factor(model)
            alpha = lapack.dpotrs(self.chol, residual, lower=1)[0]
        self.alpha = alpha

    def _factor(self, model: GpModel) -> np.ndarray:
        """Cholesky factor of K(X, X) + noise I, factorised in place (n^2 doubles held, not twice that); when
        rounding makes it indefinite, built again and factorised with jitter."""
        L, info = lapack.dpotrf(self._noisy_kernel(model).T, lower=1, clean=1, overwrite_a=1)
        return L if info == 0 else cholesky(self._noisy_kernel(model))

    def _noisy_kernel(self, model: GpModel) -> np.ndarray:
        K = model.cross(self.rows, self.rows)
        K[np.diag_indices_from(K)] += model.noise_value()
        return K

    def predict(self, model: GpModel, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if return_std and self.chol is None:  # after loading: factorised again, once
            self.chol = self._factor(model)
        mean, var = np.empty(len(X)), np.empty(len(X)) if return_std else None
        for part in _chunks(len(X), len(self.X)):
            rows = model.prepare(X[part])
            cross = model.cross(rows, self.rows)
            with torch.no_grad():
                mean[part] = model.mean(rows).numpy() + cross @ self.alpha
            if return_std:
                v = solve_triangular(self.chol, cross.T, lower=True, check_finite=False)
                var[part] = model.prior_variance(rows) - (v ** 2).sum(axis=0)
        return mean, var

    def state(self) -> dict:
        """The training rows in compressed sparse rows (one-hot columns are mostly zeros) and the weights; the
        Cholesky factor is recomputed when the model is loaded (``predict``)."""
        return {**compact_rows(self.X), "alpha": self.alpha}


class InducingPosterior:
    """DTC: the posterior through m inducing rows Z (Quinonero-Candela & Rasmussen 2005, eq. 20-21):
    with Lm = chol(K_ZZ), V = Lm^-1 K_ZX and LB = chol(I + V V^T / noise), mean m(x) + w^T LB^-T c and variance
    k(x, x) - |w|^2 + |LB^-1 w|^2 for w = Lm^-1 K_Zx and c = LB^-1 V r / noise. V V^T and V r are summed over
    chunks of training rows, so memory is m^2, not n m."""

    kind = "inducing"

    def __init__(self, model: GpModel, Z: np.ndarray, X: np.ndarray | None = None, residual: np.ndarray | None = None,
                 state: dict | None = None):
        self.Z = Z
        self.rows = model.prepare(Z)
        if state is not None:
            self.chol, self.chol_b, self.beta = state["chol"], state["chol_b"], state["beta"]
            return
        m, noise = len(Z), model.noise_value()
        self.chol = cholesky(model.cross(self.rows, self.rows) + JITTERS[1] * np.eye(m))
        gram, projected = np.zeros((m, m)), np.zeros(m)
        for part in _chunks(len(X), m):
            v = solve_triangular(self.chol, model.cross(self.rows, model.prepare(X[part])), lower=True,
                                 check_finite=False)
            gram += v @ v.T
            projected += v @ residual[part]
        self.chol_b = cholesky(np.eye(m) + gram / noise)
        c = solve_triangular(self.chol_b, projected / noise, lower=True, check_finite=False)
        self.beta = solve_triangular(self.chol_b.T, c, lower=False, check_finite=False)

    def predict(self, model: GpModel, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        mean, var = np.empty(len(X)), np.empty(len(X)) if return_std else None
        for part in _chunks(len(X), len(self.Z)):
            rows = model.prepare(X[part])
            w = solve_triangular(self.chol, model.cross(self.rows, rows), lower=True, check_finite=False)
            with torch.no_grad():
                mean[part] = model.mean(rows).numpy() + w.T @ self.beta
            if return_std:
                u = solve_triangular(self.chol_b, w, lower=True, check_finite=False)
                var[part] = model.prior_variance(rows) - (w ** 2).sum(axis=0) + (u ** 2).sum(axis=0)
        return mean, var

    def state(self) -> dict:
        return {"z": self.Z, "chol": self.chol, "chol_b": self.chol_b, "beta": self.beta}
