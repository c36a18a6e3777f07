"""How long `mimo fit gp` takes, as a user runs it: whole processes with the default thread policy, process start
included; with --before, the same with a checkout of older code, interleaved (now first).

    python -m bench.gp_speed [--before DIR] [--repeats 1] [--only dnja1-cv dnja1-fit synthetic-cv]
    python -m bench.gp_speed --step [--rows 1000]     # one marginal-likelihood step: this head's and gpytorch's
    python -m bench.gp_speed --small-n                # DNJA1 subsamples of 25/50/100 rows: ridge, GP with/without priors
    python -m bench.gp_speed --intervals              # DNJA1 5-fold intervals: label-scale against normal-score-scale
    python -m bench.gp_speed --threads                # one GP fit on 729 DNJA1 rows, torch x BLAS thread counts
    python -m bench.gp_speed --only dnja1-cv --schemes random5 modulo5 contiguous5 --before DIR  # metrics

Rows of the table (targets of issue 27 on a 2-core CPU, quiet):

- ``dnja1-cv``: `mimo fit gp --features onehot-sites+aaprops+profile-DNJA1_HUMAN --cv random5` (refit) on
  ProteinGym's DNJA1 (1,215 single substitutions, ``$MIMO_PROTEINGYM`` or ../shared/data/proteingym; the features
  built once into --cache): at most 15 s.
- ``dnja1-fit``: one `mimo fit gp` on the same features and the dataset's recorded split: at most 3 s.
- ``synthetic-cv``: `mimo fit gp --cv random5` on ``bench.cv_overhead``'s synthetic singles assay (5,725 rows,
  onehot-sites+aaprops): at most 90 s; and its ``model.npz`` size (target: at most 5 MB).

Columns: wall seconds (min over --repeats), CPU seconds of the process (user + system: what other processes'
load inflates least), the pooled or test Spearman (within 0.005 of the code before), the load average when the
row ended. ``--step``: seconds of one value-and-gradient of the negative marginal likelihood on n synthetic
rows (one-hot, aaprops-sized and profile blocks), this head's (``posterior.negative_mll``) against gpytorch's
``ExactMarginalLogLikelihood`` on the same kernels with their row bases cached as well (the measurement that
keeps the hand-written gradient; ``posterior``'s docstring).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mimo.models.estimators.gp.kernels import PROFILE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
FEATURES = "onehot-sites+aaprops+profile-DNJA1_HUMAN"
DNJA1 = "DNJA1_HUMAN_Tsuboyama_2023_2LO1"
ROWS = ("dnja1-cv", "dnja1-fit", "synthetic-cv")
SITES, DENSE = 238, 54  # --step's synthetic rows: GFP's length, aaprops' width


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




def proteingym_root() -> Path:
    return Path(os.environ.get("MIMO_PROTEINGYM", ROOT.parent / "shared" / "data" / "proteingym"))


def default_env() -> dict:
    """The environment of a user who set no thread count."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MIMO_THREADS", "MKL_NUM_THREADS",
                                                             "OPENBLAS_NUM_THREADS")}


