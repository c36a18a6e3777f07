"""Prediction quality: every head on every cached featurizer, on TAPE's split and the balanced split.

    python -m bench.quality [--cache cache] [--heads ridge,mlp,cnn,ge,mimo,...] [--features onehot,...] [--reuse]

Each fit is the plain `mimo fit HEAD` command (its defaults: every choice made on the validation split),
run as its own process; `mimo-random` and `mimo-random-monotone` are `mimo fit mimo` with the options in
VARIANTS. Writes runs/quality/quality.md and quality.csv and prints the table. `--reuse` tabulates run
directories already there instead of fitting them again. "test rho, ties broken" is test Spearman with tied
predictions ordered at random (see `mimo.models.metrics.spearman_ties_broken`).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from mimo.models.metrics import spearman, spearman_ties_broken
from mimo.models.report.tables import to_markdown
from mimo.pipeline.cache.store import list_features

HEADS = ("ridge", "mlp", "cnn", "ge", "mimo", "mimo-random", "mimo-random-monotone")
VARIANTS = {"mimo-random": ["mimo", "--routing", "random"],
            "mimo-random-monotone": ["mimo", "--routing", "random", "--output", "monotone"]}
BUCKETS = ((4, 4), (5, 5), (6, 6), (7, 7), (8, 99))


def row_for(run_dir: Path, features: str, head: str, split: str) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    predictions = pd.read_csv(run_dir / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    row = {"features": features, "head": head, "split": split,
           "valid Spearman": metrics["valid"]["spearman"], "test Spearman": metrics["test"]["spearman"],
           "test rho, ties broken": metrics["test"].get("spearman_ties_broken")
           or spearman_ties_broken(test["y"].to_numpy(), test["prediction"].to_numpy()),
           "test MSE": metrics["test"]["mse"]}
    for lo, hi in BUCKETS:
        part = test[(test["n_mutations"] >= lo) & (test["n_mutations"] <= hi)]
        label = f"{lo}+" if hi == 99 else str(lo)
        row[f"rho {label}"] = spearman(part["y"].to_numpy(), part["prediction"].to_numpy()) if len(part) > 1 else None
    row["fit s"] = metrics["fit_seconds"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--heads", default=",".join(HEADS))
    parser.add_argument("--features", default=None, help="Comma-separated (default: every cached one)")
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--reuse", action="store_true", help="Tabulate runs already in --out; fit only missing ones")
    args = parser.parse_args()
    features = args.features.split(",") if args.features else list_features(args.cache, "gfp")
    if not features:
        sys.exit("nothing cached for gfp: run `mimo embed build --model onehot` first")
    mimo = str(Path(sys.executable).with_name("mimo"))
    out = Path(args.out)
    rows = []
    for feature in features:
        for split in ("tape", "balanced"):
            for head in args.heads.split(","):
                run_dir = out / f"{feature}-{head}-{split}"
                if not (args.reuse and (run_dir / "metrics.json").exists()):
                    subprocess.run([mimo, "fit", *VARIANTS.get(head, [head]), "--cache", args.cache,
                                    "--features", feature, "--split", split, "--out", str(run_dir)],
                                   check=True, capture_output=True)
                rows.append(row_for(run_dir, feature, head, split))
                r = rows[-1]
                print(f"{feature:>24s} {head:5s} {split:8s} test Spearman {r['test Spearman']:.3f} "
                      f"MSE {r['test MSE']:.3f} ({r['fit s']:.1f} s)", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "quality.csv", index=False)
    markdown = to_markdown(table)
    (out / "quality.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
