"""95% intervals under shift: coverage and mean width on test, per assay x split x interval method.

    nice -n 19 python -m bench.label_shift [--work /tmp/mimo-label-shift] [--gfp-sample 3000]
                                           [--markdown bench/results/cpu-label_shift.md]
                                           [--flag-markdown bench/results/cpu-label_shift-flag.md]
    nice -n 19 python -m bench.label_shift --by-count bench/results/cpu-label_shift-flag-by-count.md

Assays: the three ProteinGym singles files in $MIMO_PROTEINGYM (or ../shared/data/proteingym), each with
onehot-sites+aaprops+its ProteinMPNN profile, and a seeded sample of GFP's TAPE data ($MIMO_DATA; multi-mutants)
with onehot-sites+aaprops. Splits (written as split files under --work, seed 0; valid is drawn like train):
  random     80/10/10
  position   test: variants touching a 1-based position p with p % 5 == 0; train/valid the rest, 90/10
  label      train/valid: the lower half of the labels, 90/10; test: the upper half
Heads, each fitted once per split with `fit_run` (what `mimo fit` runs): mimo --routing random, ridge, gp.
Interval methods (95%, calibrated on valid only; see METHODS): what the runs write, plus split-conformal
variants computed here from the runs' predictions. Coverage is the share of test labels inside [lower, upper].

The flag table (``--flag-markdown``): the check `mimo predict` and `mimo design` run (mimo.models.runs.shift: a
domain classifier of the run's training rows against the rows asked about, here the test rows; a row is
``unlike_training`` when its conformal p-value is below alpha), in the variants FLAGS lists, with the coverage
of three interval methods on flagged and unflagged test rows. ``--by-count``: GFP's measured singles and
doubles outside the TAPE sample predicted by the sample's MIMO runs (``by_count``; needs those runs).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mimo
from mimo.models.runs.evaluate import training_support
from mimo.models.data import feature_blocks
from mimo.models.metrics import interval_metrics, interval_scale, spearman
from mimo.models.report.tables import to_markdown
from mimo.models.runs.shift import check_rows, left_to_support, with_counts

ASSAYS = {"GFP": ("GFP_AEQVI_Sarkisyan_2016", "GFP_AEQVI.npz"),
          "pilin": ("A0A1I9GEU1_NEIME_Kennouche_2019", "A0A1I9GEU1_NEIME.npz"),
          "DNJA1": ("DNJA1_HUMAN_Tsuboyama_2023_2LO1", "DNJA1_HUMAN.npz")}
BASE_FEATURES = "onehot-sites+aaprops"
LEVEL = 0.95
NEIGHBOURS = 10


def default_root() -> Path:
    return Path(os.environ.get("MIMO_PROTEINGYM") or Path(__file__).resolve().parents[1] / "../shared/data/proteingym")


# ------------------------------------------------------------------------------------------- data and splits

def assays(root: Path, gfp_sample: int, only: list[str]) -> list[tuple[str, object, Path | None]]:
    """(label, dataset, profile or None) of every assay the bench runs (``only``: these labels)."""
    out = [(label, mimo.load_dataset(root / f"{stem}.csv"), root / "profiles" / profile)
           for label, (stem, profile) in ASSAYS.items() if not only or label in only]
    if gfp_sample:
        out.append((f"GFP TAPE ({gfp_sample})", mimo.load_dataset(sample=gfp_sample), None))
    return out


def build(dataset, profile: Path | None, cache: Path) -> str:
    """Cache the features; their joined name."""
    names = BASE_FEATURES.split("+") + ([f"profile:{profile}"] if profile else [])
    built = []
    for name in names:
        featurizer = mimo.get_featurizer(name, dataset)
        mimo.build_cache(dataset, featurizer, cache, progress=False)
        built.append(f"profile-{profile.stem}" if name.startswith("profile:") else name)
    return "+".join(built)


def split_shares(n: int, train: float, valid: float, rng) -> np.ndarray:
    order = rng.permutation(n)
    parts = np.full(n, "test", dtype=object)
    parts[order[:round(n * train)]] = "train"
    parts[order[round(n * train):round(n * (train + valid))]] = "valid"
    return parts


def make_splits(labels: np.ndarray, positions: list[set], seed: int = 0) -> dict[str, np.ndarray]:
    """The three splits over rows with these labels and (1-based) mutated positions."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    splits = {"random": split_shares(n, 0.8, 0.1, rng)}
    held = np.array([any(p % 5 == 0 for p in ps) for ps in positions])
    for name, test in (("position", held), ("label", pd.Series(labels).rank(method="first").to_numpy() > n / 2)):
        parts = np.full(n, "test", dtype=object)
        parts[~test] = split_shares(int((~test).sum()), 0.9, 0.1, rng)
        splits[name] = parts
    return splits


