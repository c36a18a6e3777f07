"""How long `mimo fit gp` takes and how much memory it holds, on synthetic assays of 1,000 to 20,000 variants.

    python -m bench.gp_speed                          # 1,000, 5,000, 10,000 and 20,000 training rows
    python -m bench.gp_speed --rows 5000 --repeats 1

The features imitate a real assay's: ``onehot-sites`` over 238 sites, ``aaprops``-sized dense columns (54) and
a 25-column profile block, for single and double substitutions; 500 validation rows are predicted with their
std (as a run does). Figures: seconds of ``fit`` (hyperparameters on ``optimize_rows`` rows, then the posterior
on every row: exact up to ``max_exact_rows``, beyond that through ``inducing_rows``), the peak resident memory
the fit adds to a process holding the data (each size in a process of its own), and one marginal-likelihood
step on 1,000 rows: this head's against gpytorch's own ``ExactMarginalLogLikelihood`` on the same kernels (the
reason ``gp_posterior.GaussianNll`` exists).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

import mimo
from mimo.models.estimators.gp.regressor import GaussianProcessRegressor
from mimo.models.estimators.gp.kernels import PROFILE_COLUMNS
from mimo.pipeline.runtime import threads

SITES, DENSE = 238, 54


def synthetic(n: int, seed: int = 0):
    """(X, y, blocks) of n variants with one or two substitutions."""
    rng = np.random.default_rng(seed)
    onehot = np.zeros((n, SITES * 21), np.float32)
    profile_table = rng.dirichlet(np.full(20, 0.5), size=SITES)
    profile = np.zeros((n, 24), np.float32)
    effect = np.zeros(n)
    for row in range(n):
        for site in rng.choice(SITES, 1 + int(rng.random() < 0.5), replace=False):
            new = rng.integers(20)
            onehot[row, site * 20 + new] = onehot[row, SITES * 20 + site] = 1
            p = profile_table[site]
            profile[row, :4] += [np.log(p[new] / p.max()), -(p * np.log(p)).sum(), np.log(p.max()), np.log(p[new])]
            profile[row, 4:] += p
            effect[row] += np.log(p[new] / p.max()) + np.sin(site / 9)
    dense = (rng.normal(size=(n, DENSE)) + effect[:, None] * 0.1).astype(np.float32)
    X = np.hstack([onehot, dense, profile])
    names = tuple(f"{i}{a}" for i in range(SITES) for a in "ACDEFGHIKLMNPQRSTVWY") + tuple(map(str, range(SITES)))
    profile_names = ("dlogp", "entropy", "wt_logp", "mt_logp") + PROFILE_COLUMNS
    start, stop = onehot.shape[1], onehot.shape[1] + DENSE
    blocks = (("onehot-sites", "onehot", 0, start, names), ("aaprops", "aaprops", start, stop, None),
              ("profile-synthetic", "profile", stop, X.shape[1], profile_names))
    return X, effect + 0.3 * rng.normal(size=n), blocks


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def time_fit(n: int, repeats: int) -> dict:
    """One size, in a process of its own (``--one``): seconds, and memory above what the data already held."""
    X, y, blocks = synthetic(n + 500)
    GaussianProcessRegressor(blocks=blocks, steps=1).fit(X[:50], y[:50])  # imports and first calls
    before = max(resident_mb(), peak_mb())
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = GaussianProcessRegressor(blocks=blocks).fit(X[:n], y[:n], X[n:], y[n:])
        seconds.append(time.perf_counter() - start)
    return {"rows": n, "posterior": model.run_summary()["gp"]["posterior"], "fit_s": min(seconds),
            "valid_spearman": model.valid_["spearman"], "data_mb": before, "fit_mb": peak_mb() - before}


def step_seconds(n: int = 1000, repeats: int = 3) -> dict:
    """One marginal-likelihood step (value and gradient) on n rows: this head's, and gpytorch's on the same
    model (``tests/test_gp.py`` shows both give the same numbers)."""
    import gpytorch

    from mimo.models.estimators.gp.posterior import negative_mll

    X, y, blocks = synthetic(n)
    model = GaussianProcessRegressor(blocks=blocks, steps=0).fit(X, y).model_
    z = torch.as_tensor((y - y.mean()) / y.std())
    rows = model.prepare(X)
    bases = model.bases(rows, rows)

    def ours():
        model.zero_grad()
        negative_mll(model, bases, rows, z).backward()

    class Twin(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(torch.as_tensor(X, dtype=torch.float64), z, model.likelihood)
            self.mean_module, self.covar_module = model.mean_module, gpytorch.kernels.AdditiveKernel(*model.kernels)

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    twin = Twin()
    twin.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, twin)

    def theirs():
        model.zero_grad()
        with gpytorch.settings.max_cholesky_size(10 ** 6):
            (-mll(twin(*twin.train_inputs), z)).backward()

    return {"rows": n, "ours_s": _best(ours, repeats), "gpytorch_s": _best(theirs, repeats)}


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000,5000,10000,20000")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # one size, JSON out
    args = parser.parse_args()
    mimo.set_threads(None)
    threads.adapt()
    if args.one is not None:
        print(json.dumps(time_fit(args.one, args.repeats)))
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}")
    step = step_seconds()
    print(f"one marginal-likelihood step on {step['rows']} rows: this head {step['ours_s']:.3f} s, gpytorch's "
          f"ExactMarginalLogLikelihood {step['gpytorch_s']:.3f} s", flush=True)
    for n in args.rows.split(","):
        out = subprocess.run([sys.executable, "-m", "bench.gp_speed", "--one", n, "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{r['rows']:>6} rows ({r['posterior']}): fit {r['fit_s']:.1f} s (with 500 validation rows' mean and "
              f"std), memory {r['fit_mb']:.0f} MB above the {r['data_mb']:.0f} MB the process held with its data, "
              f"validation Spearman {r['valid_spearman']:.3f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
