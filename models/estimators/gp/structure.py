"""Kermut's structure kernel (Groth et al., NeurIPS 2024) for the Gaussian-process head, on the columns of a
``structure-<stem>`` block (``mimo.pipeline.featurizers.structure``).

Kermut compares two single substitutions x (site i, new residue a) and x' (site j, new residue b) by

    k(x, x') = exp(-H(p_i, p_j) / l_H) * exp(-|log p_i(a) - log p_j(b)| / l_p) * exp(-||c_i - c_j|| / l_d)

with p_i the site's amino-acid distribution from an inverse-folding profile (ProteinMPNN, ESM-IF1),
H the Hellinger distance sqrt(1 - sum_a sqrt(p_a q_a)), and c_i the site's CA coordinates: the first two factors
are the site kernel (``kernels.SiteKernel``), the third the distance kernel (Kermut's ``DistanceKernel``, an
exponential in the Euclidean distance; the issue's "RBF on the 3D distance"). Kermut multiplies the three
(``StructureKernel``) and sums the product over pairs of substituted sites of multi-mutants.

``StructureSiteKernel`` is that product: a site kernel (``kernels.SiteKernel``, held as a submodule: its bases and
length scales are its own) times exp(-D / l_d), D(x, x') = ||c(x) - c(x')||, c the mean CA
coordinate of a variant's substituted sites (the featurizer's ``x``, ``y``, ``z``: a variant with several sites
is placed at their mean, as its profile columns are their mixture; Kermut sums over site pairs instead). A row
whose sites have no coordinates (``covered`` = 0) gets D = 0 with every row: the factor is 1 and the site kernel
alone speaks for it (no signal from the structure). The three length scales are hyperparameters of the marginal
likelihood like every other (initialised at the median distances).

``DistanceKernel`` is the third factor alone, exp(-D / l_d) masked to rows with a substitution, for features with
a structure but no profile.

``compose`` is the hook ``kernels.kernels_for`` calls: a structure block (kind ``structure``) gets the dense kernel
on its per-site columns, and its coordinates multiply the site kernel of a profile block when there is one
(replacing ``SiteKernel`` by ``StructureSiteKernel``), else enter as ``DistanceKernel``. A structure block whose
kind is anything else (``bench.structure``'s ``-nokernel`` configurations) is an ordinary dense block.

Both are self-contained gpytorch ``Kernel``s (this module imports nothing of the head's) with the interface of
``kernels.BlockKernel``: bases (hyperparameter-free matrices: the distances of ``exp(-sum_k w_k B_k)`` and a 0/1
mask, last), ``rates`` (the w_k), ``transform``, and ``forward(x1, x2)``, which composes them, so each is an
ordinary gpytorch kernel on the joined feature rows (tested against a direct computation) and also runs in the
head's one-pass covariance (``posterior.SummedKernels``).
"""
from __future__ import annotations

import gpytorch
import numpy as np
import torch

STRUCTURE_KIND = "structure"
COORDINATES = ("x", "y", "z")
COVERED = "covered"


def _distance(a: np.ndarray, b: np.ndarray, diag: bool) -> np.ndarray:
    """Euclidean distances between rows of a and b (or row i with row i, ``diag``)."""
    if diag:
        return np.sqrt(((a - b) ** 2).sum(axis=1))
    squared = (a ** 2).sum(axis=1)[:, None] + (b ** 2).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _both(a: np.ndarray, b: np.ndarray, diag: bool) -> np.ndarray:
    return a * b if diag else np.outer(a, b)


def _median_positive(values: torch.Tensor) -> float:
    positive = values[values > 1e-12]
    return float(positive.median()) if positive.numel() else 1.0