def write_split(path: Path, ids: np.ndarray, parts: np.ndarray) -> Path:
    pd.DataFrame({"id": ids, "split": parts}).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------------- heads

@dataclass
class Fitted:
    """What the interval methods read: per row (in the data's order) each head's prediction and spread."""

    data: object
    mimo: pd.DataFrame  # predictions.csv of the MIMO run (prediction, std, lower, upper, no_signal)
    ridge: pd.DataFrame
    gp_mean: np.ndarray | None
    gp_std: np.ndarray | None
    test_probability: np.ndarray  # out-of-fold P(test | features) of every row (``shift_probability``)


def predictions(run, ids) -> pd.DataFrame:
    return pd.read_csv(run.directory / "predictions.csv").set_index("id").loc[ids].reset_index()


def fit_all(data, out: Path) -> Fitted:
    ids = data.rows.ids
    mimo_run = mimo.fit_run(mimo.get_head("mimo", routing="random"), data, out / "mimo", force=True)
    ridge_run = mimo.fit_run(mimo.get_head("ridge"), data, out / "ridge", force=True)
    gp_mean = gp_std = None
    try:
        gp = mimo.get_head("gp", blocks=feature_blocks(data.rows.manifest))
        gp.fit(data.X("train"), data.y("train"))
        gp_mean, gp_std = gp.predict(data.rows.embeddings, return_std=True)
    except Exception as exc:  # another helper may be changing the GP head; the table says it is missing
        print(f"  gp failed: {type(exc).__name__}: {exc}")
    return Fitted(data, predictions(mimo_run, ids), predictions(ridge_run, ids), gp_mean, gp_std,
                  shift_probability(data))


# ------------------------------------------------------------------------------------------- interval methods

