"""The Gaussian-process head on ProteinGym's three shared assays, beside ridge on the same features.

    python -m bench.gp_proteingym                                  # every assay, scheme and configuration
    python -m bench.gp_proteingym --assays DNJA1 --schemes random --configs gp,gp-constant
    python -m bench.gp_proteingym --root DIR --assays P12345_HUMAN_Doe_2024   # any assay of a ProteinGym folder

Assays are found, with their profiles, zero-shot files and published rows, as ``bench.proteingym`` finds them
(``--assays``: GFP, pilin, DNJA1 or DMS ids of ``--root`` or CSV paths; default every assay of ``--root``); a
configuration whose file an assay lacks is left out for that assay.

Features, built into ``--cache``: ``onehot-sites``, ``aaprops`` and ``profile:`` ProteinMPNN's per-site
probabilities (``profiles/<protein>.npz``); configurations ending in ``-zeroshot`` add ``scores:`` the assay's
TranceptEVE zero-shot file (pilin and DNJA1; it becomes the GP's prior mean); ``-if1`` adds ESM-IF1's
per-site probabilities (``profiles/<protein>_ESM_IF1.npy``, pilin and DNJA1) as a second profile; ``-all``
both.

Each GP configuration is fitted with the recipe of `mimo fit gp --cv` (``fit_cv``): for held-out fold k,
hyperparameters by marginal likelihood on the folds other than k and k+1, scored on k+1 (the inner validation
fold), then the posterior on every fold but k with those hyperparameters, predicting k. ``chosen`` takes, for
each k, the configuration with the best Spearman on fold k+1: fold k's labels never enter a choice. The rows
``mimo fit gp --cv`` and ``mimo fit ridge --cv`` are those commands (``fit_cv``, defaults) on the ``gp``
configuration's features; ``gp``'s defaults were chosen on the inner validation folds. One pooled out-of-fold
Spearman per cell, as ProteinGym computes it; published numbers from ProteinGym's leaderboard files.
``s/fit``: mean seconds of one marginal-likelihood fit (a refit with fixed hyperparameters costs a Cholesky
factorisation); ``cv s``: the whole cross-validation as the command reports it (``fit_seconds``).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mimo
from mimo.models.estimators.gp.regressor import GaussianProcessRegressor
from mimo.models.data import feature_blocks
from mimo.models.metrics import spearman
from mimo.models.report.tables import to_markdown

from bench.proteingym import Assay, block_specs, default_root, discover, published

ASSAYS = {"GFP": "GFP_AEQVI_Sarkisyan_2016", "pilin": "A0A1I9GEU1_NEIME_Kennouche_2019",
          "DNJA1": "DNJA1_HUMAN_Tsuboyama_2023_2LO1"}  # short names of the shared assays
SCHEMES = ("random", "modulo", "contiguous")
CONFIGS = {  # name: (feature families, GP parameters); the first is `mimo fit gp`'s defaults
    "gp": (("onehot-sites", "aaprops", "profile"), {}),
    "gp-raw": (("onehot-sites", "aaprops", "profile"), {"target": "raw"}),
    "gp-constant": (("onehot-sites", "aaprops", "profile"), {"mean": "constant"}),
    "gp-nopositions": (("onehot-sites", "aaprops", "profile"), {"positions": False}),
    "gp-linear": (("onehot-sites", "aaprops", "profile"), {"dense": "linear"}),
    "gp-profile": (("profile",), {}),
    "gp-if1": (("onehot-sites", "aaprops", "profile", "profile-if1"), {}),
    "gp-zeroshot": (("onehot-sites", "aaprops", "profile", "scores"), {}),
    "gp-all": (("onehot-sites", "aaprops", "profile", "profile-if1", "scores"), {}),
}
PEERS = ("Kermut", "ProteinNPT", "TranceptEVE + One-Hot Encodings", "One-Hot Encodings")


def featurizer_specs(assay: Assay) -> dict:
    """{family: featurizer spec} of the families the assay has (its files as ``bench.proteingym`` finds them)."""
    specs = {"onehot-sites": "onehot-sites", "aaprops": "aaprops"}
    specs.update({family: spec for family, spec in block_specs(assay).items() if spec is not None})
    return specs


def build(cache: Path, assay: Assay) -> tuple[str, dict]:
    """The assay's dataset name and its cached feature names by family."""
    dataset = mimo.load_dataset(assay.csv, parent=assay.parent)
    names = {}
    for family, spec in featurizer_specs(assay).items():
        featurizer = mimo.get_featurizer(spec, dataset)
        mimo.build_cache(dataset, featurizer, cache, progress=False)
        names[family] = featurizer.name
    return dataset.name, names


def gp_folds(data, params: dict) -> dict:
    """Out-of-fold predictions of one GP configuration with fit_cv's recipe, each fold's inner-validation
    Spearman, and the seconds of each marginal-likelihood fit."""
    folds = np.asarray(data.split, dtype=object)
    ids = sorted({f for f in folds if f != "none"}, key=int)
    X, y = data.rows.embeddings, data.rows.labels
    prediction, valid_rho, seconds = np.full(len(y), np.nan), {}, []
    for i, fold in enumerate(ids):
        test, valid = folds == fold, folds == ids[(i + 1) % len(ids)]
        train = (folds != "none") & ~test & ~valid
        start = time.perf_counter()
        chosen = GaussianProcessRegressor(blocks=feature_blocks(data.rows.manifest), **params).fit(
            X[train], y[train], X[valid], y[valid])
        seconds.append(time.perf_counter() - start)
        final = chosen.clone(**chosen.refit_params()).fit(X[train | valid], y[train | valid])
        prediction[test] = final.predict(X[test])
        valid_rho[fold] = chosen.valid_["spearman"]
    return {"prediction": prediction, "valid": valid_rho, "seconds": float(np.mean(seconds))}


