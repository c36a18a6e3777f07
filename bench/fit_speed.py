"""Fit speed: every head through `mimo fit` on the full TAPE data, ridge alone on ProteinGym-sized synthetic
one-hot data, and what `mimo fit ridge` pays for its imports; each against the code before where given.

    python -m bench.fit_speed [--cache /tmp/mimo-bench-cache] [--repeats 1] [--width 1280] [--before /tmp/base]
                              [--only ridge mlp] [--features projected onehot]
    python -m bench.fit_speed --ridge-synthetic [--repeats 5] [--before /tmp/base] [--threads 1]
    python -m bench.fit_speed --imports [--repeats 7] [--before /tmp/base]
    python -m bench.fit_speed --protocols [--dataset gfp-sample5000] [--only mlp ge] [--onehot-cache DIR]

`projected`: a random projection of the one-hot encoding plus noise, at esm2_t33_650M's width: random enough to
stand in for embeddings, informative enough that early stopping behaves as on real features (built once into
--cache). `onehot`: the GFP one-hot cache in --onehot-cache (default ./cache; `mimo embed build --model onehot`).
Each fit runs as its own process (process start, cache load, predictions and the run directory included).
`--before DIR`: the same work with a checkout of the code before (`git worktree add DIR COMMIT`; same
interpreter), for the speed-up and to check that test Spearman stays within 0.005. Target: every head <= 5 s
on this CPU.

`--ridge-synthetic`: `ValidatedRidge.fit` alone (in a fresh process per code, data made there from a seed) on
6,000 one-hot columns (substitutions) and 54 dense ones (as aaprops), 10% of the rows for validation: 5,000 and
10,000 single substitutions, and 10,000 variants of 1-3 substitutions. Min and median of --repeats fits; with
--before, the largest coefficient difference relative to the largest coefficient, and both alphas. Targets:
<= 1 s at 5,000 rows, <= 3 s at 10,000. `--threads N` sets OMP/OpenBLAS threads of those processes;
`--exact` adds each code's largest coefficient difference from a plain float64 solve at its alpha.
`--imports`: seconds to import what `mimo fit ridge` imports (the CLI, the ridge head, runs, data).

`--protocols`: training-protocol candidates against today's, each head fitted in this process on the one-hot
rows of --dataset (one thread, cpu): today's, today's with seed 1 (the spread a seed alone gives), batch 512 with
lr x1.41, batch 1024 with lr x2 (and so with min_steps 1,000 and 0); test Spearman, epochs, CPU seconds of the fit.

Every process imports the checkout it measures: a folder holding `mimo/` whose `models` and `pipeline` are links
to that checkout's (the editable install would otherwise resolve them to this one).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the checkout (for `git worktree` runs of the code before)
from mimo.pipeline.cache.build import package_versions
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.featurizers.onehot import OneHotFeaturizer

HEADS = {
    "ridge": "ridge", "mlp": "mlp", "cnn": "cnn", "ge": "ge", "mimo": "mimo --routing mutations",
    "mimo-random": "mimo --routing random", "mimo-monotone": "mimo --routing mutations --output monotone",
    "mimo-random-monotone": "mimo --routing random --output monotone",
    "mlp-b1024": "mlp --batch-size 1024 --lr 0.002",
}


def random_cache(root: Path, width: int) -> str:
    features = f"projected-onehot{width}"
    dataset = load_gfp()
    cache = EmbeddingCache(root, dataset.name, features)
    if cache.read_manifest() is None:
        rng = np.random.default_rng(0)
        frame = dataset.frame
        cache.write_dataset(dataset.name, dataset.checksum(), dataset.splits_frame(),
                            {"rows": len(frame), "parent": dataset.parent, "mutation_prefix": "S",
                             "mutation_first_index": 0})
        cache.ensure_manifest({"features": features, "kind": "random", "model": "random", "layer": None,
                               "pooling": None, "dtype": "float32", "dim": width, "columns": None,
                               "dataset_checksum": dataset.checksum(), "versions": package_versions()})
        onehot = OneHotFeaturizer.for_dataset(dataset.parent, frame["aligned"]).encode(frame["aligned"].tolist())
        projection = rng.standard_normal((onehot.shape[1], width), dtype=np.float32) / np.sqrt(8)
        embeddings = onehot.astype(np.float32) @ projection
        embeddings += rng.standard_normal(embeddings.shape, dtype=np.float32)
        cache.write_rows(frame["id"].to_numpy(), embeddings, frame["label"].to_numpy(),
                         frame["n_mutations"].to_numpy(), frame["mutations"].to_numpy())
        cache.compact()
    return features


def importable(code: Path, folder: Path) -> Path:
    """A folder from which ``import mimo`` imports the checkout ``code``: ``mimo/`` with links to its files and
    to its ``models/`` and ``pipeline/`` (installed as mimo.models, mimo.pipeline)."""
    package = folder / "mimo"
    package.mkdir(parents=True)
    for entry in (code / "mimo").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in ("models", "pipeline"):
        (package / name).symlink_to(code / name)
    return folder


def run_python(code: Path, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` importing the checkout ``code`` (and this checkout's bench/), from an empty folder."""
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{importable(code, Path(tmp) / 'path')}{os.pathsep}{ROOT}"
        result = subprocess.run([sys.executable, *args], cwd=tmp, capture_output=True, text=True,
                                env={**os.environ, **(env or {}), "PYTHONPATH": path})
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed with {code}:\n{result.stderr[-2000:]}")
    return result


