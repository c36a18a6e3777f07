"""Which columns of the structure block help, chosen on inner validation folds of the shared ProteinGym assays.

    python -m bench.structure                       # the three shared assays, three fold schemes (minutes)
    python -m bench.structure --markdown bench/results/cpu-structure-columns.md

Ridge (``mimo fit ridge``'s head) on ``onehot-sites+aaprops+profile-<P>-scalars`` (the profile columns measured best
for ridge, ``bench.profile_features``) plus a subset of the ``structure-<P>`` block's column groups
(``mimo.pipeline.featurizers.structure.COLUMN_GROUPS``): none, all, all but one group, one group alone. For each test
fold k of a scheme the ridge is fitted on the other folds less the inner validation fold k+1 (mod 5), whose
predictions give the validation figure; its alpha is chosen on that fold too (the head's own choice). Each cell
is the pooled inner-validation Spearman and, in brackets, the pooled test Spearman: the subsets are compared on
the validation figures only. ``pairs`` is left out: the shared assays are singles (its columns are all 0).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import mimo
from mimo.models.data import load_features
from mimo.models.metrics import spearman
from mimo.models.report.tables import to_markdown
from mimo.pipeline.featurizers.structure import COLUMN_GROUPS

from bench.proteingym import SCHEMES, default_root

ASSAYS = {"DNJA1_HUMAN_Tsuboyama_2023_2LO1": "DNJA1_HUMAN", "GFP_AEQVI_Sarkisyan_2016": "GFP_AEQVI",
          "A0A1I9GEU1_NEIME_Kennouche_2019": "A0A1I9GEU1_NEIME"}
GROUPS = ("burial", "plddt", "properties", "coordinates")


def subsets() -> dict[str, list[str]]:
    every = [c for g in GROUPS for c in COLUMN_GROUPS[g]] + ["covered"]
    out = {"none": [], "all": every}
    for group in GROUPS:
        out[f"all - {group}"] = [c for c in every if c not in COLUMN_GROUPS[group]]
    for group in GROUPS:
        out[f"{group} only"] = COLUMN_GROUPS[group] + ["covered"]
    return out


def features(root: Path, dms_id: str, protein: str, cache: Path):
    """(dataset, base X, structure X, structure columns)."""
    data = mimo.load_dataset(root / f"{dms_id}.csv", parent=root / f"{dms_id}_wt.fasta")
    specs = ["onehot-sites", "aaprops", f"profile:{root / 'profiles' / f'{protein}.npz'}"]
    parts = []
    for spec in specs:
        options = {"profile_columns": "scalars"} if spec.startswith("profile:") else {}
        featurizer = mimo.get_featurizer(spec, data, **options)
        mimo.build_cache(data, featurizer, cache, progress=False)
        parts.append(featurizer.name)
    structure = mimo.get_featurizer(f"structure:{root / 'structures' / f'{protein}.pdb'}", data)
    mimo.build_cache(data, structure, cache, progress=False)
    base = load_features(cache, data.name, "+".join(parts))
    block = load_features(cache, data.name, structure.name)
    assert np.array_equal(base.ids, block.ids)
    return data, base, block.embeddings, structure.columns


def run(root: Path, schemes: list[str], log=print) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for dms_id, protein in ASSAYS.items():
            data, base, block, columns = features(root, dms_id, protein, Path(tmp))
            order = pd.Series(np.arange(len(data.frame)), index=data.frame["id"].to_numpy())[base.ids].to_numpy()
            for scheme in schemes:
                fold = np.asarray(data.splits[f"fold_{scheme}_5"])[order].astype(int)
                for name, chosen in subsets().items():
                    X = np.hstack([base.embeddings, block[:, [columns.index(c) for c in chosen]]])
                    valid_pred, test_pred = np.zeros(len(X)), np.zeros(len(X))
                    for k in range(5):
                        inner = (k + 1) % 5
                        train = (fold != k) & (fold != inner)
                        model = mimo.get_head("ridge").fit(X[train], base.labels[train], X[fold == inner],
                                                           base.labels[fold == inner])
                        valid_pred[fold == inner] = model.predict(X[fold == inner])
                        test_pred[fold == k] = model.predict(X[fold == k])
                    row = {"assay": dms_id.split("_")[0], "scheme": scheme, "columns": name,
                           "valid": spearman(base.labels, valid_pred), "test": spearman(base.labels, test_pred)}
                    rows.append(row)
                    log(f"{row['assay']} {scheme} {name}: valid {row['valid']:.3f} (test {row['test']:.3f})")
    return pd.DataFrame(rows)


def table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per column subset, a 'valid (test)' cell per assay x scheme, and each subset's mean gain in
    validation Spearman over 'none'."""
    out = []
    for name, group in results.groupby("columns", sort=False):
        row = {"columns": name}
        gains = []
        for _, cell in group.iterrows():
            row[f"{cell['assay']} {cell['scheme']}"] = f"{cell['valid']:.3f} ({cell['test']:.3f})"
            none = results[(results["assay"] == cell["assay"]) & (results["scheme"] == cell["scheme"])
                           & (results["columns"] == "none")]["valid"].iloc[0]
            gains.append(cell["valid"] - none)
        row["mean valid gain over none"] = f"{np.mean(gains):+.3f}"
        out.append(row)
    return pd.DataFrame(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()))
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results = run(Path(args.root), args.schemes.split(","))
    given = argv if argv is not None else sys.argv[1:]
    text = (f"`{' '.join(['python -m bench.structure', *given])}` on {os.cpu_count()} CPUs" +
            f" (load average at the start {load[0]:.1f}, at the end {os.getloadavg()[0]:.1f}): pooled "
            f"inner-validation Spearman (pooled test Spearman)\n\n{to_markdown(table(results))}\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
