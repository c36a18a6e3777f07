"""`mimo fit auto` with the Gaussian-process head among its candidates, beside `mimo fit gp` and `mimo fit ridge`.

    python -m bench.auto_gp                                   # DNJA1, three fold schemes, GP on every subset
    python -m bench.auto_gp --schemes modulo --gp-subsets onehot --budget 60

Features, built into ``--cache``: ``onehot-sites``, ``aaprops`` and ``profile:`` ProteinMPNN's per-site
probabilities (``profiles/<protein>.npz``). For each fold scheme the three commands run in this order, in one
process, on the same features, with their defaults (``--budget`` for auto): ``mimo fit auto --cv
fold_<scheme>_5``, ``mimo fit gp --cv ...``, ``mimo fit ridge --cv ...`` (``fit_cv`` with the heads the CLI
makes). Each gives ONE pooled out-of-fold Spearman, as ProteinGym computes it; ``wall s`` is the whole command
(every fold, and the model saved for `mimo predict`).

Auto chooses on each held-out fold's inner validation fold (the next fold) only. The bench records every
candidate's validation Spearman of each fold (``AutoRegressor.leaderboard_``), which is what decides whether the
GP is worth trying on feature subsets without a one-hot block (``GP_SUBSETS`` in ``mimo.models.estimators.auto``): the
columns ``gp best valid (one-hot)`` and ``gp best valid (no one-hot)`` are the best GP validation Spearman among
subsets with and without a one-hot block, ``gp valid (all blocks)`` the GP's on every block, ``best other
valid`` that of every other head; ``chose`` is the candidate picked (best on validation); ``fit s`` the seconds of
that auto fit (its candidates and the chosen one's fit; the budget is for the candidates). Test folds play no
part in any of these.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import mimo
from mimo.models.estimators import auto as auto_module
from mimo.models.estimators.auto import AutoRegressor, blocks_of, describe
from mimo.models.data import feature_blocks
from mimo.models.report.tables import to_markdown

ASSAYS = {"GFP": ("GFP_AEQVI_Sarkisyan_2016", "GFP_AEQVI"),
          "pilin": ("A0A1I9GEU1_NEIME_Kennouche_2019", "A0A1I9GEU1_NEIME"),
          "DNJA1": ("DNJA1_HUMAN_Tsuboyama_2023_2LO1", "DNJA1_HUMAN")}
SCHEMES = ("random", "modulo", "contiguous")


def default_root() -> Path:
    return Path(os.environ.get("MIMO_PROTEINGYM") or Path(__file__).resolve().parents[1] / "../shared/data/proteingym")


def build(root: Path, cache: Path, assay: str, protein: str) -> tuple[str, str]:
    """The assay's dataset name and its ``onehot-sites+aaprops+profile-<protein>`` features, cached."""
    dataset = mimo.load_dataset(root / f"{assay}.csv", parent=str(root / f"{assay}_wt.fasta"))
    names = []
    for spec in ("onehot-sites", "aaprops", f"profile:{root / 'profiles' / (protein + '.npz')}"):
        featurizer = mimo.get_featurizer(spec, dataset)
        mimo.build_cache(dataset, featurizer, cache, progress=False)
        names.append(featurizer.name)
    return dataset.name, "+".join(names)


def fold_boards(run_auto) -> tuple[object, list[list[dict]]]:
    """``run_auto()``'s result and the leaderboard of every AutoRegressor fit with more than one candidate in it
    (one per held-out fold, then the saved model's)."""
    boards, original = [], AutoRegressor._fit

    def recording(self, data):
        began = time.perf_counter()
        original(self, data)
        if len(self.leaderboard_) > 1:
            boards.append({"seconds": time.perf_counter() - began, "board": self.leaderboard_})
    AutoRegressor._fit = recording
    try:
        return run_auto(), boards
    finally:
        AutoRegressor._fit = original


def fold_rows(short: str, scheme: str, boards: list[list[dict]], kinds: dict) -> list[dict]:
    """Per held-out fold: the best validation Spearman of the GP with and without a one-hot block, of the other
    heads, and the choice."""
    rows = []
    for fold, record in enumerate(boards):
        board = record["board"]
        scored = [e for e in board if e["valid_spearman"] is not None]
        onehot = [e for e in scored if e["head"] == "gp" and any(kinds[f] == "onehot" for f in e["features"])]
        bare = [e for e in scored if e["head"] == "gp" and not any(kinds[f] == "onehot" for f in e["features"])]
        other = [e for e in scored if e["head"] != "gp"]
        best = lambda entries: max((e["valid_spearman"] for e in entries), default=None)  # noqa: E731
        rows.append({"assay": short, "scheme": scheme, "fold": fold if fold < 5 else "saved model",
                     "gp best valid (one-hot)": best(onehot), "gp best valid (no one-hot)": best(bare),
                     "gp valid (all blocks)": best([e for e in onehot + bare if len(e["features"]) == len(kinds)]),
                     "best other valid": best(other), "scored": len(scored),
                     "over budget": sum(e.get("skipped") == "over the budget" for e in board),
                     "gp seconds": round(sum(e["seconds"] or 0 for e in board if e["head"] == "gp"), 1),
                     "fit s": round(record["seconds"], 1),
                     "chose": describe(max(scored, key=lambda e: e["valid_spearman"]))})
    return rows


