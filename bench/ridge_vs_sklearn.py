"""ValidatedRidge (``ridge_solver``: one factorisation shared by the alpha grid) against scikit-learn's ``Ridge``
fitted once per alpha of the same grid, on a cached feature block (the GFP demo's one-hot by default): seconds
for the whole grid, and the largest relative difference of the validation MSEs.

    MIMO_CACHE=cache python bench/ridge_vs_sklearn.py --dataset gfp --features onehot --split tape

scikit-learn gets the same matrix as ridge_solver reads it (CSR where the columns are mostly zeros, with
``standardize=False`` on both sides so no scaling differs) and its own choice of solver (``auto``; on sparse
input with an intercept that is ``sparse_cg``) at its default tolerance (1e-4) and at 1e-8, then ``cholesky`` on a
dense copy where that fits in memory. ``--dense ROWS,COLUMNS`` times a random float32 block instead (an
embedding's shape; every solver is dense there).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import sparse
from sklearn.linear_model import Ridge

from mimo.models.data import load_split_data
from mimo.models.estimators.ridge import DEFAULT_ALPHAS, ValidatedRidge
from mimo.models.estimators.ridge_solver import mostly_zeros, to_csr

DENSE_LIMIT = 2e8  # float64 values of a dense copy (1.6 GB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=os.environ.get("MIMO_CACHE", "cache"))
    parser.add_argument("--dataset", default="gfp")
    parser.add_argument("--features", default="onehot")
    parser.add_argument("--split", default="tape")
    parser.add_argument("--dense", default=None, metavar="ROWS,COLUMNS",
                        help="instead of a cached block: random float32 rows (an embedding's shape), 80/20 split")
    args = parser.parse_args()
    if args.dense:
        rows, columns = map(int, args.dense.split(","))
        rng = np.random.default_rng(0)
        X_all = rng.normal(size=(rows, columns)).astype(np.float32)
        y_all = X_all @ rng.normal(size=columns).astype(np.float32) + rng.normal(size=rows) * columns ** 0.5
        cut = rows * 4 // 5
        X, y, Xv, yv = X_all[:cut], y_all[:cut], X_all[cut:], y_all[cut:]
        data = f"random dense {rows} x {columns}"
    else:
        data = load_split_data(args.cache, args.dataset, args.features, args.split)
        X, y, Xv, yv = data.X("train"), data.y("train"), data.X("valid"), data.y("valid")
    alphas = DEFAULT_ALPHAS
    start = time.process_time()
    ours = ValidatedRidge(alphas=alphas, standardize=False).fit(X, y, Xv, yv)
    ours_s = time.process_time() - start
    print(f"{data!r}; {len(alphas)} alphas; load {os.getloadavg()[0]:.1f}")
    print(f"ValidatedRidge (ridge_solver): {ours_s:.2f} CPU s for the grid and {len(ours.alphas_added_)} alphas "
          f"added past its edge (input checks, CSR conversion and column statistics included)")
    start = time.process_time()
    Xs, Xvs = (to_csr(X), to_csr(Xv)) if mostly_zeros(X) else (X, Xv)
    convert_s = time.process_time() - start
    forms = [("auto", Xs, Xvs, 1e-4), ("auto", Xs, Xvs, 1e-8)]
    if X.size <= DENSE_LIMIT:
        forms.append(("cholesky", np.asarray(X, np.float64), np.asarray(Xv, np.float64), 1e-4))
    for solver, A, Av, tol in forms:
        start = time.process_time()
        mse = {}
        for alpha in alphas:
            model = Ridge(alpha=alpha, solver=solver, tol=tol).fit(A, y)
            mse[alpha] = float(np.mean((model.predict(Av) - yv) ** 2))
        seconds = time.process_time() - start + (convert_s if sparse.issparse(A) else 0.0)
        gap = max(abs(mse[a] - ours.valid_mse_[a]) / ours.valid_mse_[a] for a in alphas)
        kind = f"CSR (conversion {convert_s:.2f} s included)" if sparse.issparse(A) else "dense"
        print(f"sklearn Ridge solver={solver} tol={tol:g} on {kind}: {seconds:.2f} CPU s for the grid "
              f"({seconds / ours_s:.1f}x); validation MSE within {gap:.1e} (relative) of ours")


if __name__ == "__main__":
    main()
