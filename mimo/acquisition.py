"""Batch acquisition on a head's joint posterior: the one adapter between the plate (mimo.design) and a GP.

A pointwise score (UCB, EI) ranks every candidate alone, so the top 96 crowd where the model is most hopeful
and tell the bench the same thing 96 times. Batch Thompson sampling (Kandasamy et al. 2018; what ALDE runs with
its GPs) lets the wells account for each other: every well is the best candidate of its own draw from the joint
posterior over the candidates, so wells whose values are correlated are rarely all drawn high together, and the
plate's caps (``mimo.design.choose_plate``) add the diversity constraint. The draws come from gpytorch's
``MultivariateNormal`` (BoTorch's ``MaxPosteriorSampling`` draws the same way but cannot apply the plate's caps).

The head is asked for its joint posterior through ONE method, ``posterior(X)``: a gpytorch
``MultivariateNormal`` of its latent function at the rows ``X`` (any monotone transform of the labels: only the
order of a draw is used). A head without that method cannot serve ``ts``; it keeps the pointwise scores.
"""
from __future__ import annotations

import numpy as np

from mimo.pipeline.errors import DataError, option

BATCH_KINDS = ("ts",)
POOL = 4000  # candidates drawn jointly at most (a POOL^2 covariance: 128 MB in float64)


def ts_pool(mean: np.ndarray, ucb: np.ndarray, size: int = POOL) -> np.ndarray:
    """The rows batch Thompson sampling draws over: the best by the mean and the best by UCB, alternately, each
    row once, ``size`` at most; a pool of the best by UCB alone fills with the most uncertain candidates, which
    a draw then favours (on GFP's multi-mutants the plate went to far variants, no better than random)."""
    by_mean = np.argsort(-np.asarray(mean), kind="stable")
    by_ucb = np.argsort(-np.asarray(ucb), kind="stable")
    interleaved = np.empty(2 * len(by_mean), dtype=np.int64)
    interleaved[0::2], interleaved[1::2] = by_mean, by_ucb
    _, first = np.unique(interleaved, return_index=True)
    return interleaved[np.sort(first)][:size]


def serves(model) -> bool:
    """Whether ``model`` has a joint posterior (``posterior(X)``)."""
    return callable(getattr(model, "posterior", None))


def check_serves(model, kind: str) -> None:
    """Refuse, in one line, a batch acquisition ``model`` cannot serve."""
    if kind in BATCH_KINDS and not serves(model):
        name = getattr(model, "name", type(model).__name__)
        raise DataError(f"{option('acquisition')} {kind} needs a head with a joint posterior (fit gp); this run's "
                        f"head {name!r} has none: use ucb, ei or greedy")


def joint_posterior(model, X: np.ndarray):
    """The head's joint posterior at ``X`` (a gpytorch ``MultivariateNormal``): the adapter's only call."""
    return model.posterior(np.asarray(X, np.float32))


def thompson_orders(model, X: np.ndarray, n: int, seed: int = 0, total: int | None = None):
    """``orders(k)`` for ``choose_plate``: the candidates (rows of ``X``, the first ``POOL`` of them, best by
    the pointwise score first) ranked by the k-th of ``n`` joint posterior draws, best first; the rest of a
    table of ``total`` rows (default ``len(X)``) after them, in their given order."""
    import torch

    K = min(len(X), POOL)
    mvn = joint_posterior(model, X[:K])
    generator = torch.Generator().manual_seed(int(seed))
    mean = mvn.mean.detach().double()
    covariance = mvn.lazy_covariance_matrix.to_dense().detach().double()
    factor = _factor(covariance)
    normals = torch.randn(K, max(n, 1), generator=generator, dtype=torch.float64)
    draws = (mean[:, None] + factor @ normals).T.numpy()  # (n, K)
    tail = np.arange(K, len(X) if total is None else total)

    def orders(k: int) -> np.ndarray:
        return np.concatenate([np.argsort(-draws[min(k, len(draws) - 1)], kind="stable"), tail])

    return orders


def _factor(covariance):
    """A factor F with F F^T = the covariance: Cholesky, with the jitter gpytorch's ``psd_safe_cholesky`` adds
    where rounding needs it; where even that fails (a posterior covariance of rank well below its size, as
    between candidates the training rows pin down), the eigenvectors scaled by the square roots of the
    eigenvalues clipped at 0."""
    import torch
    from linear_operator.utils.cholesky import psd_safe_cholesky
    from linear_operator.utils.errors import NotPSDError

    try:
        return psd_safe_cholesky(covariance, max_tries=3)
    except (NotPSDError, RuntimeError):
        values, vectors = torch.linalg.eigh(covariance)
        return vectors * values.clamp(min=0).sqrt()