def _placed(X: np.ndarray, coordinates: np.ndarray, covered: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean CA coordinates, 1 where the row's substituted sites all have coordinates)."""
    placed = (X[:, covered] > 0.5).astype(np.float64)
    return X[:, coordinates].astype(np.float64) * placed[:, None], placed


class _ExpForm(gpytorch.kernels.Kernel):
    """``exp(-sum_k rates_k * B_k) * mask``, the form ``posterior.SummedKernels`` sums in one pass."""

    exponential, masked = True, True

    def exp_form(self, bases: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        return bases[:-1], bases[-1]

    def transform(self, bases: list[torch.Tensor]) -> torch.Tensor:
        distances, mask = self.exp_form(bases)
        rates = self.rates()
        return torch.exp(-sum(rates[k] * d for k, d in enumerate(distances))) * mask

    def forward(self, x1, x2, diag: bool = False, **params):
        with torch.no_grad():
            bases = self.bases(self.prepare(x1.detach().numpy()), self.prepare(x2.detach().numpy()), diag)
        return self.transform(bases)


class StructureSiteKernel(_ExpForm):
    """``site(x, x') * exp(-D / l_d)`` (see the module): Kermut's structure kernel. ``site`` is the profile's site
    kernel (``kernels.SiteKernel``: exp(-H / l_H) exp(-|mt_logp - mt_logp'| / l_p) times its mask); ``lengthscale``
    is l_d, in angstroms."""

    has_lengthscale = True

    def __init__(self, site, coordinate_columns, covered_column: int, **kwargs):
        super().__init__(**kwargs)
        if not (site.exponential and site.masked):
            raise ValueError("the structure kernel multiplies a masked exponential site kernel")
        self.site = site
        self.columns = site.columns
        self.coordinate_columns = np.asarray(coordinate_columns, dtype=np.int64)
        self.covered_column = int(covered_column)
        self.n_bases = site.n_bases + 1

    def fit_inputs(self, X: np.ndarray) -> None:
        self.site.fit_inputs(X)

    def prepare(self, X: np.ndarray) -> dict:
        X = np.asarray(X)
        xyz, placed = _placed(X, self.coordinate_columns, self.covered_column)
        return {**self.site.prepare(X), "xyz": xyz, "placed": placed}

    def bases(self, a: dict, b: dict, diag: bool = False) -> list[torch.Tensor]:
        *distances, mask = self.site.bases(a, b, diag)
        d = _distance(a["xyz"], b["xyz"], diag) * _both(a["placed"], b["placed"], diag)
        return [*distances, torch.as_tensor(d), mask]

    def rates(self) -> torch.Tensor:
        return torch.cat([self.site.rates().reshape(-1), 1.0 / self.lengthscale.reshape(-1)])

    def init_hyperparameters(self, bases) -> None:
        self.site.init_hyperparameters([*bases[:-2], bases[-1]])
        self.lengthscale = _median_positive(bases[-2])

    def describe(self) -> dict:
        return {**self.site.describe(), "kernel": type(self).__name__,
                "distance_lengthscale_angstrom": float(self.lengthscale)}


class DistanceKernel(_ExpForm):
    """``exp(-D / lengthscale)``, D the distance (A) between the mean CA coordinates of two variants'
    substituted sites, times 0/1: both rows have placed substitutions (``covered`` and one of the block's per-site
    ``columns`` non-zero)."""

    has_lengthscale = True
    n_bases = 2

    def __init__(self, columns, coordinate_columns, covered_column: int, **kwargs):
        super().__init__(**kwargs)
        self.columns = np.asarray(columns, dtype=np.int64)
        self.coordinate_columns = np.asarray(coordinate_columns, dtype=np.int64)
        self.covered_column = int(covered_column)

    def fit_inputs(self, X: np.ndarray) -> None:
        """Nothing to fix from the training rows."""

    def prepare(self, X: np.ndarray) -> dict:
        X = np.asarray(X)
        xyz, placed = _placed(X, self.coordinate_columns, self.covered_column)
        substituted = np.abs(X[:, self.columns].astype(np.float64)).sum(axis=1) > 0
        return {"xyz": xyz, "placed": placed * substituted}

    def bases(self, a: dict, b: dict, diag: bool = False) -> list[torch.Tensor]:
        return [torch.as_tensor(_distance(a["xyz"], b["xyz"], diag)),
                torch.as_tensor(_both(a["placed"], b["placed"], diag))]

    def rates(self) -> torch.Tensor:
        return 1.0 / self.lengthscale.reshape(-1)

    def init_hyperparameters(self, bases) -> None:
        self.lengthscale = _median_positive(bases[0])

    def describe(self) -> dict:
        return {"kernel": type(self).__name__, "distance_lengthscale_angstrom": float(self.lengthscale)}


def is_structure(block: tuple) -> bool:
    return str(block[1]) == STRUCTURE_KIND


def _layout(block: tuple) -> tuple[list[int], list[int], int]:
    """(per-site columns, coordinate columns, covered column) of a structure block, as indices of the joined
    features."""
    name, _, start, stop, columns = block
    named = {c: start + i for i, c in enumerate(columns or ())}
    missing = [c for c in (*COORDINATES, COVERED) if c not in named]
    if missing:
        raise ValueError(f"features {name!r} are of kind structure but lack the columns {missing}")
    coordinates = [named[c] for c in COORDINATES]
    rest = [i for i in range(start, stop) if i not in set(coordinates)]
    return rest, coordinates, named[COVERED]


def structure_block_kernels(block: tuple, dense_kernel) -> list:
    """A structure block's own kernel: ``dense_kernel`` on its per-site columns (burial, pLDDT, property changes,
    pairs, covered); its coordinates are read by ``compose``."""
    rest, _, _ = _layout(block)
    return [dense_kernel(rest)]


def compose(blocks, named_kernels: list[tuple[str, object]], is_site=None) -> list[tuple[str, object]]:
    """The structure kernel placed among the others (see the module): the first site kernel (``is_site``) multiplied
    by the 3D distance factor, or a ``DistanceKernel`` of its own."""
    structures = [block for block in blocks if is_structure(block)]
    if not structures:
        return named_kernels
    block = structures[0]
    rest, coordinates, covered = _layout(block)
    for k, (name, kernel) in enumerate(named_kernels):
        if is_site is not None and is_site(kernel):
            out = list(named_kernels)
            out[k] = (name, StructureSiteKernel(kernel, coordinates, covered))
            return out
    sites = [i for i in rest if i != covered]  # non-zero only where a variant has a placed substitution
    return named_kernels + [(block[0], DistanceKernel(sites, coordinates, covered))]
