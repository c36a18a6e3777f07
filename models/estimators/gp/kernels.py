"""The Gaussian-process head's kernels, one per block of the joined features, as gpytorch kernels.

Every kernel here splits in two: ``bases``, matrices that depend on the rows only (Hamming distances, squared
distances, Hellinger distances between site distributions), and ``transform``, which turns them into covariances
with the hyperparameters. The head computes the bases of its training rows once and runs every step of the
marginal-likelihood optimisation on them, so a step costs a few elementwise operations and a Cholesky
factorisation instead of a pass over thousands of one-hot columns. ``forward`` composes the two, so each class is
an ordinary gpytorch kernel (tested equal to gpytorch's own RBF kernel, and usable in gpytorch's ``ExactGP``).

Which kernel a block gets follows its manifest (``kernel_for``):

- one-hot substitutions (``kind`` onehot): ``exp(-d / l)`` with d the Hamming distance between the 0/1 rows
  (number of substitutions and sites not shared); and, where the columns name positions (``64A``, ``64``),
  ``exp(-|i - j| / l)`` between the substituted positions (``positions``; ``bench.gp_proteingym``'s
  ``gp-nopositions`` is the head without it);
- a per-site profile (a block named or of kind ``profile...`` with columns ``p_A``..``p_Y`` and ``mt_logp``): the
  site kernel of Kermut (Groth et al., NeurIPS 2024): ``exp(-H / l_H) * exp(-|mt_logp - mt_logp'| / l_p)``, H the
  Hellinger distance between the amino-acid distributions of the mutated sites (rows of the parent, with no
  distribution, get 0); its other columns (``dlogp``, ``entropy``, ...) get the dense kernel;
- a structure (kind ``structure``): Kermut's 3D distance factor multiplies the profile's site kernel, and its
  other columns get the dense kernel (``mimo.models.estimators.gp.structure``);
- anything else (embeddings, amino-acid properties, zero-shot scores): ``exp(-D2 / (2 l^2))`` with D2 the mean
  squared difference of standardised columns (``dense="rbf"``), or their mean product (``dense="linear"``).

Each is wrapped in a gpytorch ``ScaleKernel`` by the head, so the covariance is a sum with learned scales.
"""
from __future__ import annotations

import re

import gpytorch
import numpy as np
import torch
from gpytorch.constraints import Positive
from scipy import sparse

from mimo.models.data import is_profile
from mimo.pipeline.io.variants import AMINO_ACIDS

PROFILE_COLUMNS = tuple(f"p_{a}" for a in AMINO_ACIDS)
MUTANT_LOGP = "mt_logp"
Prepared = dict  # a block's rows in the form its bases are computed from (row-sliceable arrays)


