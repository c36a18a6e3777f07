"""What `mimo embed build` costs around the model: the build loop with a featurizer that answers at once.

    python -m bench.build_overhead [--n 20000] [--dim 1280]

Random rows stand in for embeddings; everything else is the real build (ids, part files, HDF5 shards,
compaction, manifest), so the seconds printed are what the cache adds to any model's time.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.io.datasets import load_gfp


class InstantFeaturizer:
    """Random float32 rows in batches of ``batch``, as fast as numpy makes them."""

    kind = "esm"
    name = "instant"

    def __init__(self, dim: int, batch: int = 136):
        self.dim, self.batch = dim, batch

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": "instant", "layer": None, "pooling": None,
                "dtype": "float32", "dim": self.dim, "columns": None}

    def embed(self, frame):
        rng = np.random.default_rng(0)
        for start in range(0, len(frame), self.batch):
            rows = np.arange(start, min(start + self.batch, len(frame)))
            yield rows, rng.random((len(rows), self.dim), dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    dataset = load_gfp(args.data).sample(args.n, seed=0)
    start = time.perf_counter()
    build_cache(dataset, InstantFeaturizer(args.dim), Path(tempfile.mkdtemp()), progress=False)
    seconds = time.perf_counter() - start
    print(f"build loop alone: {args.n:,} rows of {args.dim} floats in {seconds:.2f} s "
          f"({args.n / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
