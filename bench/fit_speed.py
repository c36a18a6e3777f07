"""Wall time and test Spearman of every head on the full TAPE data: at embedding width 1,280 and on one-hot.

    python -m bench.fit_speed [--cache /tmp/mimo-bench-cache] [--repeats 1] [--width 1280] [--before /tmp/base]
                              [--only ridge mlp] [--features projected onehot]

`projected`: a random projection of the one-hot encoding plus noise, at esm2_t33_650M's width: random enough to
stand in for embeddings, informative enough that early stopping behaves as on real features (built once into
--cache). `onehot`: the GFP one-hot cache in ./cache (`mimo embed build --model onehot`).
Each fit runs as its own process (process start, cache load, predictions and the run directory included).
`--before DIR`: the same fits with a checkout of the code before (same interpreter), for the speed-up and to
check that test Spearman stays within 0.005. Target: every head <= 5 s on this CPU.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the checkout (for `git worktree` runs of the code before)
from mimo.pipeline.build import package_versions
from mimo.pipeline.cache import EmbeddingCache
from mimo.pipeline.datasets import load_gfp
from mimo.pipeline.featurizers.onehot import OneHotFeaturizer

HEADS = {
    "ridge": "ridge", "mlp": "mlp", "cnn": "cnn", "ge": "ge", "mimo": "mimo",
    "mimo-random": "mimo --routing random", "mimo-monotone": "mimo --output monotone",
    "mimo-random-monotone": "mimo --routing random --output monotone",
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


def fit(code: Path, head: str, cache: str, features: str, out: Path) -> tuple[float, float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", "from mimo.cli import main; main()", "fit", *head.split(),
                             "--cache", cache, "--features", features, "--out", str(out), "--force", "--quiet"],
                            cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"fit {head} failed in {code}:\n{result.stderr[-2000:]}")
    return seconds, json.loads((out / "metrics.json").read_text())["test"]["spearman"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/tmp/mimo-bench-cache")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--before", default=None)
    parser.add_argument("--only", nargs="+", default=None, choices=sorted(HEADS))
    parser.add_argument("--features", nargs="+", default=["projected", "onehot"], choices=["projected", "onehot"])
    args = parser.parse_args()
    codes = [("now", ROOT)] + ([("before", Path(args.before).resolve())] if args.before else [])
    print(f"TAPE split, 54,025 rows; median of {args.repeats}; wall seconds per `mimo fit` (process start "
          f"included); test Spearman")
    header = ["features", "head"] + [f"{name} s" for name, _ in codes] + [f"{name} Spearman" for name, _ in codes]
    if args.before:
        header += ["speed-up"]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.features:
            cache, features = ((args.cache, random_cache(Path(args.cache), args.width)) if which == "projected"
                               else (str(ROOT / "cache"), "onehot"))
            for key in args.only or HEADS:
                seconds, spearman = {}, {}
                for name, code in codes:
                    runs = [fit(code, HEADS[key], cache, features, Path(tmp) / f"{name}-{i}")
                            for i in range(args.repeats)]
                    seconds[name] = statistics.median(s for s, _ in runs)
                    spearman[name] = runs[0][1]
                row = [features, f"`fit {HEADS[key]}`"] + [f"{seconds[n]:.1f}" for n, _ in codes]
                row += [f"{spearman[n]:.4f}" for n, _ in codes]
                if args.before:
                    row += [f"{seconds['before'] / seconds['now']:.1f}x"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