def normalised(fitted: Fitted, mean: np.ndarray, difficulty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split-conformal interval mean +/- q * difficulty, q from the valid rows (difficulty 1: constant width)."""
    valid = fitted.data.mask("valid")
    q = interval_scale(fitted.data.rows.labels[valid], mean[valid], difficulty[valid], LEVEL)
    return mean - q * difficulty, mean + q * difficulty


def mondrian(fitted: Fitted, mean: np.ndarray, difficulty: np.ndarray, minimum: int = 30):
    """Normalised conformal per mutation count (counts with fewer than ``minimum`` valid rows, and counts valid
    lacks, share the quantile of the highest count that has enough)."""
    counts, valid = fitted.data.rows.n_mutations, fitted.data.mask("valid")
    labels = fitted.data.rows.labels
    known = [c for c in np.unique(counts[valid]) if (valid & (counts == c)).sum() >= minimum]
    if not known:
        return normalised(fitted, mean, difficulty)
    scales = {c: interval_scale(labels[valid & (counts == c)], mean[valid & (counts == c)],
                                difficulty[valid & (counts == c)], LEVEL) for c in known}
    q = np.array([scales.get(c, scales[max(k for k in known if k <= c)] if min(known) <= c else scales[min(known)])
                  for c in counts])
    return mean - q * difficulty, mean + q * difficulty


def knn_distance(data) -> np.ndarray:
    """Mean distance of each row to its nearest training rows (standardised features; a training row's own
    distance leaves itself out)."""
    X = data.rows.embeddings.astype(np.float64)
    train = data.mask("train")
    centre, scale = X[train].mean(axis=0), X[train].std(axis=0)
    Z = (X - centre) / np.where(scale > 0, scale, 1.0)
    found = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(Z[train]).kneighbors(Z)[0]
    return np.where(train, found[:, 1:].mean(axis=1), found[:, :-1].mean(axis=1))


def widen_unseen_sites(bounds, fitted: Fitted):
    """Rows mutated at a position no training row mutates widened to the training labels' range (the rule runs
    apply to no-signal rows, models/runs/support.py; with aaprops and a profile joined no row is no-signal)."""
    lower, upper = bounds
    train = fitted.data.rows.labels[fitted.data.mask("train")]
    flag = fitted.mimo["unseen_sites"].fillna(0).to_numpy() > 0
    return np.where(flag, np.minimum(lower, train.min()), lower), np.where(flag, np.maximum(upper, train.max()), upper)


def open_above_edge(bounds, fitted: Fitted):
    """An interval that reaches the training labels' max is open above: no training row says how far beyond
    the edge the truth may lie."""
    lower, upper = bounds
    return lower, np.where(upper >= fitted.data.rows.labels[fitted.data.mask("train")].max(), np.inf, upper)


def shift_probability(data) -> np.ndarray:
    """Probability that a row is a test row rather than a train/valid row, from a logistic regression on
    standardised features (5-fold out-of-fold): its odds are the density ratio weighted conformal needs, its
    AUC says how far test rows differ from training rows."""
    X = data.rows.embeddings.astype(np.float64)
    used = data.mask("train") | data.mask("valid") | data.mask("test")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    p = np.full(len(X), 0.5)
    p[used] = cross_val_predict(classifier, X[used], data.mask("test")[used], cv=5, method="predict_proba")[:, 1]
    return np.clip(p, 1e-6, 1 - 1e-6)


def weighted_conformal(fitted: Fitted, mean: np.ndarray, odds: np.ndarray):
    """Split conformal under covariate shift (Tibshirani et al. 2019): each row's quantile of the valid rows'
    |residuals| weighted by their odds of being test rows, the row's own weight on +infinity (an infinite
    bound: the valid rows say nothing about rows like it)."""
    valid = fitted.data.mask("valid")
    residual = np.abs(fitted.data.rows.labels[valid] - mean[valid])
    order = np.argsort(residual)
    residual, weight = residual[order], odds[valid][order]
    total = weight.sum() + odds  # per row: the valid weights and its own
    cumulative = np.cumsum(weight)[None, :] / total[:, None]
    reached = cumulative >= LEVEL
    half = np.where(reached.any(axis=1), residual[np.argmax(reached, axis=1)], np.inf)
    return mean - half, mean + half


def _with_offset(values: np.ndarray) -> np.ndarray:
    return values + np.median(values)


def methods(fitted: Fitted) -> dict:
    """name -> (prediction, lower, upper) over all rows."""
    m, r = fitted.mimo, fitted.ridge
    m_mean, m_std, r_mean = m["prediction"].to_numpy(), m["member_spread"].to_numpy(), r["prediction"].to_numpy()
    ones, distance = np.ones(len(r_mean)), _with_offset(knn_distance(fitted.data))
    odds = fitted.test_probability / (1 - fitted.test_probability)
    out = {
        "mimo (run's interval)": (m_mean, m["lower"].to_numpy(), m["upper"].to_numpy()),
        "mimo, Mondrian by count": (m_mean, *mondrian(fitted, m_mean, _with_offset(m_std))),
        "ridge, conformal": (r_mean, *normalised(fitted, r_mean, ones)),
        "ridge, conformal + unseen sites": (r_mean, *widen_unseen_sites(normalised(fitted, r_mean, ones), fitted)),
        "ridge, conformal, open above edge": (r_mean, *open_above_edge(normalised(fitted, r_mean, ones), fitted)),
        "ridge, weighted conformal": (r_mean, *weighted_conformal(fitted, r_mean, odds)),
        "ridge, conformal / kNN distance": (r_mean, *normalised(fitted, r_mean, distance)),
        "ridge, Mondrian by count": (r_mean, *mondrian(fitted, r_mean, ones)),
    }
    if fitted.gp_mean is not None:
        g, s = fitted.gp_mean, fitted.gp_std
        out["gp, mean +/- 1.96 std"] = (g, g - 1.96 * s, g + 1.96 * s)
        out["gp, conformal / std"] = (g, *normalised(fitted, g, s))
    return out


def oracle_width(y: np.ndarray, mean: np.ndarray, level: float = 0.90) -> float:
    """The narrowest constant-width interval around ``mean`` that covers ``level`` of ``y`` (it reads the test
    labels: what any method of constant width would have needed)."""
    return 2 * float(np.quantile(np.abs(y - mean), level))


def shift_signals(fitted: Fitted) -> dict:
    """What a run could tell the user without test labels: how well features separate test rows from training
    rows (AUC), and how many test predictions reach the top decile of the training labels."""
    data = fitted.data
    test, used = data.mask("test"), data.mask("train") | data.mask("valid") | data.mask("test")
    top = np.quantile(data.rows.labels[data.mask("train")], 0.9)
    return {"shift AUC": float(roc_auc_score(test[used], fitted.test_probability[used])),
            "ridge preds >= train q90": float(np.mean(fitted.ridge["prediction"].to_numpy()[test] >= top))}


def score(fitted: Fitted) -> list[dict]:
    data = fitted.data
    test, train = data.mask("test"), data.mask("train")
    y, span = data.rows.labels, float(np.ptp(data.rows.labels[train]))
    rows = []
    for name, (mean, lower, upper) in methods(fitted).items():
        width = upper[test] - lower[test]
        bounded = np.isfinite(width)
        rows.append({"method": name, "test rho": spearman(y[test], mean[test]),
                     "coverage": interval_metrics(y[test], lower[test], upper[test])["coverage"],
                     "mean width": float(width[bounded].mean()) if bounded.any() else None,
                     "width / train range": float(width[bounded].mean()) / span if bounded.any() else None,
                     "open share": float(1 - bounded.mean()),
                     "0.90 needs width": oracle_width(y[test], mean[test])})
    return rows


# ------------------------------------------------------------------------------------------- the flag

FLAGS = {"C 0.01, alpha 0.01": dict(c=0.01, alpha=0.01), "C 0.1, alpha 0.01": dict(c=0.1, alpha=0.01),
         "C 0.01, alpha 0.05": dict(c=0.01, alpha=0.05), "C 0.01, alpha 0.01, every row": dict(c=0.01, alpha=0.01,
                                                                                              every_row=True)}
FLAG_METHODS = ("mimo (run's interval)", "ridge, conformal", "gp, conformal / std")


def flag_rows(fitted: Fitted) -> list[dict]:
    """Per flag variant: the AUC, the share of test rows flagged (and of those at positions no training row
    mutates), and each method's coverage on flagged and on unflagged test rows."""
    data = fitted.data
    test, train = data.mask("test"), data.mask("train")
    X, y = with_counts(data.rows.embeddings, data.rows.n_mutations), data.rows.labels[test]
    bounds = methods(fitted)
    rows = []
    skip = left_to_support(fitted.mimo)[test]
    for name, setting in FLAGS.items():
        report = check_rows(X[train], X[test], alpha=setting["alpha"], c=setting["c"],
                            skip=None if setting.get("every_row") else skip)
        flag = np.array([bool(v) for v in report.columns()["unlike_training"]])  # None (not checked): False
        row = {"flag": name, "shift AUC (train vs test)": report.auc, "test at unseen sites": float(skip.mean()),
               "test flagged": float(flag.mean()), "warns": report.warns()}
        for method in FLAG_METHODS:
            if method not in bounds:
                continue
            _, lower, upper = bounds[method]
            inside = (lower[test] <= y) & (y <= upper[test])
            row[f"{method}: flagged"] = float(inside[flag].mean()) if flag.any() else None
            row[f"{method}: unflagged"] = float(inside[~flag].mean()) if (~flag).any() else None
        wc = bounds["ridge, weighted conformal"]
        row["weighted conformal opens"] = float(np.mean(~np.isfinite(wc[2][test])))
        rows.append(row)
    return rows