def cli(code: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `mimo ...` process importing the checkout ``code``."""
    from bench.fit_speed import importable

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**default_env(), "PYTHONPATH": f"{importable(code, Path(tmp) / 'path')}{os.pathsep}{ROOT}"}
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", "from mimo.cli import main; main()", *args], cwd=tmp,
                                capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"mimo {' '.join(args[:3])} failed with {code}:\n{result.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build_dnja1(cache: Path) -> None:
    """DNJA1's onehot-sites, aaprops and ProteinMPNN profile features under ``cache`` (once)."""
    if all((cache / "dnja1" / name).exists() for name in FEATURES.split("+")):
        return
    root = proteingym_root()
    if not (root / f"{DNJA1}.csv").exists():
        raise SystemExit(f"{root}: no {DNJA1}.csv (set MIMO_PROTEINGYM)")
    for model in ("onehot-sites", "aaprops", f"profile:{root / 'profiles' / 'DNJA1_HUMAN.npz'}"):
        cli(ROOT, ["embed", "build", "--input", str(root / f"{DNJA1}.csv"), "--parent",
                   str(root / f"{DNJA1}_wt.fasta"), "--name", "dnja1", "--model", model, "--cache", str(cache)])


def command(row: str, cache: Path, out: Path, scheme: str = "random5") -> list[str]:
    if row == "synthetic-cv":
        from bench.cv_overhead import FEATURES as SYNTHETIC, NAME

        return ["fit", "gp", "--cache", str(cache), "--dataset", NAME, "--features", SYNTHETIC, "--cv", "random5",
                "--out", str(out), "--force", "--quiet"]
    extra = ["--cv", scheme] if row == "dnja1-cv" else []
    return ["fit", "gp", "--cache", str(cache), "--dataset", "dnja1", "--features", FEATURES, *extra,
            "--out", str(out), "--force", "--quiet"]


def measure(code: Path, row: str, cache: Path, out: Path, scheme: str = "random5") -> dict:
    wall, cpu = cli(code, command(row, cache, out, scheme))
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": wall, "cpu": cpu, "spearman": metrics["test"]["spearman"],
            "model_mb": (out / "model.npz").stat().st_size / 2 ** 20, "load": os.getloadavg()[0]}


def step_seconds(n: int = 1000, repeats: int = 5) -> dict:
    """One marginal-likelihood value and gradient on n rows: this head's, and gpytorch's ExactGP and
    ExactMarginalLogLikelihood on the same kernels, each kernel reading its rows' bases from a cache as this head
    does (the rows are indices), one thread."""
    import gpytorch
    import torch

    from mimo.models.estimators.gp.posterior import negative_mll
    from mimo.models.estimators.gp.regressor import GaussianProcessRegressor

    torch.set_num_threads(1)
    X, y, blocks = synthetic(n)
    model = GaussianProcessRegressor(blocks=blocks, steps=0, threads=1).fit(X, y).model_
    z = torch.as_tensor((y - y.mean()) / y.std())
    rows = model.prepare(X)
    bases = model.bases(rows, rows)

    class Cached(gpytorch.kernels.Kernel):
        def __init__(self, kernel, cached):
            super().__init__()
            self.kernel, self.cached = kernel, cached

        def forward(self, x1, x2, diag=False, **params):
            i, j = x1[:, 0].long(), x2[:, 0].long()
            return self.kernel.transform([b[i][:, j] for b in self.cached])

    class Twin(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(torch.arange(n, dtype=torch.float64)[:, None], z, model.likelihood)
            self.mean_module = gpytorch.means.ConstantMean().double()
            self.covar_module = gpytorch.kernels.AdditiveKernel(*[
                gpytorch.kernels.ScaleKernel(Cached(k.base_kernel, b)) for k, b in zip(model.kernels, bases)])

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    twin = Twin().double()
    twin.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, twin)

    def ours():
        model.zero_grad()
        negative_mll(model, bases, rows, z).backward()

    def theirs():
        twin.zero_grad()
        with gpytorch.settings.max_cholesky_size(10 ** 6):
            (-mll(twin(*twin.train_inputs), z)).backward()

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # BLAS on one thread too (threads.blas_threads)
        ours(), theirs()  # first calls
        return {"rows": n, "ours_s": _best(ours, repeats), "gpytorch_s": _best(theirs, repeats)}


