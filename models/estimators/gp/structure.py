"""Kermut's structure kernel (Groth et al., NeurIPS 2024) for the Gaussian-process head, on the columns of a
``structure-<stem>`` block (``mimo.pipeline.featurizers.structure``).

Kermut compares two single substitutions x (site i, new residue a) and x' (site j, new residue b) by

    k(x, x') = exp(-H(p_i, p_j) / l_H) * exp(-|log p_i(a) - log p_j(b)| / l_p) * exp(-||c_i - c_j|| / l_d)

with p_i the site's amino-acid distribution from an inverse-folding profile (ProteinMPNN, ESM-IF1),
H the Hellinger distance sqrt(1 - sum_a sqrt(p_a q_a)), and c_i the site's CA coordinates: the first two factors
are the site kernel (``kernels.SiteKernel``), the third the distance kernel (Kermut's ``DistanceKernel``, an
exponential in the Euclidean distance; the issue's "RBF on the 3D distance"). Kermut multiplies the three
(``StructureKernel``) and sums the product over pairs of substituted sites of multi-mutants.

``StructureSiteKernel`` is that product: the site kernel's bases plus D(x, x') = ||c(x) - c(x')||, c the mean CA
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

Both are ``BlockKernel``s: bases (hyperparameter-free matrices) and ``transform``; ``forward(x1, x2)`` composes
them, so each is an ordinary gpytorch ``Kernel`` on the joined feature rows (tested against a direct computation).
"""
from __future__ import annotations

import numpy as np
import torch

from mimo.models.estimators.gp.kernels import BlockKernel, Prepared, SiteKernel, _double, _median_positive

STRUCTURE_KIND = "structure"
COORDINATES = ("x", "y", "z")
COVERED = "covered"


def _distance(a: np.ndarray, b: np.ndarray, diag: bool) -> np.ndarray:
    if diag:
        return np.sqrt(((a - b) ** 2).sum(axis=1))
    squared = (a ** 2).sum(axis=1)[:, None] + (b ** 2).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


class StructureSiteKernel(SiteKernel):
    """``exp(-H / l_H) * exp(-|mt_logp - mt_logp'| / l_p) * exp(-D / l_d)`` times the site kernel's mask (see the
    module): Kermut's structure kernel. ``site_lengthscale`` is (l_H, l_p, l_d)."""

    n_bases = 4

    def __init__(self, columns, mutant_column: int, coordinate_columns, covered_column: int, **kwargs):
        super().__init__(columns, mutant_column, **kwargs)
        self.coordinate_columns = np.asarray(coordinate_columns, dtype=np.int64)
        self.covered_column = int(covered_column)
        self.raw_site_lengthscale = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def prepare(self, X: np.ndarray) -> Prepared:
        out = super().prepare(X)
        X = np.asarray(X)
        placed = (X[:, self.covered_column] > 0.5).astype(np.float64)
        out["xyz"] = X[:, self.coordinate_columns].astype(np.float64) * placed[:, None]
        out["placed"] = placed
        return out

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        hellinger, logp, mask = super().bases(a, b, diag)
        both = a["placed"] * b["placed"] if diag else np.outer(a["placed"], b["placed"])
        return [hellinger, logp, _double(_distance(a["xyz"], b["xyz"], diag) * both), mask]

    def describe(self) -> dict:
        hellinger, mutant, distance = (float(v) for v in self.site_lengthscale)
        return {"kernel": type(self).__name__, "hellinger_lengthscale": hellinger,
                "mutant_logp_lengthscale": mutant, "distance_lengthscale_angstrom": distance}

    def init_hyperparameters(self, bases):
        self.site_lengthscale = [_median_positive(bases[0]), _median_positive(bases[1]), _median_positive(bases[2])]


class DistanceKernel(BlockKernel):
    """``exp(-D / lengthscale)``, D the distance (A) between the mean CA coordinates of two variants'
    substituted sites, times 0/1: both rows have placed substitutions (``covered`` and a site column non-zero)."""

    has_lengthscale = True
    n_bases, masked = 2, True

    def __init__(self, columns, coordinate_columns, covered_column: int, **kwargs):
        super().__init__(columns, **kwargs)
        self.coordinate_columns = np.asarray(coordinate_columns, dtype=np.int64)
        self.covered_column = int(covered_column)

    def prepare(self, X: np.ndarray) -> Prepared:
        X = np.asarray(X)
        substituted = np.abs(self._take(X, np.float64)).sum(axis=1) > 0
        placed = ((X[:, self.covered_column] > 0.5) & substituted).astype(np.float64)
        return {"xyz": X[:, self.coordinate_columns].astype(np.float64), "placed": placed}

    def bases(self, a: Prepared, b: Prepared, diag: bool = False) -> list[torch.Tensor]:
        both = a["placed"] * b["placed"] if diag else np.outer(a["placed"], b["placed"])
        return [_double(_distance(a["xyz"], b["xyz"], diag)), _double(both)]

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


def structure_block_kernels(block: tuple, dense_kernel) -> list[BlockKernel]:
    """A structure block's own kernel: the dense one on its per-site columns (burial, pLDDT, property changes,
    pairs, covered); its coordinates are read by ``compose``."""
    rest, _, _ = _layout(block)
    return [dense_kernel(rest)]


def compose(blocks, named_kernels: list[tuple[str, BlockKernel]]) -> list[tuple[str, BlockKernel]]:
    """The structure kernel placed among the others (see the module): the first profile block's site kernel
    multiplied by the 3D distance factor, or a ``DistanceKernel`` of its own."""
    structures = [block for block in blocks if is_structure(block)]
    if not structures:
        return named_kernels
    block = structures[0]
    rest, coordinates, covered = _layout(block)
    for k, (name, kernel) in enumerate(named_kernels):
        if type(kernel) is SiteKernel:
            out = list(named_kernels)
            out[k] = (name, StructureSiteKernel(kernel.columns, kernel.mutant_column, coordinates, covered))
            return out
    return named_kernels + [(block[0], DistanceKernel(rest, coordinates, covered))]
