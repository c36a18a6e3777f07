"""What the input checks cost: the field count of every row of a table (``tables.check_fields``) beside pandas'
own parse, and the label-leak scan (``store.label_leaks``) on an ESM-sized cache, interleaved rounds.

    OMP_NUM_THREADS=1 nice python -m bench.input_checks [--rounds 5] [--out bench/results/cpu-input-checks.md]

Reads Sarkisyan's GFP table (54,025 rows, tab-separated) from $MIMO_DATA; the leak scan runs on random float32
rows (21,446 x 1,280: TAPE's train split, ESM-2 650M's width).
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.cache.store import CachedEmbeddings, label_leaks
from mimo.pipeline.errors import read_text
from mimo.pipeline.io.tables import check_fields



def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from mimo.pipeline.io.fetch import resolve_data_dir
    from mimo.pipeline.io.gfp import GFP_GENOTYPES

    path = resolve_data_dir(None, download=False) / GFP_GENOTYPES
    text = read_text(path)
    rng = np.random.default_rng(0)
    n, d = 21446, 1280
    rows = CachedEmbeddings(np.arange(n).astype(str), rng.normal(size=(n, d)).astype(np.float32),
                            rng.normal(size=n), np.ones(n, int), np.array([""] * n, dtype=object),
                            {"features": "esm", "dim": d})
    times = {"pandas parse": [], "field check": [], "label-leak scan": []}
    for _ in range(args.rounds):  # interleaved: the machine's load falls on each alike
        times["pandas parse"].append(timed(lambda: pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)))
        times["field check"].append(timed(lambda: check_fields(text, "\t", path)))
        times["label-leak scan"].append(timed(lambda: label_leaks(rows, np.ones(n, bool))))
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    lines = [f"# Input checks: cost (`python -m bench.input_checks --rounds {args.rounds}`)", "",
             f"commit {commit}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
             f"{load:.1f} at the end; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", "",
             f"Table: {path.name} ({len(text) / 1e6:.1f} MB, {text.count(chr(10)) - 1:,} rows). Leak scan: "
             f"{n:,} x {d:,} float32 rows.", "", "| step | median s | min s |", "|---|---|---|"]
    lines += [f"| {k} | {np.median(v):.3f} | {min(v):.3f} |" for k, v in times.items()]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
