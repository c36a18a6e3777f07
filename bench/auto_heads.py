"""`fit auto` beside the best single head, on ProteinGym's shared assays, and on a few training rows.

    python -m bench.auto_heads --assays DNJA1 --schemes random,modulo --heads ridge,gp --budget 300
    python -m bench.auto_heads --assays DNJA1 --small 25,50,100 --heads ridge,gp --budget 120

Features, built into ``--cache`` as ``bench.auto_gp.build`` does: ``onehot-sites``, ``aaprops`` and the
ProteinMPNN ``profile``. Cross-validation (``--schemes``): for each fold scheme, ``fit_cv`` of every single head
of ``--heads`` with its defaults on all the features (the GP a kernel per block), then of ``fit auto`` with
``--budget`` seconds for the whole command (``budget_for``: shared among the folds' fits, as `mimo fit auto --cv`
does); ONE pooled out-of-fold Spearman each, as ProteinGym computes it, and auto minus the best single head.
The best single head is chosen here on the very folds it is scored on (an oracle auto cannot be): the gap is
auto's cost of choosing. ``--small``: training sets of n rows drawn at random (seeds 0..``--repeats``-1), the
rest of the assay the test rows; the test Spearman of each head and of auto (its choice by inner
cross-validation on the n rows), the mean over draws. Every row also gives the profile's own zero-shot Spearman
(``dlogp``) on the same test rows (``mimo.models.zero_shot``).
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
from bench.auto_gp import ASSAYS, build, default_root
from mimo.models.estimators.auto import budget_for
from mimo.models.metrics import spearman
from mimo.models.report.tables import to_markdown
from mimo.models.zero_shot import zero_shot_baselines


def head(name: str, data, budget: float, folds: int | None = None):
    if name == "auto":
        return mimo.get_head("auto", blocks=data.blocks, budget=budget_for(budget, folds))
    if name == "gp":
        return mimo.get_head("gp", blocks=data.blocks)
    return mimo.get_head(name)


def cross_validation(args, cache: Path, runs: Path) -> list[dict]:
    rows = []
    for short in args.assays.split(","):
        dataset, features = build(Path(args.root), cache, *ASSAYS[short])
        for scheme in args.schemes.split(",") if args.schemes else ():
            data = mimo.load_cv_data(cache, dataset, features, f"fold_{scheme}_5")
            scores = {}
            for name in args.heads.split(",") + ["auto"]:
                began = time.perf_counter()
                run = mimo.fit_cv(head(name, data, args.budget, 5), data, runs / f"{short}-{scheme}-{name}")
                m = run.metrics
                scores[name] = m["test"]["spearman"]
                zero = (m.get("zero_shot") or {}).get("columns", [{}])[0].get("spearman")
                rows.append({"assay": short, "scheme": scheme, "command": f"fit {name} --cv",
                             "spearman": round(scores[name], 3),
                             "profile dlogp": None if zero is None else round(zero, 3),
                             "each fold chose": ", ".join(f["chosen"]["head"] for f in m["per_fold"] if "chosen" in f),
                             "wall s": round(time.perf_counter() - began, 1), "load": round(os.getloadavg()[0], 1)})
                print(rows[-1], flush=True)
            best = max(args.heads.split(","), key=lambda n: scores[n])
            rows[-1]["auto - best head"] = round(scores["auto"] - scores[best], 3)
            rows[-1]["best head"] = best
    return rows


def small(args, cache: Path) -> list[dict]:
    rows = []
    for short in args.assays.split(","):
        dataset, features = build(Path(args.root), cache, *ASSAYS[short])
        data = mimo.load_cv_data(cache, dataset, features, "fold_random_5")
        X, y = data.rows.embeddings, data.rows.labels
        for n in [int(v) for v in args.small.split(",")]:
            figures = {name: [] for name in args.heads.split(",") + ["auto", "dlogp"]}
            chose = []
            for seed in range(args.repeats):
                order = np.random.default_rng(seed).permutation(len(y))
                train, test = order[:n], order[n:]
                for name in args.heads.split(",") + ["auto"]:
                    model = head(name, data, args.budget).fit(X[train], y[train])
                    figures[name].append(spearman(y[test], model.predict(X[test])))
                    if name == "auto":
                        chose.append(model.chosen_["head"])
                z = zero_shot_baselines(X[test], y[test], y[test], data.blocks)  # (only the columns' figures)
                figures["dlogp"].append(z["columns"][0]["spearman"])
            row = {"assay": short, "train rows": n, "draws": args.repeats}
            row.update({name: round(float(np.nanmean(np.array(v, float))), 3) for name, v in figures.items()})
            row["auto chose"] = ", ".join(chose)
            row["load"] = round(os.getloadavg()[0], 1)
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(default_root()))
    parser.add_argument("--cache", default=os.environ.get("MIMO_CACHE", "cache"))
    parser.add_argument("--assays", default="DNJA1")
    parser.add_argument("--schemes", default="random,modulo,contiguous", help="Fold schemes ('' for none).")
    parser.add_argument("--heads", default="ridge,gp", help="The single heads auto is set beside.")
    parser.add_argument("--budget", type=float, default=120.0, help="fit auto's --budget (seconds a command).")
    parser.add_argument("--small", default="", help="Training-set sizes to draw, e.g. 25,50,100.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    mimo.set_threads(None)
    start, runs = os.getloadavg(), Path(tempfile.mkdtemp(prefix="mimo-auto-heads-"))
    cv = cross_validation(args, Path(args.cache), runs)
    few = small(args, Path(args.cache)) if args.small else []
    end = os.getloadavg()
    text = (f"`python -m bench.auto_heads --assays {args.assays} --schemes '{args.schemes}' --heads {args.heads} "
            f"--budget {args.budget:g} --small '{args.small}' --repeats {args.repeats}` on {os.cpu_count()} CPUs, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {start[0]:.1f} at the "
            f"start, {end[0]:.1f} at the end\n\n")
    if cv:
        text += to_markdown(pd.DataFrame(cv)) + "\n\n"
    if few:
        text += to_markdown(pd.DataFrame(few)) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