def thread_counts(cache: Path, repeats: int = 2) -> None:
    """One GP fit (the optimisation and posterior of one fold: 729 DNJA1 rows) with torch's and BLAS's threads
    set to each pair of 1 and 2, CPU and wall seconds, in this process (``threadpoolctl`` for BLAS)."""
    import torch
    from threadpoolctl import threadpool_limits

    from mimo.models.data import load_cv_data
    from mimo.models.estimators.gp.regressor import GaussianProcessRegressor

    data = load_cv_data(cache, "dnja1", FEATURES, "random5")
    train = (data.split != "0") & (data.split != "1")
    X, y = data.rows.embeddings[train], data.rows.labels[train]
    GaussianProcessRegressor(blocks=data.blocks, steps=2, threads=1).fit(X[:100], y[:100])  # first calls
    print("| torch threads | BLAS threads | CPU s | wall s | load |")
    print("| --- | --- | --- | --- | --- |")
    for _ in range(repeats):
        for torch_threads, blas in ((1, 1), (2, 2), (2, 1), (1, 2)):
            torch.set_num_threads(torch_threads)
            with threadpool_limits(limits=blas, user_api="blas"):
                cpu, wall = time.process_time(), time.perf_counter()
                model = GaussianProcessRegressor(blocks=data.blocks)
                model._work_threads = lambda: None  # the counts set here, not the head's one thread
                model.fit(X, y)
                print(f"| {torch_threads} | {blas} | {time.process_time() - cpu:.2f} | "
                      f"{time.perf_counter() - wall:.2f} | {os.getloadavg()[0]:.1f} |", flush=True)


def small_n(cache: Path, sizes=(25, 50, 100), seeds: int = 5) -> None:
    """Each size: ``seeds`` random subsamples of DNJA1 for training, the rest of the assay as test; mean test
    Spearman of ridge and of the GP (marginal likelihood alone, the initial hyperparameters kept, log-normal
    priors of sd 0.5 and 1 in log units: ``prior_sd``), in this process on one thread."""
    import torch

    from mimo.models.data import load_cv_data
    from mimo.models.estimators.gp.regressor import GaussianProcessRegressor
    from mimo.models.estimators.ridge import ValidatedRidge
    from mimo.models.metrics import spearman

    torch.set_num_threads(1)
    data = load_cv_data(cache, "dnja1", FEATURES, "random5")
    X, y = data.rows.embeddings, data.rows.labels
    heads = {"ridge": lambda: ValidatedRidge(),
             "gp, marginal likelihood alone": lambda: GaussianProcessRegressor(blocks=data.blocks, prior_sd=0),
             "gp, initial hyperparameters": lambda: GaussianProcessRegressor(blocks=data.blocks, steps=0),
             "gp, priors sd 0.5": lambda: GaussianProcessRegressor(blocks=data.blocks, prior_sd=0.5),
             "gp, priors sd 1 (default)": lambda: GaussianProcessRegressor(blocks=data.blocks, prior_sd=1.0)}
    print("| training rows | " + " | ".join(heads) + " |")
    print("| --- |" + " --- |" * len(heads))
    for n in sizes:
        scores = {name: [] for name in heads}
        for seed in range(seeds):
            order = np.random.default_rng(seed).permutation(len(y))
            train, test = order[:n], order[n:]
            for name, make in heads.items():
                scores[name].append(spearman(y[test], make().fit(X[train], y[train]).predict(X[test])))
        print(f"| {n} | " + " | ".join(f"{np.mean(v):.3f}" for v in scores.values()) + " |", flush=True)