def write(args, summary: pd.DataFrame, folds: pd.DataFrame, start: tuple) -> str:
    """The tables as markdown (to ``--out`` too), with the command and the machine's load."""
    end = os.getloadavg()
    header = (f"`python -m bench.auto_gp --assays {args.assays} --schemes {args.schemes} --heads {args.heads} "
              f"--gp-subsets {args.gp_subsets} --budget {args.budget:g}` on {os.cpu_count()} CPUs, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} (load average {start[0]:.1f} at the "
              f"start, {end[0]:.1f}, {end[1]:.1f}, {end[2]:.1f} at the end)\n\n")
    text = header + to_markdown(summary) + "\n\nAuto's candidates on each held-out fold's inner validation fold:\n\n"
    text += to_markdown(folds) if len(folds) else "(auto not run)\n"
    if args.out:
        Path(args.out).write_text(text + "\n")
    return text


def run(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    root, cache = Path(args.root), Path(args.cache)
    runs = Path(tempfile.mkdtemp(prefix="mimo-auto-gp-bench-"))
    auto_module.GP_SUBSETS = args.gp_subsets
    summary, folds = [], []
    for short in args.assays.split(","):
        assay, protein = ASSAYS[short]
        dataset, features = build(root, cache, assay, protein)
        for scheme in args.schemes.split(","):
            data = mimo.load_cv_data(cache, dataset, features, f"fold_{scheme}_5")
            kinds = {b[0]: b[1] for b in blocks_of(data.rows.manifest)}
            heads = {"auto": lambda: mimo.get_head("auto", blocks=blocks_of(data.rows.manifest), budget=args.budget,
                                                   seed=args.seed),
                     "gp": lambda: mimo.get_head("gp", blocks=feature_blocks(data.rows.manifest), seed=args.seed),
                     "ridge": lambda: mimo.get_head("ridge")}
            for head in args.heads.split(","):
                began = time.perf_counter()
                fit = lambda: mimo.fit_cv(heads[head](), data, runs / f"{short}-{scheme}-{head}")  # noqa: E731
                result, boards = fold_boards(fit) if head == "auto" else (fit(), [])
                wall = time.perf_counter() - began
                metrics = result.metrics
                chose = [describe(f["chosen"]) for f in metrics["per_fold"] if "chosen" in f]
                summary.append({"assay": short, "scheme": scheme, "command": f"mimo fit {head} --cv",
                                "spearman": metrics["test"]["spearman"],
                                "per fold": " ".join(f"{f['spearman']:.3f}" for f in metrics["per_fold"]),
                                "wall s": round(wall, 1), "load": round(os.getloadavg()[0], 1),
                                "each fold chose": "; ".join(chose)})
                print(summary[-1], flush=True)
                folds += fold_rows(short, scheme, boards, kinds)
                if args.boards and boards:
                    with open(args.boards, "a") as f:
                        for record in boards:
                            f.write(json.dumps({"assay": short, "scheme": scheme, **record}) + "\n")
                for row in folds[len(folds) - len(boards):]:
                    print(row, flush=True)
                write(args, pd.DataFrame(summary), pd.DataFrame(folds), args.started)
    return pd.DataFrame(summary), pd.DataFrame(folds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()), help="The shared ProteinGym folder.")
    parser.add_argument("--cache", default=os.environ.get("MIMO_CACHE", "cache"))
    parser.add_argument("--assays", default="DNJA1")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--heads", default="auto,gp,ridge", help="Of auto, gp, ridge; run in this order.")
    parser.add_argument("--gp-subsets", default=auto_module.GP_SUBSETS, choices=("all", "onehot"),
                        help="Auto's GP candidates: on every feature subset, or on those with a one-hot block.")
    parser.add_argument("--budget", type=float, default=AutoRegressor.param_defaults()["budget"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="Write the tables as markdown here.")
    parser.add_argument("--boards", default=None, help="Append every auto fit's leaderboard here (JSON lines).")
    args = parser.parse_args()
    mimo.set_threads(None)
    args.started = os.getloadavg()
    summary, folds = run(args)
    print(write(args, summary, folds, args.started))


if __name__ == "__main__":
    main()