def fit(code: Path, head: str, cache: str, features: str, out: Path, dataset: str = "gfp"
        ) -> tuple[float, float, float, float]:
    """Wall seconds of the whole `mimo fit` process, the head's own fit seconds (metrics.json), test Spearman,
    and the process's CPU seconds (user + system: what other processes' load inflates least)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run_python(code, ["-c", "from mimo.cli import main; main()", "fit", *head.split(), "--cache", cache,
                      "--dataset", dataset, "--features", features, "--out", str(out), "--force", "--quiet"])
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    metrics = json.loads((out / "metrics.json").read_text())
    return seconds, metrics["fit_seconds"], metrics["test"]["spearman"], cpu


SYNTHETIC = {  # rows, shares of variants with 1, 2, 3 substitutions
    "5,000 singles": (5000, (1.0, 0.0, 0.0)),
    "10,000 singles": (10000, (1.0, 0.0, 0.0)),
    "10,000 variants, 1-3 substitutions": (10000, (0.5, 0.3, 0.2)),
}
ONE_HOT, DENSE = 6000, 54


def synthetic(case: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One-hot substitutions (float32, as a joined cache gives them) beside dense columns; additive labels."""
    n, shares = SYNTHETIC[case]
    rng = np.random.default_rng(seed)
    counts = rng.choice([1, 2, 3], n, p=shares)
    X = np.zeros((n, ONE_HOT + DENSE), np.float32)
    X[np.repeat(np.arange(n), counts), rng.integers(0, ONE_HOT, counts.sum())] = 1
    X[:, ONE_HOT:] = rng.normal(size=(n, DENSE))
    y = X[:, :ONE_HOT] @ rng.normal(size=ONE_HOT) + X[:, ONE_HOT:] @ rng.normal(scale=0.1, size=DENSE)
    return X, y + rng.normal(size=n)


def ridge_child(case: str, repeats: int, out: str) -> None:
    """In the measured process: ``repeats`` fits of the ridge on ``case``; seconds, alpha, coefficients."""
    from mimo.models.estimators.ridge import ValidatedRidge

    X, y = synthetic(case)
    valid = len(y) // 10
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model = ValidatedRidge().fit(X[valid:], y[valid:], X[:valid], y[:valid])
        seconds.append(time.perf_counter() - start)
    np.savez(out, seconds=seconds, alpha=model.alpha_, coef=model.coef_)


def exact_coefficients(case: str, alpha: float) -> np.ndarray:
    """The ridge of ``ridge_child`` at ``alpha`` in plain float64 (dual form on the dense standardised matrix):
    the reference both codes are measured against with --exact."""
    X, y = synthetic(case)
    valid = len(y) // 10
    X, y = X[valid:].astype(np.float64), y[valid:]
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1
    Z = (X - mean) / scale
    dual = np.linalg.solve(Z @ Z.T + alpha * np.eye(len(y)), y - y.mean())
    return (Z.T @ dual) / scale


