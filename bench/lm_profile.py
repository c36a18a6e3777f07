"""UniRep-1900's per-site profile of the parent (``--model profile:unirep1900``) on ProteinGym's shared assays.

    python -m bench.lm_profile                                   # (a) zero-shot and (b) GP, every assay and scheme
    python -m bench.lm_profile --part zero-shot --assays DNJA1

(a) Zero-shot Spearman (`mimo score`, ``zero_shot_scores``) of ``profile:unirep1900`` (its ``dlogp``: the new
residue's log-probability at its site given the residues before it, less the wild type's), beside ProteinMPNN's
profile (``profiles/<protein>.npz``) and ``unirep1900-llr`` (the mean log-likelihood of the whole variant, the
score ProteinGym publishes as UniRep's); ``rho(profile, llr)``: the Spearman between the two UniRep scores over
the assay's variants. ``profile s``: seconds to compute the profile (one UniRep pass over the parent; ``profile``
says whether it was computed or read from the profile store) and featurize every variant; ``llr s``: seconds
of the llr (one pass per variant, or a cache read: ``llr``).

(b) The GP head (`mimo fit gp --cv`'s recipe: ``bench.gp_proteingym.gp_folds``, which that benchmark shows equal
to ``fit_cv``) on ``onehot-sites+aaprops+profile-<ProteinMPNN>`` with and without ``+profile-unirep1900``, ProteinGym's
three fold schemes. ``valid``: the mean over held-out folds k of the Spearman on the inner validation fold k+1,
the figure that may choose between the two (``test``: the pooled out-of-fold Spearman, never used to choose);
``chosen``: per held-out fold, the configuration better on its inner validation fold.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mimo
from mimo.models.metrics import spearman
from mimo.models.report.tables import to_markdown
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.cache.scoring import cached_scores, zero_shot_scores

from bench.gp_proteingym import SCHEMES, choose_per_fold, gp_folds

LM = "profile:unirep1900"
ASSAYS = {"GFP": ("GFP_AEQVI_Sarkisyan_2016", "GFP_AEQVI"),  # short name: (assay, protein of profiles/<protein>.npz)
          "pilin": ("A0A1I9GEU1_NEIME_Kennouche_2019", "A0A1I9GEU1_NEIME"),
          "DNJA1": ("DNJA1_HUMAN_Tsuboyama_2023_2LO1", "DNJA1_HUMAN")}


def load(root: Path, assay: str):
    return mimo.load_dataset(root / f"{assay}.csv", parent=str(root / f"{assay}_wt.fasta"))


def zero_shot(root: Path, cache: Path, short: str) -> dict:
    assay, protein = ASSAYS[short]
    dataset = load(root, assay)
    row = {"assay": short, "variants": len(dataset.frame)}
    start = time.perf_counter()
    featurizer = mimo.get_featurizer(LM, dataset)
    lm = cached_scores(dataset, featurizer, cache)
    row["profile s"] = time.perf_counter() - start
    row["profile"] = "computed" if featurizer.stored.computed else "stored"
    mpnn = zero_shot_scores(dataset, f"profile:{root / 'profiles' / (protein + '.npz')}", cache_root=cache)
    cached = EmbeddingCache(cache, dataset.name, "unirep1900-llr").read_manifest() is not None
    start = time.perf_counter()
    llr = zero_shot_scores(dataset, "unirep1900", "llr", cache_root=cache)
    row["llr s"] = time.perf_counter() - start
    row["llr"] = "cache read" if cached else "computed"
    for name, table in (("profile:unirep1900", lm), ("ProteinMPNN profile", mpnn), ("unirep1900-llr", llr)):
        keep = table["label"].notna() & table.get("covered", True)
        row[name] = spearman(table.loc[keep, "label"].to_numpy(), table.loc[keep, "score"].to_numpy())
    joined = lm.merge(llr, on="id", suffixes=("_profile", "_llr"))
    row["rho(profile, llr)"] = spearman(joined["score_profile"].to_numpy(), joined["score_llr"].to_numpy())
    return row


def gp(root: Path, cache: Path, short: str, schemes: list[str], seed: int) -> list[dict]:
    assay, protein = ASSAYS[short]
    dataset = load(root, assay)
    names = []
    for spec in ("onehot-sites", "aaprops", f"profile:{root / 'profiles' / (protein + '.npz')}", LM):
        featurizer = mimo.get_featurizer(spec, dataset)
        mimo.build_cache(dataset, featurizer, cache, progress=False)
        names.append(featurizer.name)
    configs = {"base": "+".join(names[:3]), "base+profile-unirep1900": "+".join(names)}
    rows = []
    for scheme in schemes:
        results, labels, folds = {}, None, None
        for config, features in configs.items():
            data = mimo.load_cv_data(cache, dataset.name, features, f"fold_{scheme}_5")
            labels, folds = data.rows.labels, np.asarray(data.split, dtype=object)
            start = time.perf_counter()
            results[config] = gp_folds(data, {"seed": seed})
            tested = folds != "none"
            rows.append({"assay": short, "scheme": scheme, "features": features,
                         "test": spearman(labels[tested], results[config]["prediction"][tested]),
                         "valid": float(np.mean(list(results[config]["valid"].values()))),
                         "valid per fold": " ".join(f"{v:.3f}" for v in results[config]["valid"].values()),
                         "cv s": time.perf_counter() - start})
            print(rows[-1], flush=True)
        chosen, picks = choose_per_fold(results, folds)
        tested = folds != "none"
        rows.append({"assay": short, "scheme": scheme, "features": "chosen per fold on its inner validation: "
                     + " ".join("+lm" if p != "base" else "base" for p in picks.values()),
                     "test": spearman(labels[tested], chosen[tested]), "valid": None, "valid per fold": "",
                     "cv s": None})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    from bench.proteingym import default_root

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()), help="The shared ProteinGym folder.")
    parser.add_argument("--cache", default=os.environ.get("MIMO_CACHE", "cache"))
    parser.add_argument("--part", choices=["all", "zero-shot", "gp"], default="all")
    parser.add_argument("--assays", default="GFP,pilin,DNJA1", help="Zero-shot assays.")
    parser.add_argument("--gp-assays", default="DNJA1,GFP")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="Write the tables as markdown here.")
    args = parser.parse_args()
    mimo.set_threads(None)
    root, cache = Path(args.root), Path(args.cache)
    parts = []
    if args.part in ("all", "zero-shot"):
        table = pd.DataFrame([zero_shot(root, cache, a) for a in args.assays.split(",")])
        parts.append("(a) zero-shot Spearman (`mimo score --model ...`), singles files\n\n" + to_markdown(table))
        print(parts[-1], flush=True)
    if args.part in ("all", "gp"):
        rows = [r for a in args.gp_assays.split(",") for r in gp(root, cache, a, args.schemes.split(","), args.seed)]
        parts.append("(b) GP (`mimo fit gp --cv fold_<scheme>_5`'s recipe), pooled test and inner-validation "
                     "Spearman\n\n" + to_markdown(pd.DataFrame(rows)))
    load = os.getloadavg()
    header = (f"`python -m bench.lm_profile --part {args.part} --assays {args.assays} --gp-assays {args.gp_assays} "
              f"--schemes {args.schemes}` on {os.cpu_count()} CPUs (load average at the end {load[0]:.1f}, "
              f"{load[1]:.1f}, {load[2]:.1f})\n\n")
    text = header + "\n\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