def intervals(cache: Path, schemes=("random5", "modulo5", "contiguous5")) -> None:
    """95% intervals of the GP under 5-fold cross-validation on DNJA1, as `fit --cv` makes them (each fold's model
    fitted on the other folds but the next, calibrated on that next fold, refitted on both): split-conformal on
    the label scale around the predictive std (before), or on the normal-score scale the GP models and mapped
    back (``predict_latent``, ``to_latent``, ``to_labels``: after). Coverage, mean width (and as a share of the
    assay's label range) and the share of bounds beyond the labels measured."""
    import torch

    from mimo.models.data import load_cv_data
    from mimo.models.estimators.gp.regressor import GaussianProcessRegressor
    from mimo.models.metrics import calibrate_interval, interval_bounds

    torch.set_num_threads(1)
    print("| scheme | intervals | coverage | mean width | width / label range | bounds beyond the measured range |")
    print("| --- | --- | --- | --- | --- | --- |")
    for scheme in schemes:
        data = load_cv_data(cache, "dnja1", FEATURES, scheme)
        X, y, folds = data.rows.embeddings, data.rows.labels, data.split
        ids = sorted(set(folds) - {"none"}, key=int)
        parts = {"label scale": [], "normal-score scale": []}
        for i, fold in enumerate(ids):
            test, valid = folds == fold, folds == ids[(i + 1) % len(ids)]
            train = ~test & ~valid
            chosen = GaussianProcessRegressor(blocks=data.blocks).fit(X[train], y[train])
            final = chosen.clone(**chosen.refit_params()).fit(X[train | valid], y[train | valid])
            mean, std = chosen.predict(X[valid], return_std=True)
            parts["label scale"].append((*interval_bounds(*final.predict(X[test], return_std=True),
                                                          calibrate_interval(y[valid], mean, std)), y[test]))
            latent = calibrate_interval(chosen.to_latent(y[valid]), *chosen.predict_latent(X[valid]))
            lower, upper = interval_bounds(*final.predict_latent(X[test]), latent)
            parts["normal-score scale"].append((final.to_labels(lower), final.to_labels(upper), y[test]))
        span = y.max() - y.min()
        for name, made in parts.items():
            lower, upper, truth = (np.concatenate(p) for p in zip(*made))
            width = np.mean(upper - lower)
            print(f"| {scheme} | {name} | {np.mean((lower <= truth) & (truth <= upper)):.3f} | {width:.2f} | "
                  f"{width / span:.2f} | {np.mean(np.concatenate([lower < y.min(), upper > y.max()])):.3f} |",
                  flush=True)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "mimo-gp-speed-cache"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", default=None, help="A checkout of older code, measured interleaved.")
    parser.add_argument("--only", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--step", action="store_true", help="One marginal-likelihood step instead.")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--schemes", nargs="+", default=["random5"], help="dnja1-cv's fold schemes.")
    parser.add_argument("--threads", action="store_true", help="The thread-count table instead.")
    parser.add_argument("--small-n", action="store_true", help="The few-rows table instead.")
    parser.add_argument("--intervals", action="store_true", help="The intervals table instead.")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, commit "
          f"{subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}",
          flush=True)
    if args.step:
        step = step_seconds(args.rows)
        print(f"one marginal-likelihood step on {step['rows']} rows (one thread): this head {step['ours_s']:.3f} s, "
              f"gpytorch's ExactMarginalLogLikelihood {step['gpytorch_s']:.3f} s "
              f"({step['gpytorch_s'] / step['ours_s']:.1f}x)")
        return
    cache = Path(args.cache)
    if args.small_n or args.intervals or args.threads:
        build_dnja1(cache)
        return small_n(cache) if args.small_n else intervals(cache) if args.intervals else thread_counts(cache)
    if any(row.startswith("dnja1") for row in args.only):
        build_dnja1(cache)
    if "synthetic-cv" in args.only:
        from bench.cv_overhead import build

        build(cache)
    codes = [("now", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    results: dict = {}
    with tempfile.TemporaryDirectory() as work:
        for row in args.only:
            for scheme in (args.schemes if row == "dnja1-cv" else ["random5"]):
                label = f"{row} {scheme}" if row == "dnja1-cv" else row
                for _ in range(args.repeats):
                    for name, code in codes:
                        results.setdefault((label, name), []).append(
                            measure(code, row, cache, Path(work) / f"{row}-{name}", scheme))
    print("| row | code | wall s (min) | CPU s | Spearman | model.npz MB | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (row, name), runs in results.items():
        best = min(runs, key=lambda r: r["wall"])
        print(f"| {row} | {name} | {best['wall']:.1f} | {best['cpu']:.1f} | {best['spearman']:.4f} | "
              f"{best['model_mb']:.1f} | {np.mean([r['load'] for r in runs]):.1f} |")


if __name__ == "__main__":
    main()
