"""GFP extrapolation splits: every configuration on splits where test differs from training the way a user's
next experiment does, with MIMO's interval coverage and the automatic choice marked.

    python -m bench.extrapolation [--cache cache] [--markdown docs/extrapolation.md]

Splits (written as split files, seeds fixed; valid is always drawn like train, never like test):
  singles->multiples   train/valid: the 1-mutants (90/10); test: every 2+ mutant
  held-out positions   test: variants touching any position p with p % 5 == 0; train/valid: the rest (90/10)
  1-2 -> 3             train/valid: 1-2 mutants (90/10); test: the 3-mutants
  low-N (480)          train 384, valid 96 drawn from the 1-3 mutants; test: TAPE's test (4-15)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mimo
from mimo.models.estimators.auto import blocks_of
from mimo.models.report.tables import to_markdown

CONFIGS = ("ridge:onehot-sites", "ridge:onehot-sites+aaprops", "ge:onehot-sites+aaprops",
           "mimo:onehot-sites+aaprops", "mimo-random:onehot-sites+aaprops", "mlp-random-single:onehot-sites+aaprops",
           "auto:onehot-sites+aaprops")


def split_files(dataset, directory: Path) -> dict[str, Path]:
    frame = dataset.frame
    rng = np.random.default_rng(0)
    counts = frame["n_mutations"].to_numpy()
    aligned = frame["aligned"].to_numpy()
    parent = dataset.parent
    touched = np.array([any(a != p and i % 5 == 0 for i, (a, p) in enumerate(zip(seq, parent))) for seq in aligned])

    def assign(train_pool, test):
        split = np.full(len(frame), "none", dtype=object)
        pool = np.flatnonzero(train_pool)
        valid = rng.choice(pool, max(1, len(pool) // 10), replace=False)
        split[pool] = "train"
        split[valid] = "valid"
        split[test] = "test"
        return split

    tape = dataset.splits["tape"]
    low = np.full(len(frame), "none", dtype=object)
    pool = rng.choice(np.flatnonzero((counts >= 1) & (counts <= 3)), 480, replace=False)
    low[pool[:384]], low[pool[384:]], low[tape == "test"] = "train", "valid", "test"
    splits = {"singles->multiples": assign(counts == 1, counts >= 2),
              "held-out positions": assign(~touched, touched),
              "1-2 -> 3": assign((counts >= 1) & (counts <= 2), counts == 3),
              "low-N (480)": low}
    paths = {}
    for name, split in splits.items():
        path = directory / (name.replace(" ", "_").replace(">", "").replace("(", "").replace(")", "") + ".csv")
        keep = split != "none"
        pd.DataFrame({"id": frame["id"][keep], "split": split[keep]}).to_csv(path, index=False)
        paths[name] = path
    return paths


def make_head(head: str, manifest: dict, budget: float):
    if head == "auto":
        return mimo.get_head("auto", blocks=blocks_of(manifest), budget=budget)
    if head == "mimo-random":
        return mimo.get_head("mimo", routing="random")
    if head == "mlp-random-single":  # the size of one MIMO member: MIMO's single-model baseline
        return mimo.get_head("mlp", hidden=(32, 128, 32))
    return mimo.get_head(head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()
    dataset = mimo.load_dataset()
    configs = [c.split(":", 1) for c in args.configs.split(",")]
    for name in sorted({f for _, features in configs for f in features.split("+")}):
        mimo.build_cache(dataset, mimo.get_featurizer(name, dataset), args.cache, progress=False)
    work = Path(tempfile.mkdtemp(prefix="mimo-extrapolation-"))
    rows = []
    for split_name, path in split_files(dataset, work).items():
        for head, features in configs:
            data = mimo.load_split_data(args.cache, dataset.name, features, split_file=path)
            start = time.perf_counter()
            run = mimo.fit_run(make_head(head, data.rows.manifest, args.budget), data,
                               work / f"{path.stem}-{head}-{features}")
            m = run.metrics
            row = {"split": split_name, "config": f"{head} on {features}", "valid rho": m["valid"]["spearman"],
                   "test rho": m["test"]["spearman"], "test rho, ties broken": m["test"]["spearman_ties_broken"],
                   "test MSE": m["test"]["mse"], "s": round(time.perf_counter() - start, 1)}
            interval = m.get("uncertainty", {}).get("interval")
            if interval:
                row["95% coverage"] = interval["test"]["coverage"]
                row["mean width"] = interval["test"]["mean_width"]
            if "auto" in m:
                chosen = m["auto"]["chosen"]
                row["config"] = f"**auto** (chose {chosen['head']} on {'+'.join(chosen['features'])})"
            rows.append(row)
            print(to_markdown(pd.DataFrame([row])).splitlines()[-1], flush=True)
    text = to_markdown(pd.DataFrame(rows))
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