def ridge_table(codes: list, repeats: int, threads: int | None, repeats_before: int, exact: bool) -> None:
    env = {} if threads is None else {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    names = [name for name, _ in codes]
    print(f"ValidatedRidge.fit, {ONE_HOT:,} one-hot + {DENSE} dense columns, 15 alphas; seconds min / median of "
          f"{repeats} (before: {repeats_before}); threads: {threads or 'default'}")
    header = ["rows"] + [f"{n} s" for n in names] + ([] if len(codes) < 2 else ["speed-up", "alphas", "coef diff"])
    header += [f"{n} vs float64" for n in names] if exact else []
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for case in SYNTHETIC:
            found = {}
            for name, code in codes:
                out = f"{tmp}/{name}.npz"
                times = repeats if name == "now" else repeats_before
                run_python(code, ["-c", f"from bench.fit_speed import ridge_child; ridge_child({case!r}, {times}, "
                                        f"{out!r})"], env)
                found[name] = dict(np.load(out))
            row = [case] + [f"{found[n]['seconds'].min():.2f} / {statistics.median(found[n]['seconds']):.2f}"
                            for n in names]
            if len(codes) > 1:
                now, before = found["now"], found["before"]
                diff = np.abs(now["coef"] - before["coef"]).max() / np.abs(before["coef"]).max()
                row += [f"{statistics.median(before['seconds']) / statistics.median(now['seconds']):.0f}x",
                        f"{float(now['alpha']):g} / {float(before['alpha']):g}", f"{diff:.1e}"]
            if exact:  # each code's coefficients against plain float64 at its own alpha (largest difference
                for n in names:  # relative to the largest coefficient)
                    ref = exact_coefficients(case, float(found[n]["alpha"]))
                    row.append(f"{np.abs(found[n]['coef'] - ref).max() / np.abs(ref).max():.1e}")
            print("| " + " | ".join(row) + " |", flush=True)


IMPORTS = ("import time; start = time.perf_counter(); from mimo.cli import main; "
           "from mimo.models import data; from mimo.models.estimators import registry, ridge; from mimo.models.runs import fit; print(time.perf_counter() - start)")


def import_table(codes: list, repeats: int) -> None:
    print(f"Seconds to import the CLI, the ridge head, runs and data (what `mimo fit ridge` imports), min / median "
          f"of {repeats} fresh processes")
    for name, code in codes:
        seconds = [float(run_python(code, ["-c", IMPORTS]).stdout) for _ in range(repeats)]
        print(f"{name}: {min(seconds):.2f} / {statistics.median(seconds):.2f}")


PROTOCOLS = {"today": {}, "seed1": {"seed": 1}, "b512_lr1.41": {"batch_size": 512, "lr_x": 1.41},
             "b1024_lr2": {"batch_size": 1024, "lr_x": 2.0},
             "b1024_lr2_min1000": {"batch_size": 1024, "lr_x": 2.0, "min_steps": 1000},
             "b1024_lr2_min0": {"batch_size": 1024, "lr_x": 2.0, "min_steps": 0}}
HEAD_PARAMS = {"mlp": ("mlp", {}), "cnn": ("cnn", {}), "ge": ("ge", {}), "mimo": ("mimo", {"routing": "mutations"}),
               "mimo-random": ("mimo", {"routing": "random"}),
               "mimo-monotone": ("mimo", {"routing": "mutations", "output": "monotone"}),
               "mimo-random-monotone": ("mimo", {"routing": "random", "output": "monotone"})}


def protocol_table(cache: str, dataset: str, heads: list[str]) -> None:
    from mimo.models.data import load_split_data
    from mimo.models.metrics import regression_metrics
    from mimo.models.estimators.registry import head_class

    data = load_split_data(cache, dataset, "onehot")
    rows, split = data.rows, np.asarray(data.split)
    train, valid, test = split == "train", split == "valid", split == "test"
    print(f"{dataset}/onehot, {train.sum():,} train, {valid.sum():,} valid, {test.sum():,} test rows; one thread; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| head | protocol | test Spearman | epochs | best epoch | fit CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key in heads:
        name, base = HEAD_PARAMS[key]
        for label, protocol in PROTOCOLS.items():
            params = {"device": "cpu", "threads": 1, **base, **protocol}
            if "lr_x" in params:
                params["lr"] = head_class(name).param_defaults()["lr"] * params.pop("lr_x")
            model = head_class(name)(**params)
            start = time.process_time()
            model.fit(rows.embeddings[train], rows.labels[train], rows.embeddings[valid], rows.labels[valid],
                      counts=rows.n_mutations[train], counts_valid=rows.n_mutations[valid])
            cpu = time.process_time() - start
            rho = regression_metrics(rows.labels[test], model.predict(rows.embeddings[test]))["spearman"]
            result = model.result_
            print(f"| {key} | {label} | {rho:.4f} | {len(result.history)} | {result.best_epoch} | {cpu:.1f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/tmp/mimo-bench-cache")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--before", default=None)
    parser.add_argument("--only", nargs="+", default=None, choices=sorted(HEADS))
    parser.add_argument("--features", nargs="+", default=["projected", "onehot"], choices=["projected", "onehot"])
    parser.add_argument("--onehot-cache", default=str(ROOT / "cache"), help="Cache holding gfp/onehot.")
    parser.add_argument("--dataset", default="gfp", help="With --features onehot: the dataset in --onehot-cache "
                        "(e.g. gfp-sample5000: `mimo embed build --model onehot --sample 5000`).")
    parser.add_argument("--ridge-synthetic", action="store_true")
    parser.add_argument("--imports", action="store_true")
    parser.add_argument("--protocols", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--exact", action="store_true", help="With --ridge-synthetic: compare each code's "
                        "coefficients with plain float64 (a dense dual solve; a minute and a few GB at 10,000 rows).")
    parser.add_argument("--repeats-before", type=int, default=None, help="Repeats of the code before (default: "
                        "--repeats); its ridge takes minutes at these sizes.")
    args = parser.parse_args()
    codes = [("now", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    if args.ridge_synthetic:
        return ridge_table(codes, args.repeats, args.threads, args.repeats_before or args.repeats, args.exact)
    if args.imports:
        return import_table(codes, args.repeats)
    if args.protocols:
        heads = [h for h in args.only or HEAD_PARAMS if h in HEAD_PARAMS]
        return protocol_table(args.onehot_cache, args.dataset, heads)
    print(f"{args.dataset}, its first split; median of {args.repeats}, interleaved; wall seconds per `mimo fit` "
          f"(process start included), the head's fit alone (metrics.json fit_seconds), the process's CPU seconds; "
          f"test Spearman; load average {os.getloadavg()[0]:.1f} at start")
    header = (["features", "head"] + [f"{name} s" for name, _ in codes] + [f"{name} fit s" for name, _ in codes]
              + [f"{name} cpu s" for name, _ in codes] + [f"{name} Spearman" for name, _ in codes])
    if args.before:
        header += ["speed-up"]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.features:
            cache, features = ((args.cache, random_cache(Path(args.cache), args.width)) if which == "projected"
                               else (args.onehot_cache, "onehot"))
            dataset = args.dataset if which == "onehot" else "gfp"
            for key in args.only or HEADS:
                runs = {name: [] for name, _ in codes}
                for i in range(args.repeats):  # interleaved: now, before, now, before, ...
                    for name, code in codes:
                        runs[name].append(fit(code, HEADS[key], cache, features, Path(tmp) / f"{name}-{i}", dataset))
                seconds = {n: statistics.median(r[0] for r in runs[n]) for n in runs}
                fitting = {n: statistics.median(r[1] for r in runs[n]) for n in runs}
                cpu = {n: statistics.median(r[3] for r in runs[n]) for n in runs}
                spearman = {n: runs[n][0][2] for n in runs}
                row = [features, f"`fit {HEADS[key]}`"] + [f"{seconds[n]:.1f}" for n, _ in codes]
                row += [f"{fitting[n]:.1f}" for n, _ in codes]
                row += [f"{cpu[n]:.1f}" for n, _ in codes]
                row += [f"{spearman[n]:.4f}" for n, _ in codes]
                if args.before:
                    row += [f"{seconds['before'] / seconds['now']:.1f}x"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