def _double(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def _median_positive(values: torch.Tensor) -> float:
    """Median of the positive entries (the usual initial length scale), 1 when there are none."""
    positive = values[values > 1e-12]
    return float(positive.median()) if positive.numel() else 1.0


def take_rows(prepared: Prepared, rows: slice | np.ndarray) -> Prepared:
    return {key: value[rows] for key, value in prepared.items()}


class BlockKernel(gpytorch.kernels.Kernel):
    """A kernel on ``columns`` of the joined features (indices into each row).

    Most kernels here are ``exp(-sum_k w_k B_k)``, times a 0/1 mask for rows a kernel has nothing to say of:
    ``exp_form`` splits their bases into the distances B_k and the mask, ``rates`` gives the w_k (functions of
    the length scales). ``GpModel.covariance`` sums them in one pass with hand-written gradients (dot products)."""

    n_bases = 1          # matrices ``bases`` returns
    exponential = True   # False: the kernel is its single base times nothing (``LinearKernel``)
    masked = False       # the last base is a 0/1 mask

    def __init__(self, columns, **kwargs):
        super().__init__(**kwargs)
        self.columns = np.asarray(columns, dtype=np.int64)

    def fit_inputs(self, X: np.ndarray) -> None:
        """Fix what the bases need from the training rows (column standardisation); nothing by default."""

    def prepare(self, X: np.ndarray) -> Prepared:
        raise NotImplementedError

    def _take(self, X: np.ndarray, dtype=None) -> np.ndarray:
        """This kernel's columns of X: a view where they lie side by side (a block's do), so that the joined
        features (thousands of one-hot columns) are never copied whole."""
        cols = self.columns
        block = np.asarray(X)[:, cols[0]:cols[-1] + 1] if len(cols) and np.all(np.diff(cols) == 1) \
            else np.asarray(X)[:, cols]
        return block if dtype is None else block.astype(dtype)

    def _indicator(self, X: np.ndarray) -> sparse.csr_matrix:
        """Which of this kernel's columns are non-zero, as a sparse 0/1 matrix."""
        on = sparse.csr_matrix(self._take(X), dtype=np.float64)
        on.data[:] = 1.0
        return on

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        """Hyperparameter-free (len(a), len(b)) matrices, or with ``diag`` the (len(a),) values of row i with row
        i of ``b``."""
        raise NotImplementedError

    def rates(self) -> torch.Tensor:
        """The w_k of ``exp(-sum_k w_k B_k)`` (differentiable in the hyperparameters)."""
        return 1.0 / self.lengthscale.reshape(-1)

    def exp_form(self, bases: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        return (bases[:-1], bases[-1]) if self.masked else (bases, None)

    def transform(self, bases: list[torch.Tensor]) -> torch.Tensor:
        distances, mask = self.exp_form(bases)
        rates = self.rates()
        out = torch.exp(-sum(rates[k] * d for k, d in enumerate(distances)))
        return out if mask is None else out * mask

    def describe(self) -> dict:
        """The kernel's name and length scales, for a run's record."""
        out = {"kernel": type(self).__name__}
        if self.has_lengthscale:
            out["lengthscale"] = float(self.lengthscale)
        return out

    def init_hyperparameters(self, bases: list[torch.Tensor]) -> None:
        """Rates of one over the median distance of the training rows (the median heuristic)."""
        self.lengthscale = _median_positive(self.exp_form(bases)[0][0])

    def forward(self, x1, x2, diag: bool = False, **params):
        with torch.no_grad():
            bases = self.bases(self.prepare(x1.detach().numpy()), self.prepare(x2.detach().numpy()), diag)
        return self.transform(bases)


class HammingKernel(BlockKernel):
    """``exp(-d / lengthscale)``, d the number of 0/1 columns in which two rows differ. On one-hot rows that is
    gpytorch's exponential (Matern-1/2) kernel; computed from sparse products, as one-hot rows are mostly zeros."""

    has_lengthscale = True

    def prepare(self, X: np.ndarray) -> Prepared:
        on = self._indicator(X)
        return {"on": on, "count": np.asarray(on.sum(axis=1)).ravel()}

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        if diag:
            shared = np.asarray(a["on"].multiply(b["on"]).sum(axis=1)).ravel()
            return [_double(a["count"] + b["count"] - 2 * shared)]
        shared = (a["on"] @ b["on"].T).toarray()
        return [_double(a["count"][:, None] + b["count"][None, :] - 2 * shared)]


def _pairwise(a: np.ndarray, b: np.ndarray, diag: bool, op) -> torch.Tensor:
    """``op`` of row i of a with row j of b (or with row i, ``diag``), for 1-D per-row values."""
    return _double(op(a, b) if diag else op(a[:, None], b[None, :]))


class PositionKernel(BlockKernel):
    """``exp(-|i - j| / lengthscale)`` between the positions of two variants' substituted sites (a variant with
    several: their mean), read from the one-hot columns' names (``64A``, ``64``); 0 for the parent. Neighbours
    in the sequence stand in for Kermut's structural distance between sites, which needs coordinates."""

    has_lengthscale = True
    n_bases, masked = 2, True

    def __init__(self, columns, positions, **kwargs):
        super().__init__(columns, **kwargs)
        self.positions = np.asarray(positions, dtype=np.float64)

    def prepare(self, X: np.ndarray) -> Prepared:
        on = self._indicator(X)
        count = np.asarray(on.sum(axis=1)).ravel()
        return {"position": (on @ self.positions) / np.maximum(count, 1), "has": (count > 0).astype(np.float64)}

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        return [_pairwise(a["position"], b["position"], diag, lambda p, q: np.abs(p - q)),
                _pairwise(a["has"], b["has"], diag, np.multiply)]


class _Standardised(BlockKernel):
    """Columns centred and scaled by the training rows' mean and standard deviation."""

    def __init__(self, columns, **kwargs):
        super().__init__(columns, **kwargs)
        self.register_buffer("shift", torch.zeros(len(self.columns), dtype=torch.float64))
        self.register_buffer("scale", torch.ones(len(self.columns), dtype=torch.float64))

    def fit_inputs(self, X: np.ndarray) -> None:
        block = self._take(X, np.float64)
        std = block.std(axis=0)
        self.shift = torch.as_tensor(block.mean(axis=0))
        self.scale = torch.as_tensor(np.where(std > 0, std, 1.0))

    def prepare(self, X: np.ndarray) -> Prepared:
        z = (self._take(X, np.float64) - self.shift.numpy()) / self.scale.numpy()
        return {"z": z / np.sqrt(len(self.columns)), "norm": (z ** 2).sum(axis=1) / len(self.columns)}


class RbfKernel(_Standardised):
    """``exp(-D2 / (2 lengthscale^2))``, D2 the mean over columns of the squared difference of standardised
    values (gpytorch's RBF kernel on the standardised columns divided by sqrt(their number))."""

    has_lengthscale = True

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        if diag:
            return [_double(((a["z"] - b["z"]) ** 2).sum(axis=1))]
        return [_double(np.maximum(a["norm"][:, None] + b["norm"][None, :] - 2 * a["z"] @ b["z"].T, 0.0))]

    def rates(self) -> torch.Tensor:
        return 0.5 / self.lengthscale.reshape(-1) ** 2

    def init_hyperparameters(self, bases):
        self.lengthscale = float(np.sqrt(_median_positive(bases[0])))


class LinearKernel(_Standardised):
    """The mean over columns of the product of standardised values (a linear model's covariance)."""

    exponential = False

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        return [_double((a["z"] * b["z"]).sum(axis=1) if diag else a["z"] @ b["z"].T)]

    def transform(self, bases):
        return bases[0]

    def init_hyperparameters(self, bases):
        pass


class SiteKernel(BlockKernel):
    """Kermut's site kernel: ``exp(-H / l_H) * exp(-|mt_logp - mt_logp'| / l_p)``, H the Hellinger distance
    sqrt(1 - sum_a sqrt(p_a q_a)) between the rows' amino-acid distributions (``p_A``..``p_Y``, normalised to sum
    to 1), ``mt_logp`` the log-probability of the new residue. Rows without a distribution (the parent, or a site
    the profile does not reach) get 0. Kermut multiplies a third factor, the distance between the sites in the
    structure; ``PositionKernel`` (added, not multiplied: the product did no better on validation folds) stands in
    for it. A variant with several substitutions has
    its profile columns summed by the featurizer: its distribution is then the mixture of its sites' (Kermut sums
    the kernel over pairs of sites instead)."""

    n_bases, masked = 3, True

    def __init__(self, columns, mutant_column: int, **kwargs):
        super().__init__(columns, **kwargs)
        self.mutant_column = int(mutant_column)
        self.register_parameter("raw_site_lengthscale", torch.nn.Parameter(torch.zeros(2, dtype=torch.float64)))
        self.register_constraint("raw_site_lengthscale", Positive())

    @property
    def site_lengthscale(self) -> torch.Tensor:
        """(Hellinger length scale, mutant log-probability length scale)."""
        return self.raw_site_lengthscale_constraint.transform(self.raw_site_lengthscale)

    @site_lengthscale.setter
    def site_lengthscale(self, value) -> None:
        value = torch.as_tensor(value, dtype=self.raw_site_lengthscale.dtype)
        self.initialize(raw_site_lengthscale=self.raw_site_lengthscale_constraint.inverse_transform(value))

    def prepare(self, X: np.ndarray) -> Prepared:
        p = np.clip(self._take(X, np.float64), 0.0, None)
        mass = p.sum(axis=1)
        root = np.sqrt(p / np.where(mass > 0, mass, 1.0)[:, None])
        return {"root": root, "has": (mass > 0).astype(np.float64),
                "logp": np.asarray(X)[:, self.mutant_column].astype(np.float64)}

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        overlap = (a["root"] * b["root"]).sum(axis=1) if diag else a["root"] @ b["root"].T
        return [_double(np.sqrt(np.clip(1.0 - overlap, 0.0, None))),
                _pairwise(a["logp"], b["logp"], diag, lambda p, q: np.abs(p - q)),
                _pairwise(a["has"], b["has"], diag, np.multiply)]

    def rates(self) -> torch.Tensor:
        return 1.0 / self.site_lengthscale

    def describe(self) -> dict:
        hellinger, mutant = (float(v) for v in self.site_lengthscale)
        return {"kernel": type(self).__name__, "hellinger_lengthscale": hellinger, "mutant_logp_lengthscale": mutant}

    def init_hyperparameters(self, bases):
        self.site_lengthscale = [_median_positive(bases[0]), _median_positive(bases[1])]


def column_positions(columns) -> np.ndarray | None:
    """The sequence position of each one-hot column (``64A``, ``64``: 64), or None when a name carries none."""
    found = [re.fullmatch(r"(\d+)[A-Z*]?", str(c)) for c in columns or ()]
    if not found or not all(found):
        return None
    return np.array([int(m.group(1)) for m in found], dtype=np.float64)


class ScoreMean(gpytorch.means.Mean):
    """A linear prior mean on one column (a zero-shot or profile score), standardised by the training rows."""

    def __init__(self, column: int):
        super().__init__()
        self.column = int(column)
        self.linear = gpytorch.means.LinearMean(input_size=1)
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    def fit_inputs(self, X: np.ndarray, y: np.ndarray) -> None:
        """Standardise the score and start from its least-squares line through ``y``."""
        score = np.asarray(X)[:, self.column].astype(np.float64)
        self.shift, self.scale = torch.tensor(score.mean()), torch.tensor(score.std() or 1.0)
        z = (score - score.mean()) / (score.std() or 1.0)
        slope = float(np.mean(z * (y - y.mean())))  # z has unit variance
        self.linear.initialize(weights=torch.tensor([[slope]]), bias=torch.tensor([float(y.mean())]))

    def prepare(self, X: np.ndarray) -> torch.Tensor:
        return (_double(np.asarray(X)[:, self.column]) - self.shift) / self.scale

    def forward(self, x):
        return self.linear(((x[..., self.column] - self.shift) / self.scale).unsqueeze(-1))


def kernel_for(block: tuple, dense: str, positions: bool = True) -> list[BlockKernel]:
    """The kernels of one block ``(name, kind, start, stop, columns)`` (columns: names, or None)."""
    name, kind, start, stop, columns = block
    span = np.arange(start, stop)
    dense_kernel = RbfKernel if dense == "rbf" else LinearKernel
    if kind == "structure":  # Kermut's structure kernel: ``mimo.models.estimators.gp.structure``
        from mimo.models.estimators.gp.structure import structure_block_kernels

        return structure_block_kernels(block, dense_kernel)
    if kind == "onehot":
        where = column_positions(columns) if positions else None
        return [HammingKernel(span)] + ([PositionKernel(span, where)] if where is not None else [])
    if is_profile(block):
        named = {c: start + i for i, c in enumerate(columns or ())}
        missing = [c for c in (*PROFILE_COLUMNS, MUTANT_LOGP) if c not in named]
        if missing:
            raise ValueError(f"features {name!r} look like a site profile but lack the columns {missing}; the site "
                             f"kernel needs p_A..p_Y and {MUTANT_LOGP}")
        site = [named[c] for c in PROFILE_COLUMNS]
        rest = [i for i in span if i not in set(site)]
        return [SiteKernel(site, named[MUTANT_LOGP])] + ([dense_kernel(rest)] if rest else [])
    return [dense_kernel(span)]


def kernels_for(blocks, dense: str, positions: bool = True) -> list[tuple[str, BlockKernel]]:
    """(block name, kernel) of every block's kernels, in the blocks' order; a structure block's coordinates
    multiply a profile's site kernel (``gp.structure.compose``)."""
    from mimo.models.estimators.gp.structure import compose

    return compose(blocks, [(block[0], kernel) for block in blocks for kernel in kernel_for(block, dense, positions)],
                   is_site=lambda kernel: type(kernel) is SiteKernel)


def _score_in(block: tuple) -> str | None:
    """The column of a block that can serve as the prior mean: a zero-shot block's ``score``, a scores file's
    first column, a profile's ``dlogp``."""
    columns = list(block[4] or ())
    if block[1] == "zeroshot" and "score" in columns:
        return "score"
    if block[1] == "scores" and columns and columns[0] != "covered":
        return columns[0]
    return "dlogp" if is_profile(block) and "dlogp" in columns else None


def score_column(blocks) -> int | None:
    """Index of the column the prior mean follows: a zero-shot score (``zeroshot`` or ``scores`` blocks) before a
    profile's ``dlogp``; None when the features have neither."""
    candidates = sorted((block for block in blocks if _score_in(block)), key=is_profile)  # stable
    if not candidates:
        return None
    return candidates[0][2] + list(candidates[0][4]).index(_score_in(candidates[0]))