def by_count(work: Path, gfp_sample: int, splits=("random", "label"), counts=(1, 2), most: int = 1500) -> pd.DataFrame:
    """GFP's measured singles and doubles outside the TAPE sample, predicted by the sample's MIMO runs through
    `predict_variants` (what `mimo predict` runs): the share flagged unlike_training and the coverage of the
    run's interval on flagged and unflagged rows (a run on mostly multi-mutants asked about singles)."""
    from mimo.predict import predict_variants

    frame = mimo.load_dataset().frame
    rows = []
    for split in splits:
        run = work / "runs" / f"gfp-sample{gfp_sample}-{split}" / "mimo"
        if not run.is_dir():
            raise SystemExit(f"{run}: no run here; run the bench with this --work first")
        fitted = pd.read_csv(run / "predictions.csv", dtype={"mutations": str}, keep_default_na=False)
        train_max = fitted.loc[fitted["split"] == "train", "y"].max()
        for count in counts:
            pool = frame[(frame["n_mutations"] == count) & ~frame["mutations"].isin(set(fitted["mutations"]))]
            pool = pool.sample(min(most, len(pool)), random_state=0)
            path = work / f"by-count-{count}.csv"
            pool[["mutations"]].rename(columns={"mutations": "mutant"}).to_csv(path, index=False)
            table = predict_variants(run, path)
            y = pool["label"].to_numpy()
            inside = (table["lower"].to_numpy() <= y) & (y <= table["upper"].to_numpy())
            flag = np.array([bool(v) for v in table["unlike_training"]])  # None (not checked): False
            rows.append({"run (TAPE sample)": split, "asked about": f"{count}-mutants outside the sample",
                         "rows": len(pool), "labels above train max": float(np.mean(y > train_max)),
                         "shift AUC": table.attrs["shift"]["auc"], "flagged": float(flag.mean()),
                         "warns": table.attrs["shift"]["warning"] is not None,
                         "coverage, flagged": float(inside[flag].mean()) if flag.any() else None,
                         "coverage, unflagged": float(inside[~flag].mean()) if (~flag).any() else None,
                         "coverage, all": float(inside.mean())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- the table

def positions_of(data) -> list[set]:
    _, sets = training_support(data)
    return [{p + 1 for p, _ in s} if s else set() for s in sets]


def run(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    work = Path(args.work)
    cache = work / "cache"
    records, flags = [], []
    for label, dataset, profile in assays(Path(args.root), args.gfp_sample, args.assays.split(",") if args.assays else []):
        features = build(dataset, profile, cache)
        named = mimo.load_split_data(cache, dataset.name, features)
        y = named.rows.labels
        for split, parts in make_splits(y, positions_of(named)).items():
            path = write_split(work / f"{dataset.name}-{split}.csv", named.rows.ids, parts)
            data = mimo.load_split_data(cache, dataset.name, features, split_file=path)
            train, test = y[data.mask("train")], y[data.mask("test")]
            print(f"{label} / {split}: {data}", flush=True)
            base = {"assay": label, "split": split, "n test": int(data.mask("test").sum()),
                    "train labels": f"{train.min():.2f}..{train.max():.2f}",
                    "test labels": f"{test.min():.2f}..{test.max():.2f}",
                    "test above train max": float(np.mean(test > train.max()))}
            fitted = fit_all(data, work / "runs" / f"{dataset.name}-{split}")
            records += [{**base, **shift_signals(fitted), **row} for row in score(fitted)]
            flags += [{"assay": label, "split": split, "n test": base["n test"], **row} for row in flag_rows(fitted)]
    return pd.DataFrame(records), pd.DataFrame(flags)


def pivot(table: pd.DataFrame) -> pd.DataFrame:
    """One row per assay x split, one column per method: "coverage / mean width" (inf: some bound is open)."""
    cell = table.apply(lambda r: f"{r['coverage']:.2f} / " + (f"{r['mean width']:.2f}" if r["open share"] == 0 else
                       f"{r['mean width']:.2f}, {r['open share']:.0%} open" if pd.notna(r["mean width"]) else
                       "all open"), axis=1)
    keys = ["assay", "split", "n test", "train labels", "test labels", "test above train max", "shift AUC",
            "ridge preds >= train q90"]
    wide = table.assign(cell=cell).pivot(index=keys, columns="method", values="cell")
    wide = wide[list(dict.fromkeys(table["method"]))].reset_index()
    order = {(a, s): i for i, (a, s) in enumerate(dict.fromkeys(zip(table["assay"], table["split"])))}
    wide = wide.iloc[np.argsort([order[k] for k in zip(wide["assay"], wide["split"])])]
    percent = {k: wide[k].map("{:.0%}".format) for k in ("test above train max", "ridge preds >= train q90")}
    return wide.assign(**percent, **{"shift AUC": wide["shift AUC"].round(2)})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(default_root()), help="ProteinGym folder (README there)")
    parser.add_argument("--work", default="/tmp/mimo-label-shift", help="cache, split files and runs")
    parser.add_argument("--gfp-sample", type=int, default=3000, help="rows of GFP's TAPE data (0: none)")
    parser.add_argument("--assays", help="only these ProteinGym assays (GFP, pilin, DNJA1; comma-separated)")
    parser.add_argument("--markdown", help="also write the table here")
    parser.add_argument("--flag-markdown", help="also write the flag table (unlike_training) here")
    parser.add_argument("--by-count", help="only GFP's singles and doubles through the TAPE sample's runs already "
                        "under --work (``by_count``); write that table here")
    args = parser.parse_args(argv)
    mimo.set_threads(None)
    if args.by_count:
        text = to_markdown(by_count(Path(args.work), args.gfp_sample).round(2))
        print(text)
        Path(args.by_count).write_text(text + "\n")
        return
    table, flags = run(args)
    text, flag_text = to_markdown(pivot(table)), to_markdown(flags.round(2))
    print(to_markdown(table.round(3)), text, flag_text, sep="\n\n")
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.flag_markdown:
        Path(args.flag_markdown).write_text(flag_text + "\n")


if __name__ == "__main__":
    main()
