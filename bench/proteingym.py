"""ProteinGym's supervised protocol on any set of ProteinGym-format CSVs: every fold scheme x configuration,
one pooled out-of-fold Spearman per cell (as ProteinGym computes it), printed beside the published numbers.

    python -m bench.proteingym                       # the two assays in $MIMO_PROTEINGYM (or ../shared/...)
    python -m bench.proteingym --assays a.csv,b.csv --configs ridge:onehot-full,auto:onehot-sites+aaprops

A configuration is HEAD:FEATURES (features joined with +; HEAD auto chooses among the features x heads on
each outer fold's inner validation fold). Published numbers come from ProteinGym's per-assay leaderboard files
(anchors/DMS_substitutions_Spearman_DMS_level_fold_<scheme>_5.csv).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

import mimo
from mimo.models.auto import blocks_of
from mimo.models.report import to_markdown

SCHEMES = ("random", "modulo", "contiguous")
DEFAULT_CONFIGS = ("ridge:onehot-full", "ridge:onehot-sites+aaprops", "ge:onehot-sites+aaprops",
                   "mimo-random:onehot-sites+aaprops", "mlp-random-single:onehot-sites+aaprops",
                   "ridge:onehot-sites+aaprops+unirep64-mutpos", "auto:onehot-sites+aaprops+unirep64-mutpos")
PUBLISHED = ("One-Hot Encodings", "Kermut", "ProteinNPT", "TranceptEVE + One-Hot Encodings",
             "MSA Transformer Embeddings")


def default_root() -> Path:
    return Path(os.environ.get("MIMO_PROTEINGYM") or Path(__file__).resolve().parents[1] / "../shared/data/proteingym")


def make_head(head: str, manifest: dict, budget: float):
    """HEAD of a configuration: a head name, or mimo-random (Havasi's routing), or mlp-random-single (an MLP the
    size of one MIMO member: MIMO's single-model baseline), or auto."""
    if head == "auto":
        return mimo.get_head("auto", blocks=blocks_of(manifest), budget=budget)
    if head == "mimo-random":
        return mimo.get_head("mimo", routing="random")
    if head == "mlp-random-single":  # one member of the MIMO above: input 32, shared 128, member 32
        return mimo.get_head("mlp", hidden=(32, 128, 32))
    return mimo.get_head(head)


def published(anchors: Path, dms_id: str) -> dict:
    out = {}
    for scheme in SCHEMES:
        path = anchors / f"DMS_substitutions_Spearman_DMS_level_fold_{scheme}_5.csv"
        if path.exists():
            table = pd.read_csv(path).set_index("DMS_id")
            if dms_id in table.index:
                out[scheme] = table.loc[dms_id]
    return out


def run(args) -> pd.DataFrame:
    root = Path(args.root)
    assays = [Path(a) for a in args.assays.split(",")] if args.assays else sorted(root.glob("*_[0-9][0-9][0-9][0-9].csv"))
    cache = Path(args.cache)
    runs = Path(tempfile.mkdtemp(prefix="mimo-proteingym-"))
    rows = []
    for assay in assays:
        dataset = mimo.load_dataset(assay)
        configs = [c.split(":", 1) for c in args.configs.split(",")]
        for name in sorted({f for _, features in configs for f in features.split("+")}):
            mimo.build_cache(dataset, mimo.get_featurizer(name, dataset, device=args.device), cache, progress=False)
        for head, features in configs:
            row = {"assay": dataset.name, "config": f"{head} on {features}"}
            seconds = []
            for scheme in SCHEMES:
                data = mimo.load_cv_data(cache, dataset.name, features, f"fold_{scheme}_5")
                start = time.perf_counter()
                result = mimo.fit_cv(make_head(head, data.rows.manifest, args.budget), data,
                                     runs / f"{dataset.name}-{head}-{features}-{scheme}")
                seconds.append((time.perf_counter() - start) / (len(result.metrics["per_fold"]) * 2 + 2))
                row[scheme] = result.metrics["test"]["spearman"]
                interval = result.metrics.get("uncertainty", {}).get("interval", {}).get("test")
                if interval:
                    row[f"{scheme} 95% coverage"] = interval["coverage"]
            row["mean"] = sum(row[s] for s in SCHEMES) / len(SCHEMES)
            row["s per fit"] = max(seconds)
            rows.append(row)
            print(to_markdown(pd.DataFrame([row])).splitlines()[-1], flush=True)
        for method, scores in published(root / "anchors", assay.stem).get("random", pd.Series()).items():
            if method in PUBLISHED:
                row = {"assay": dataset.name, "config": f"published: {method}"}
                for scheme in SCHEMES:
                    row[scheme] = float(published(root / "anchors", assay.stem)[scheme][method])
                row["mean"] = sum(row[s] for s in SCHEMES) / len(SCHEMES)
                rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()), help="Folder with ProteinGym CSVs and anchors/.")
    parser.add_argument("--assays", default=None, help="Comma-separated CSVs (default: every assay CSV in --root).")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--budget", type=float, default=60.0, help="fit auto's budget per fold fit (seconds).")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--markdown", default=None, help="Also write the table here.")
    args = parser.parse_args()
    table = run(args)
    text = to_markdown(table)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