def choose_per_fold(results: dict, folds: np.ndarray) -> tuple[np.ndarray, dict]:
    """For each held-out fold, the prediction of the configuration best on that fold's inner validation."""
    out = np.full(len(folds), np.nan)
    picks = {}
    for fold in sorted({f for f in folds if f != "none"}, key=int):
        best = max(results, key=lambda name: results[name]["valid"][fold])
        picks[fold] = best
        out[folds == fold] = results[best]["prediction"][folds == fold]
    return out, picks


def run(args) -> pd.DataFrame:
    root, cache = Path(args.root), Path(args.cache)
    runs = Path(tempfile.mkdtemp(prefix="mimo-gp-bench-"))
    rows = []
    wanted = ",".join(ASSAYS.get(a, a) for a in args.assays.split(",")) if args.assays else None
    for assay in discover(root, wanted):
        short = next((k for k, v in ASSAYS.items() if v == assay.dms_id), assay.dms_id)
        dataset, names = build(cache, assay)
        anchors = {}
        for row in published(assay):
            anchors.setdefault(row["scheme"], {})[row["config"].removeprefix("published: ")] = row["spearman"]
        for scheme in args.schemes.split(","):
            results, labels, folds = {}, None, None
            for config in args.configs.split(","):
                families, params = CONFIGS[config]
                if not all(f in names for f in families):
                    continue
                data = mimo.load_cv_data(cache, dataset, "+".join(names[f] for f in families), f"fold_{scheme}_5")
                labels, folds = data.rows.labels, np.asarray(data.split, dtype=object)
                results[config] = gp_folds(data, {**params, "seed": args.seed})
                rows.append(_row(short, scheme, config, labels, folds, results[config]))
                print(_line(rows[-1]), flush=True)
            if results:
                chosen, picks = choose_per_fold(results, folds)
                rows.append({"assay": short, "scheme": scheme, "config": "chosen per fold on its inner validation",
                             "spearman": spearman(labels[folds != "none"], chosen[folds != "none"]),
                             "valid": None, "s/fit": None, "cv s": None, "picks": " ".join(picks.values())})
                print(_line(rows[-1]), flush=True)
            if all(f in names for f in CONFIGS["gp"][0]):
                rows += commands(cache, dataset, names, scheme, short, runs, args.seed)
            for peer in PEERS:
                if scheme in anchors and peer in anchors[scheme]:
                    rows.append({"assay": short, "scheme": scheme, "config": f"published: {peer}",
                                 "spearman": float(anchors[scheme][peer]), "valid": None, "s/fit": None,
                                 "cv s": None, "picks": ""})
    return pd.DataFrame(rows)


def commands(cache: Path, dataset: str, names: dict, scheme: str, short: str, runs: Path, seed: int) -> list:
    """`mimo fit gp --cv` and `mimo fit ridge --cv` on the gp configuration's features."""
    rows = []
    features = "+".join(names[f] for f in CONFIGS["gp"][0])
    data = mimo.load_cv_data(cache, dataset, features, f"fold_{scheme}_5")
    for head, params in (("gp", {"blocks": feature_blocks(data.rows.manifest), "seed": seed}), ("ridge", {})):
        run = mimo.fit_cv(mimo.get_head(head, **params), data, runs / f"{short}-{scheme}-{head}")
        rows.append({"assay": short, "scheme": scheme, "config": f"mimo fit {head} --cv on {features}",
                     "spearman": run.metrics["test"]["spearman"], "valid": None, "s/fit": None,
                     "cv s": run.metrics["fit_seconds"], "picks": ""})
        print(_line(rows[-1]), flush=True)
    return rows


def _row(assay: str, scheme: str, config: str, labels, folds, result: dict) -> dict:
    tested = folds != "none"
    return {"assay": assay, "scheme": scheme, "config": config,
            "spearman": spearman(labels[tested], result["prediction"][tested]),
            "valid": float(np.mean(list(result["valid"].values()))), "s/fit": result["seconds"], "cv s": None,
            "picks": ""}


def _line(row: dict) -> str:
    fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
    return (f"{row['assay']:6s} {row['scheme']:10s} {row['config']:45s} test {fmt(row['spearman'])}  "
            f"inner-valid {fmt(row['valid'])}  s/fit {fmt(row['s/fit'])}  cv s {fmt(row['cv s'])} {row['picks']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()), help="A ProteinGym folder (as bench.proteingym's).")
    parser.add_argument("--cache", default=os.environ.get("MIMO_CACHE", "cache"))
    parser.add_argument("--assays", default=None, help="GFP, pilin, DNJA1, DMS ids of --root or CSV paths, "
                        "comma-separated (default: every assay of --root).")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"Of {', '.join(CONFIGS)}.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="Write the table as markdown here.")
    args = parser.parse_args()
    mimo.set_threads(None)
    table = run(args)
    load = os.getloadavg()
    header = (f"`python -m bench.gp_proteingym --assays {args.assays or 'all'} --schemes {args.schemes} --configs "
              f"{args.configs}` on {os.cpu_count()} CPUs (load average at the end {load[0]:.1f}, "
              f"{load[1]:.1f}, {load[2]:.1f})\n\n")
    text = header + to_markdown(table)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
