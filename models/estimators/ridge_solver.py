"""Ridge on standardised columns with an unpenalised intercept, solved for any penalty ``alpha`` cheaply.

Two forms, chosen from the columns (``ridge_path``):

- ``SparseRidge`` when most columns are mostly zeros (one-hot): those columns stay a ``scipy.sparse`` matrix
  ``S`` (standardised, not centred: centring would fill it), and the few dense columns ``D`` (centred) join the
  intercept in a small block ``T = [D, 1]``. The normal equations are solved block-wise: the sparse block's
  ``(S'S + alpha I)^-1`` (diagonal for single substitutions, whose columns never share a row; a sparse LU when
  the Gram matrix is sparse; else one eigendecomposition on the smaller side, rows or columns, that serves every
  alpha), then the Schur complement of the ``T`` block, a (dense columns + 1)-square system per alpha.
- ``EigenRidge`` for dense columns (embeddings): one eigendecomposition of the centred Gram matrix on the
  smaller side (primal d x d, or dual n x n for fewer rows than columns), products in float32 blocks summed
  in float64, as before.

Labels are standardised in float64 by the caller; both return weights in those units, on standardised
columns, plus the intercept of the uncentred sparse columns (``b``).

Why not scikit-learn's Ridge: it solves one alpha at a time (no factorisation shared across a grid), and on
sparse input with an intercept it goes iterative (``sparse_cg``/``sag``); RidgeCV serves a grid but chooses by
leave-one-out, not on our validation rows. Measured (``python bench/ridge_vs_sklearn.py``, CPU s for the 15
default alphas, 2-core AMD EPYC VM shared at load 24.7-26.9, bench/results/cpu-ridge-vs-sklearn.md): on dense
columns (random 10,000 x 1,280 float32, an embedding's shape) the eigen form takes 0.91 s, scikit-learn's Ridge
4.37 s (``auto``) and 8.39 s (``cholesky``): 4.8x, kept. On the GFP demo's one-hot block (21,446 x 1,879) the
sparse form takes 1.19 s and scikit-learn's ``sparse_cg`` 0.54 s (tol 1e-4, validation MSE within 2.3e-5) or
0.75 s (tol 1e-8, within 8.3e-8): no gain there, so the sparse form is a candidate to give way to
``Ridge(solver="sparse_cg")`` on scaled CSR columns.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.sparse import linalg as sparse_linalg

SPARSE_COLUMN = 1 / 16  # a column non-zero in at most this share of rows stays sparse
SPARSE_GRAM = 0.05      # the sparse block's Gram matrix is factorised as sparse below this density
MAX_FILL = 0.1          # ... and where its LU factor holds at most this share of a dense one
CHUNK = 4096            # rows per block of the dense Gram matrix's float32 products
LU_OPTIONS = {"diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}  # symmetric positive definite
BLOCK_VALUES = 1 << 22  # values per block of float64 work on the inputs (32 MB): no full-size float64 copy


def row_blocks(X):
    """Consecutive blocks of rows of ``X`` as float64, about ``BLOCK_VALUES`` values each (read only: for a
    float64 ``X`` they are views of it)."""
    step = max(1, BLOCK_VALUES // max(1, X.shape[1]))
    for start in range(0, X.shape[0], step):
        yield start, np.asarray(X[start:start + step], np.float64)


def dot(X, W: np.ndarray) -> np.ndarray:
    """``X @ W`` in float64: a sparse matrix directly, a dense array a block of rows at a time (it may be uint8
    or float32, and large)."""
    if sparse.issparse(X):
        return np.asarray(X @ W)
    out = np.empty((X.shape[0],) + W.shape[1:])
    for start, block in row_blocks(X):
        out[start:start + len(block)] = block @ W
    return out


def mostly_zeros(X: np.ndarray) -> bool:
    return np.count_nonzero(X) <= SPARSE_COLUMN * X.size


def to_csr(X: np.ndarray) -> sparse.csr_matrix:
    """A dense array as CSR in its own dtype, from one pass over its values (row-major non-zeros are already
    in CSR order; scipy's conversion passes twice and sorts)."""
    n, d = X.shape
    flat = np.ascontiguousarray(X).reshape(-1)
    where = np.flatnonzero(flat)
    rows, cols = np.divmod(where, d)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sparse.csr_matrix((flat[where], cols, indptr), shape=(n, d))


@dataclass
class Columns:
    """Which columns stay sparse, and every column's mean and scale (standard deviation, 1 where it is 0 or
    where ``standardize`` is off)."""

    sparse: np.ndarray  # column indices
    dense: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def of_dense(cls, X: np.ndarray, standardize: bool) -> "Columns":
        """Every column dense: means and centred variances in float64, a block of rows at a time."""
        n, d = X.shape
        mean, square = np.zeros(d), np.zeros(d)
        for _, block in row_blocks(X):
            mean += block.sum(axis=0)
        mean /= n
        for _, block in row_blocks(X):  # centred: no cancellation for columns far from zero
            centred = block - mean  # (a float64 input's block is a view of it: never written to)
            square += (centred * centred).sum(axis=0)
        return cls(np.zeros(0, int), np.arange(d), mean, _scale(square / n, standardize))

    @classmethod
    def of_sparse(cls, Xs: sparse.csr_matrix, X: np.ndarray, standardize: bool) -> "Columns":
        """Columns non-zero in at most ``SPARSE_COLUMN`` of the rows stay sparse (moments from their non-zeros);
        the others are read densely."""
        n, d = Xs.shape
        nonzero = np.bincount(Xs.indices, minlength=d)
        values = Xs.data.astype(np.float64)
        mean = np.bincount(Xs.indices, weights=values, minlength=d) / n
        variance = np.bincount(Xs.indices, weights=values * values, minlength=d) / n - mean ** 2
        scale = _scale(np.maximum(variance, 0.0), standardize)
        dense = np.flatnonzero(nonzero > SPARSE_COLUMN * n)
        if len(dense):  # centred moments, in float64
            part = cls.of_dense(X[:, dense], standardize)
            mean[dense], scale[dense] = part.mean, part.scale
        return cls(np.flatnonzero(nonzero <= SPARSE_COLUMN * n), dense, mean, scale)


def _scale(variance: np.ndarray, standardize: bool) -> np.ndarray:
    scale = np.sqrt(variance) if standardize else np.ones(len(variance))
    scale[scale == 0] = 1.0
    return scale


class SparseBlock:
    """``(A'A + alpha I)^-1 R`` for a sparse ``A`` (n x k), for any alpha: diagonal (no two columns share a row),
    a sparse LU per alpha (a sparse Gram matrix whose factor stays sparse), or one eigendecomposition on the
    smaller side (rows or columns) that serves every alpha."""

    def __init__(self, A: sparse.csr_matrix):
        self.A = A
        gram = (A.T @ A).tocsc()
        diagonal = gram.diagonal()
        if gram.nnz == np.count_nonzero(diagonal):
            self.kind, self.diagonal = "diagonal", diagonal
        elif gram.nnz < SPARSE_GRAM * gram.shape[0] ** 2 and self._order(gram):
            self.kind = "sparse LU"
        else:
            self.kind = "eigen"
            side = gram.toarray() if A.shape[1] <= A.shape[0] else (A @ A.T).toarray()
            self.values, self.vectors = np.linalg.eigh(side)

    def _order(self, gram: sparse.csc_matrix) -> bool:
        """One fill-reducing order (minimum degree) for every alpha; False when the factor would hold more than
        ``MAX_FILL`` of a dense one (one eigendecomposition is then cheaper than an LU per alpha)."""
        first = sparse_linalg.splu(gram + sparse.identity(gram.shape[0], format="csc"), **LU_OPTIONS,
                                   permc_spec="MMD_AT_PLUS_A")
        if first.L.nnz + first.U.nnz > MAX_FILL * gram.shape[0] ** 2:
            return False
        self.order = np.argsort(first.perm_c)
        self.gram = gram[self.order][:, self.order].tocsc()
        return True

    def solve(self, alpha: float, R: np.ndarray) -> np.ndarray:
        if self.kind == "diagonal":
            return R / (self.diagonal + alpha)[:, None]
        if self.kind == "sparse LU":
            shifted = (self.gram + alpha * sparse.identity(self.gram.shape[0], format="csc")).tocsc()
            out = np.empty_like(R)
            out[self.order] = sparse_linalg.splu(shifted, **LU_OPTIONS, permc_spec="NATURAL").solve(R[self.order])
            return out
        V, factor = self.vectors, 1.0 / (self.values + alpha)
        if V.shape[0] == R.shape[0]:  # columns' side
            return V @ (factor[:, None] * (V.T @ R))
        # rows' side: (A'A + aI)^-1 = (I - A'(AA' + aI)^-1 A) / a
        inner = V @ (factor[:, None] * (V.T @ np.asarray(self.A @ R)))
        return (R - np.asarray(self.A.T @ inner)) / alpha


class SparseRidge:
    """Sparse columns ``S``, dense columns ``D`` (centred) and the intercept: the normal equations

        [S'S + aI   S'T           ] [w_s]   [S'y]
        [T'S        T'T + a diag(1,..,1,0)] [u  ] = [T'y],   T = [D, 1],  u = (w_d, b)

    solved by eliminating ``w_s`` through ``SparseBlock`` and solving the Schur complement for ``u``."""

    def __init__(self, Xs: sparse.csr_matrix, X: np.ndarray, yz: np.ndarray, columns: Columns):
        sp, de = columns.sparse, columns.dense
        S = (Xs if len(de) == 0 else Xs[:, sp]).astype(np.float64) @ sparse.diags(1.0 / columns.scale[sp])
        D = (np.asarray(X[:, de], np.float64) - columns.mean[de]) / columns.scale[de]
        T = np.hstack([D, np.ones((len(yz), 1))])
        self.block = SparseBlock(sparse.csr_matrix(S))
        self.R = np.asarray(S.T @ np.hstack([T, yz[:, None]]))  # S'T and S'y side by side
        self.TtT, self.Tty = T.T @ T, T.T @ yz
        self.penalised = np.r_[np.ones(len(de)), 0.0]

    @staticmethod
    def design(X: np.ndarray) -> sparse.csr_matrix:
        """``X`` as this form multiplies it (validation rows)."""
        return to_csr(X)

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(sparse columns' weights, dense columns' weights, intercept b), standardised units."""
        q = len(self.penalised)
        FR = self.block.solve(alpha, self.R)
        C = self.TtT + np.diag(alpha * self.penalised) - self.R[:, :q].T @ FR[:, :q]
        u = linalg.solve(C, self.Tty - self.R[:, :q].T @ FR[:, q], assume_a="sym")
        return FR[:, q] - FR[:, :q] @ u, u[:-1], float(u[-1])


class EigenRidge:
    """Dense columns: one eigendecomposition of the centred Gram matrix on the smaller side serves every
    alpha. Products in float32 blocks summed in float64 (the inputs may be large and float32); in the primal
    form the columns' scales come from the Gram matrix's diagonal, so the inputs are read twice, not four times."""

    def __init__(self, X: np.ndarray, yz: np.ndarray, standardize: bool):
        n, d = X.shape
        self.primal = n >= d
        if self.primal:
            mean = X.mean(axis=0, dtype=np.float64)
            gram, xty = np.zeros((d, d)), np.zeros(d)
            for start in range(0, n, CHUNK):
                block = np.asarray(X[start:start + CHUNK], np.float32) - mean.astype(np.float32)
                gram += block.T @ block
                xty += block.T @ yz[start:start + CHUNK].astype(np.float32)
            scale = _scale(np.diag(gram) / n, standardize)
            self.values, self.vectors = np.linalg.eigh(gram / np.outer(scale, scale))
            self.projected = self.vectors.T @ (xty / scale)
        else:
            columns = Columns.of_dense(X, standardize)
            mean, scale = columns.mean, columns.scale
            self.Z = (np.asarray(X, np.float64) - mean) / scale
            self.values, self.vectors = np.linalg.eigh(self.Z @ self.Z.T)
            self.projected = self.vectors.T @ yz
        self.columns = Columns(np.zeros(0, int), np.arange(d), mean, scale)

    @staticmethod
    def design(X: np.ndarray) -> np.ndarray:
        return X

    def solve(self, alpha: float) -> tuple[np.ndarray, np.ndarray, float]:
        inner = self.vectors @ (self.projected / (self.values + alpha))
        weights = inner if self.primal else self.Z.T @ inner
        return np.zeros(0), weights, 0.0


def ridge_path(X: np.ndarray, yz: np.ndarray, standardize: bool) -> tuple["SparseRidge | EigenRidge", Columns]:
    """The sparse form where the matrix is mostly zeros, its sparse columns outnumber the dense ones and the
    dense ones are fewer than the rows; else the eigen form. Returns the form and the columns' statistics."""
    if mostly_zeros(X):
        Xs = to_csr(X)
        columns = Columns.of_sparse(Xs, X, standardize)
        if len(columns.dense) <= len(columns.sparse) and len(columns.dense) < X.shape[0]:
            return SparseRidge(Xs, X, yz, columns), columns
    path = EigenRidge(X, yz, standardize)
    return path, path.columns


def raw_coefficients(path, alpha: float, columns: Columns, y_mean: float, y_scale: float) -> tuple[np.ndarray, float]:
    """Coefficients in raw column units and the intercept, in label units."""
    w_sparse, w_dense, b = path.solve(alpha)
    coef = np.zeros(len(columns.mean))
    if isinstance(path, EigenRidge):  # every column, centred
        coef[:] = w_dense / columns.scale
        return coef * y_scale, float(y_mean - y_scale * (columns.mean @ coef))
    sp, de = columns.sparse, columns.dense
    coef[sp] = w_sparse / columns.scale[sp]
    coef[de] = w_dense / columns.scale[de]
    return coef * y_scale, float(y_mean + y_scale * (b - columns.mean[de] @ coef[de]))
