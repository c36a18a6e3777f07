"""How high can test Spearman go on TAPE's fluorescence split? Bounds from the labels, checked against a run.

    python -m bench.ceiling runs/ge-sites [--cache cache] [--data DIR]

Two thirds of TAPE's test variants are dark. This prints, from the run's predictions.csv and the raw data:
  1. the run's test Spearman and how well it separates bright from dark (ROC AUC);
  2. upper bounds: the Spearman of a ranking that is exactly right for every variant above a label threshold
     and in random order below it (the mean of 20 random orders), and the same with the run's own order above;
  3. whether the order among dark variants can be learned at all: ridge fitted on the dark train rows alone
     (features from the run's cache, alpha chosen on the dark valid rows), Spearman within dark valid and test;
  4. where the dark labels come from: how many were measured with one barcode, how many sit at the floor;
  5. a caveat of the metric: tying every prediction below a cut raises Spearman without ranking anything better.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.models.data import load_split_data
from mimo.models.metrics import spearman, spearman_ties_broken, tied_share
from mimo.models.estimators.ridge import ValidatedRidge
from mimo.pipeline.io.fetch import resolve_data_dir
from mimo.pipeline.io.gfp import GFP_GENOTYPES

DARK = 2.2  # the valley between GFP's two modes of log-fluorescence
THRESHOLDS = (1.5, 1.7, 1.8, 2.0, 2.2)


def random_below(y: np.ndarray, above: np.ndarray, order_above: np.ndarray, seeds: int = 20) -> float:
    """Mean Spearman of: ``order_above`` for rows above, then random order below (all ranked under them)."""
    rng = np.random.default_rng(0)
    top = order_above - order_above.min() + 2
    return float(np.mean([spearman(y, np.where(above, top, rng.random(len(y)))) for _ in range(seeds)]))


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC."""
    ranks = pd.Series(score).rank().to_numpy()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    metrics = json.loads((args.run / "metrics.json").read_text())
    predictions = pd.read_csv(args.run / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    y, f = test["y"].to_numpy(), test["prediction"].to_numpy()
    bright = y > DARK
    print(f"run {args.run} ({metrics['model']} on {metrics['features']}, {metrics['split']} split)")
    print(f"1. test Spearman {spearman(y, f):.3f}; {100 * (~bright).mean():.0f}% of test is dark (label <= {DARK}); "
          f"bright vs dark ROC AUC {roc_auc(bright, f):.3f}; Spearman within bright {spearman(y[bright], f[bright]):.3f}, "
          f"within dark {spearman(y[~bright], f[~bright]):.3f}")
    print(f"   {100 * tied_share(f):.1f}% of test predictions tie with another; with ties broken at random the "
          f"test Spearman is {spearman_ties_broken(y, f):.3f}")

    print("2. upper bounds (random order below the threshold)")
    print("   threshold  share above  exact above  this run's order above")
    for t in THRESHOLDS:
        above = y > t
        print(f"   {t:9.1f}  {above.mean():11.3f}  {random_below(y, above, y):11.3f}  {random_below(y, above, f):22.3f}")

    data = load_split_data(args.cache, metrics["dataset"], metrics["features"], metrics["split"])
    dark = {part: data.y(part) <= DARK for part in ("train", "valid", "test")}
    ridge = ValidatedRidge().fit(data.X("train")[dark["train"]], data.y("train")[dark["train"]],
                                 data.X("valid")[dark["valid"]], data.y("valid")[dark["valid"]])
    within = {part: spearman(data.y(part)[dark[part]], ridge.predict(data.X(part)[dark[part]]))
              for part in ("valid", "test")}
    print(f"3. ridge on the {dark['train'].sum():,} dark train rows alone ({metrics['features']}): Spearman within "
          f"dark valid {within['valid']:.3f}, within dark test {within['test']:.3f}")

    raw = pd.read_csv(resolve_data_dir(args.data) / GFP_GENOTYPES, sep="\t")
    raw_dark = raw[raw["medianBrightness"] <= DARK]
    floor = raw["medianBrightness"].round(3).mode()[0]  # log10(20): the detector's floor, the commonest label
    print(f"4. dark genotypes in the raw data: {len(raw_dark):,}; measured with one barcode "
          f"{100 * (raw_dark['uniqueBarcodes'] == 1).mean():.1f}%; at the commonest label ({floor:.3f}) "
          f"{100 * (raw_dark['medianBrightness'].round(3) == floor).mean():.1f}%; "
          f"test labels at the floor {100 * (np.round(y, 3) == floor).mean():.1f}%")

    print("5. caveat: the same predictions, with every prediction below a cut replaced by one tied value")
    for cut in (1.8, 2.2):
        print(f"   below {cut}: {100 * (f < cut).mean():.0f}% tied, Spearman {spearman(y, np.where(f < cut, 0, f)):.3f}")


if __name__ == "__main__":
    main()
