"""Wall time of `mimo fit ridge` and `mimo fit mimo` on the full TAPE data at embedding width 1,280.

    python bench/fit_speed.py [--cache /tmp/mimo-bench-cache] [--repeats 3] [--width 1280]

The features are a random projection of the one-hot encoding plus noise, at esm2_t33_650M's width: random
enough to stand in for embeddings, informative enough that early stopping behaves as on real features.
Each fit runs as its own process, so the figures include process start and cache load.
Targets: mimo <= 5 s, ridge <= 2 s.
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.build import package_versions
from pipeline.cache import EmbeddingCache
from pipeline.datasets import load_gfp
from pipeline.onehot import OneHotFeaturizer


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/tmp/mimo-bench-cache")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    features = random_cache(Path(args.cache), args.width)
    mimo = str(Path(sys.executable).with_name("mimo"))
    print(f"TAPE split, 54,025 rows, projected one-hot features of width {args.width}; {args.repeats} runs each, "
          f"wall time including process start and cache load")
    for head, target in (("ridge", 2.0), ("mimo", 5.0), ("mlp", None)):
        times = []
        for i in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([mimo, "fit", head, "--cache", args.cache, "--features", features,
                            "--out", f"/tmp/mimo-bench-runs/{head}-{i}"], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        verdict = "" if target is None else (f"  target <= {target:.0f} s: "
                                             f"{'met' if statistics.median(times) <= target else 'NOT met'}")
        print(f"mimo fit {head:5s}: median {statistics.median(times):.2f} s  "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}){verdict}")


if __name__ == "__main__":
    main()
