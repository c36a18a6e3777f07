"""Profiles and external scores on the shared ProteinGym assays: zero-shot Spearman beside ProteinGym's published
figures, and which profile features help a ridge under ProteinGym's three fold schemes.

    python -m bench.profile_features                 # both tables (a few minutes on 2 CPU cores)
    python -m bench.profile_features --zero-shot     # the zero-shot table only

Zero-shot: each assay's singles (and for DNJA1, whose published figures pool singles and doubles, the whole
assay: ESM-IF1's score file's variants and labels, replicate labels averaged, on TranceptEVE's 2,264 variants)
scored by ``mimo score`` with ``profile:`` (ProteinMPNN .npz, ESM-IF1 .npy) and ``scores:`` (TranceptEVE
``avg_score``, ESM-IF1 ``esmif1_ll``). The ProteinMPNN profile is also read with its samples averaged as
log-probabilities (a geometric mean), the reading the featurizer does not use.

Feature sets: ridge on ``onehot-sites+aaprops`` plus a subset of the profile block's columns. Each cell is the
pooled out-of-fold test Spearman (``mimo.fit_cv``, as ``mimo fit ridge --cv`` computes it) and, in brackets,
the pooled inner-validation Spearman (fold k+1 predicted by the ridge fitted for test fold k): the choice of
feature set is made on the validation figures only. (The loop here is ``mimo.fit_cv``'s: the script checks that
both give the same test Spearman on the full profile block.) ``nested`` picks, for each test fold, the subset with the
best Spearman on that fold's inner validation fold, and pools those test predictions.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import mimo
from mimo.models.metrics import spearman
from mimo.models.report.tables import to_markdown
from mimo.pipeline.cache.scoring import zero_shot_scores

from bench.proteingym import SCHEMES, default_root

ASSAYS = {"GFP_AEQVI_Sarkisyan_2016": "GFP_AEQVI", "A0A1I9GEU1_NEIME_Kennouche_2019": "A0A1I9GEU1_NEIME",
          "DNJA1_HUMAN_Tsuboyama_2023_2LO1": "DNJA1_HUMAN"}
SCALARS = ["dlogp", "entropy", "wt_logp", "mt_logp"]
PROBS = [f"p_{a}" for a in "ACDEFGHIKLMNPQRSTVWY"]
SUBSETS = {"none": [], "dlogp": ["dlogp"], "scalars": SCALARS, "p_*": PROBS, "all": SCALARS + PROBS + ["covered"]}


def sources(root: Path, assay: str, scratch: Path) -> dict[str, tuple[str, str]]:
    """Label -> (model spec, published column) of every profile and scores file the shared data has."""
    protein = ASSAYS[assay]
    out = {"ProteinMPNN profile": (f"profile:{root / 'profiles' / f'{protein}.npz'}", "ProteinMPNN")}
    log_mean = scratch / f"{protein}-logmean.npz"
    with np.load(root / "profiles" / f"{protein}.npz") as data:
        np.savez(log_mean, log_p=data["log_p"].mean(axis=0, keepdims=True), S=data["S"])
    out["ProteinMPNN profile, log-probabilities averaged"] = (f"profile:{log_mean}", "ProteinMPNN")
    if (root / "profiles" / f"{protein}_ESM_IF1.npy").exists():
        out["ESM-IF1 profile"] = (f"profile:{root / 'profiles' / f'{protein}_ESM_IF1.npy'}", "ESM-IF1")
    for folder, column, published in (("TranceptEVE", "avg_score", "TranceptEVE L"), ("ESM_IF1", "esmif1_ll", "ESM-IF1")):
        if (root / "zero_shot" / folder / f"{assay}.csv").exists():
            out[f"{folder} scores file"] = (f"scores:{root / 'zero_shot' / folder / f'{assay}.csv'}:{column}", published)
    return out


def whole_assay(root: Path, assay: str, scratch: Path) -> Path | None:
    """ProteinGym's whole assay where it is more than the singles (DNJA1): ESM-IF1's file's variants and labels
    (replicates averaged) on the variants TranceptEVE scored; None where the singles are the whole assay."""
    esm, trancept = (root / "zero_shot" / m / f"{assay}.csv" for m in ("ESM_IF1", "TranceptEVE"))
    if not esm.exists() or not trancept.exists():
        return None
    labels = pd.read_csv(esm).dropna(subset=["mutant"]).groupby("mutant", as_index=False)["DMS_score"].mean()
    variants = pd.read_csv(trancept)[["mutant", "mutated_sequence"]].merge(labels, on="mutant")
    if not variants["mutant"].str.contains(":").any():
        return None
    path = scratch / f"{assay}-whole.csv"
    variants.to_csv(path, index=False)
    return path


def zero_shot(root: Path, cache: Path, scratch: Path) -> pd.DataFrame:
    anchors = pd.read_csv(root / "anchors" / "zero_shot_DMS_substitutions_Spearman_DMS_level.csv").set_index("DMS ID")
    rows = []
    for assay in ASSAYS:
        datasets = [("singles", mimo.load_dataset(root / f"{assay}.csv"))]
        whole = whole_assay(root, assay, scratch)
        if whole is not None:
            datasets.append(("whole assay", mimo.load_dataset(whole, name=f"{assay}-whole")))
        for label, (spec, column) in sources(root, assay, scratch).items():
            for part, dataset in datasets:
                table = zero_shot_scores(dataset, spec, cache_root=cache, allow_missing=part == "whole assay")
                table = table[table["covered"]]
                rows.append({"assay": assay, "variants": f"{part} ({len(table)})", "source": label,
                             "mimo": f"{spearman(table['label'].to_numpy(), table['score'].to_numpy()):.4f}",
                             "published (whole assay)": float(anchors.loc[assay, column]), "column": column})
                print(to_markdown(pd.DataFrame([rows[-1]])).splitlines()[-1], flush=True)
    return pd.DataFrame(rows)


def inner_loop(X: np.ndarray, y: np.ndarray, folds: np.ndarray):
    """Per test fold: (test rows, valid rows, valid predictions, test predictions) of ValidatedRidge chosen on
    the next fold and refitted on both, as ``mimo.fit_cv`` does."""
    ids = sorted(set(folds), key=int)
    for i, fold in enumerate(ids):
        test, valid = folds == fold, folds == ids[(i + 1) % len(ids)]
        train = ~test & ~valid
        chosen = mimo.ValidatedRidge().fit(X[train], y[train], X[valid], y[valid])
        final = mimo.ValidatedRidge(alphas=(chosen.alpha_,)).fit(X[train | valid], y[train | valid], X[valid], y[valid])
        yield test, valid, chosen.predict(X[valid]), final.predict(X[test])


def subset_columns(data, subset: list[str]) -> np.ndarray:
    """Column indices of onehot-sites+aaprops and the profile columns in ``subset``."""
    parts = data.rows.manifest["parts"]
    widths = [p["dim"] for p in parts]
    profile_start = sum(widths[:-1])
    named = parts[-1]["columns"]
    return np.concatenate([np.arange(profile_start), profile_start + np.array([named.index(c) for c in subset], int)])


def feature_sets(root: Path, cache: Path, scratch: Path, profiles: dict[str, str]) -> pd.DataFrame:
    rows = []
    for assay in ASSAYS:
        dataset = mimo.load_dataset(root / f"{assay}.csv")
        for label, spec in profiles.items():
            path = spec.format(root=root, protein=ASSAYS[assay])
            if not Path(path).exists():
                continue
            featurizer = mimo.get_featurizer(f"profile:{path}", dataset)
            for name in ("onehot-sites", "aaprops"):
                mimo.build_cache(dataset, mimo.get_featurizer(name, dataset), cache, progress=False)
            mimo.build_cache(dataset, featurizer, cache, progress=False)
            features = f"onehot-sites+aaprops+{featurizer.name}"
            for scheme in SCHEMES:
                rows.append(_scheme_row(cache, scratch, dataset.name, features, scheme, label))
                print(to_markdown(pd.DataFrame([rows[-1]])).splitlines()[-1], flush=True)
    return pd.DataFrame(rows)


def _scheme_row(cache: Path, scratch: Path, dataset: str, features: str, scheme: str, label: str) -> dict:
    data = mimo.load_cv_data(cache, dataset, features, f"fold_{scheme}_5")
    y, folds = data.rows.labels, np.asarray(data.split, dtype=object)
    row = {"assay": dataset, "profile": label, "scheme": scheme}
    fold_valid, fold_test = {}, {}
    for name, subset in SUBSETS.items():
        X = data.rows.embeddings[:, subset_columns(data, subset)]
        valid_pred, test_pred = np.zeros(len(y)), np.zeros(len(y))
        for k, (test, valid, v, t) in enumerate(inner_loop(X, y, folds)):
            valid_pred[valid], test_pred[test] = v, t
            fold_valid.setdefault(k, {})[name] = spearman(y[valid], v)
            fold_test.setdefault(k, {})[name] = (test, t)
        if name == "all":  # the loop here is fit_cv's (`mimo fit ridge --cv`): checked on one subset
            run = mimo.fit_cv(mimo.get_head("ridge"), data, scratch / f"{dataset}-{scheme}", force=True)
            assert abs(spearman(y, test_pred) - run.metrics["test"]["spearman"]) < 1e-6, "not fit_cv's loop"
        row[name] = f"{spearman(y, test_pred):.3f} ({spearman(y, valid_pred):.3f})"
    nested = np.zeros(len(y))
    for k, scores in fold_valid.items():
        test, t = fold_test[k][max(scores, key=scores.get)]
        nested[test] = t
    row["nested"] = f"{spearman(y, nested):.3f}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()), help="The shared ProteinGym folder.")
    parser.add_argument("--cache", default=None, help="Cache root (default: a temporary folder).")
    parser.add_argument("--zero-shot", action="store_true", help="Only the zero-shot table.")
    parser.add_argument("--markdown", default=None, help="Also write the tables here.")
    parser.add_argument("--prob-floor", type=float, default=None, help="Another floor under the profile's "
                        "probabilities (mimo.pipeline.featurizers.profile.PROB_FLOOR) than the default.")
    args = parser.parse_args()
    if args.prob_floor is not None:
        from mimo.pipeline.featurizers import profile

        profile.PROB_FLOOR = args.prob_floor
    root, scratch = Path(args.root), Path(tempfile.mkdtemp(prefix="mimo-profiles-"))
    cache = Path(args.cache) if args.cache else scratch / "cache"
    tables = [to_markdown(zero_shot(root, cache, scratch))]
    if not args.zero_shot:
        profiles = {"ProteinMPNN": "{root}/profiles/{protein}.npz", "ESM-IF1": "{root}/profiles/{protein}_ESM_IF1.npy"}
        tables.append(to_markdown(feature_sets(root, cache, scratch, profiles)))
    text = "\n\n".join(tables)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
