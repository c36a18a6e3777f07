"""Neural heads on a few hundred to a few thousand variants: the step schedule beside the epoch schedule, and
MIMO's rho, batch repetition and members, chosen on inner cross-validation.

    OMP_NUM_THREADS=1 nice -n 10 python -m bench.small_data [--work /tmp/mimo-small-data] [--sizes 100 300 1000 5000]
        [--assays GFP pilin DNJA1] [--configs "mlp epochs" "mlp steps" ...] [--folds 3]
        [--markdown bench/results/cpu-small_data.md] [--csv /tmp/small_data.csv] [--resume]

Data: seeded samples of GFP's Sarkisyan genotypes (``mimo.load_dataset(sample=N)``, $MIMO_DATA; 1-15 mutations)
of each ``--sizes`` on onehot-sites+aaprops, and the three ProteinGym singles files in $MIMO_PROTEINGYM (or
../shared/data/proteingym) on onehot-sites+aaprops+their ProteinMPNN profile. Each dataset is cut into ``--folds``
seeded random folds (seed 0); every configuration is fitted on all folds but one (``fit(X, y)``: the head carves
its own 10% validation rows for early stopping) and scored on the one left out. A cell is the mean Spearman over
the folds, then the mean R^2; CPU seconds are the mean per fit (this process, one thread). Those folds are the
inner validation the defaults are chosen on; nothing else here is held out.

Configurations (``CONFIGS``): each head with the plain epoch schedule (``min_steps=0``, what every head ran
before) and with the step schedule (the defaults), and MIMO's variants.

``--vs-gp``: MIMO beside the GP on the three ProteinGym assays, as ``mimo fit HEAD --cv fold_SCHEME_5`` runs them
(``fit_cv``: each fold held out in turn, the next fold its inner validation, one pooled Spearman), with the 95%
interval's pooled coverage and mean width; ``--heads`` picks MIMO variants (``VS_GP``) and ``gp``.

    OMP_NUM_THREADS=1 nice -n 10 python -m bench.small_data --vs-gp [--heads mimo gp] [--schemes random modulo
        contiguous] [--markdown bench/results/cpu-mimo-vs-gp.md] [--csv /tmp/mimo_vs_gp.csv] [--resume]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import mimo
from mimo.models.data import load_split_data
from mimo.models.report.tables import to_markdown

ASSAYS = {"GFP": ("GFP_AEQVI_Sarkisyan_2016", "GFP_AEQVI.npz"),
          "pilin": ("A0A1I9GEU1_NEIME_Kennouche_2019", "A0A1I9GEU1_NEIME.npz"),
          "DNJA1": ("DNJA1_HUMAN_Tsuboyama_2023_2LO1", "DNJA1_HUMAN.npz")}
BASE_FEATURES = "onehot-sites+aaprops"
RAW = {"target": "raw"}  # MIMO's default: standardised labels
CONFIGS = {
    "ridge": ("ridge", {}),
    "mlp epochs": ("mlp", {"min_steps": 0}),
    "mlp steps": ("mlp", {}),
    "ge epochs": ("ge", {"min_steps": 0}),
    "ge steps": ("ge", {}),
    "cnn epochs": ("cnn", {"min_steps": 0}),
    "cnn steps": ("cnn", {}),
    "mimo epochs": ("mimo", {"min_steps": 0, **RAW}),
    "mimo steps": ("mimo", RAW),
    "mimo steps500": ("mimo", {"min_steps": 500, **RAW}),
    "mimo rho0.5": ("mimo", {"rho": 0.5, **RAW}),
    "mimo rep2": ("mimo", {"batch_repetition": 2, **RAW}),
    "mimo M2": ("mimo", {"members": 2, **RAW}),
    "mimo M5": ("mimo", {"members": 5, **RAW}),
    "mimo normal-scores": ("mimo", {"target": "normal-scores"}),
    "mlp steps500": ("mlp", {"min_steps": 500}),
    "mlp b1024 lr2e-3": ("mlp", {"batch_size": 1024, "lr": 2e-3}),
}
DEFAULT_CONFIGS = ("ridge", "mlp epochs", "mlp steps", "ge epochs", "ge steps", "mimo epochs", "mimo steps",
                   "mimo steps500", "mimo rho0.5", "mimo rep2", "mimo M2", "mimo M5", "mimo normal-scores")
VS_GP = {"mimo": {}, "mimo-normal-scores": {"target": "normal-scores"},
         "mimo-wide": {"input_hidden": 64, "member_hidden": 64, "shared": (256,)},
         "mimo-M5": {"members": 5}}
SCHEMES = ("random", "modulo", "contiguous")


def default_root() -> Path:
    return Path(os.environ.get("MIMO_PROTEINGYM") or Path(__file__).resolve().parents[1] / "../shared/data/proteingym")


def datasets(root: Path, sizes: list[int], assays: list[str]):
    """(label, dataset, profile path or None) of each dataset."""
    out = [(f"GFP {n}", mimo.load_dataset(sample=n), None) for n in sizes]
    out += [(label, mimo.load_dataset(root / f"{ASSAYS[label][0]}.csv"), root / "profiles" / ASSAYS[label][1])
            for label in assays]
    return out


def build(dataset, profile: Path | None, cache: Path) -> str:
    """Cache the features; their joined name."""
    names = BASE_FEATURES.split("+") + ([f"profile:{profile}"] if profile else [])
    built = []
    for name in names:
        mimo.build_cache(dataset, mimo.get_featurizer(name, dataset), cache, progress=False)
        built.append(f"profile-{profile.stem}" if name.startswith("profile:") else name)
    return "+".join(built)


def features(dataset, profile: Path | None, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every scored row's features and label, built into ``cache``."""
    data = load_split_data(cache, dataset.name, build(dataset, profile, cache))
    keep = np.isfinite(data.rows.labels)
    return np.asarray(data.rows.embeddings[keep], np.float32), np.asarray(data.rows.labels[keep], np.float64)


def score(config: str, X: np.ndarray, y: np.ndarray, folds: int) -> dict:
    head, params = CONFIGS[config]
    fold = np.random.default_rng(0).permutation(len(y)) % folds
    rho, r2, cpu = [], [], []
    for k in range(folds):
        train, test = fold != k, fold == k
        start = time.process_time()
        model = mimo.get_head(head, **({"device": "cpu"} if head != "ridge" else {}), **params)
        model.fit(X[train], y[train])
        cpu.append(time.process_time() - start)
        pred = model.predict(X[test])
        rho.append(spearmanr(y[test], pred).statistic)
        r2.append(1 - np.mean((y[test] - pred) ** 2) / np.var(y[test]))
    return {"spearman": float(np.mean(rho)), "r2": float(np.mean(r2)), "cpu_s": float(np.mean(cpu))}


def table(results: pd.DataFrame, value: str) -> pd.DataFrame:
    wide = results.pivot(index="config", columns="dataset", values=value)
    order = list(dict.fromkeys(results["dataset"]))
    configs = list(dict.fromkeys(results["config"]))
    return wide.loc[configs, order].reset_index()


def vs_gp(args) -> None:
    """MIMO variants and the GP under ``fit_cv`` on ProteinGym's fold schemes."""
    from mimo.models.data import load_cv_data
    from mimo.models.data import feature_blocks
    from mimo.models.runs.cv import fit_cv

    done = pd.read_csv(args.csv) if args.resume and args.csv.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    seen = {(r["assay"], r["scheme"], r["head"]) for r in rows}
    load = os.getloadavg()[0]
    for label in args.assays:
        stem, profile = ASSAYS[label]
        dataset = mimo.load_dataset(args.root / f"{stem}.csv")
        cache = args.work / "cache" / label
        joined = build(dataset, args.root / "profiles" / profile, cache)
        for head in args.heads:
            for scheme in args.schemes:
                if (label, scheme, head) in seen:
                    continue
                data = load_cv_data(cache, dataset.name, joined, cv=f"fold_{scheme}_5")
                model = (mimo.get_head("gp", blocks=feature_blocks(data.rows.manifest)) if head == "gp"
                         else mimo.get_head("mimo", device="cpu", **VS_GP[head]))
                start = time.process_time()
                run = fit_cv(model, data, args.work / "runs" / f"{label}-{scheme}-{head}", force=True)
                interval = run.metrics.get("uncertainty", {}).get("interval", {}).get("test", {})
                rows.append({"assay": label, "scheme": scheme, "head": head,
                             "spearman": run.metrics["test"]["spearman"], "coverage": interval.get("coverage"),
                             "mean_width": interval.get("mean_width"),
                             "label_range": float(np.ptp(data.rows.labels[np.isfinite(data.rows.labels)])),
                             "cpu_s": time.process_time() - start, "load": os.getloadavg()[0]})
                print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
                      flush=True)
                pd.DataFrame(rows).to_csv(args.csv, index=False)
                if args.markdown:
                    write_vs_gp(pd.DataFrame(rows), args, load)


def write_vs_gp(results: pd.DataFrame, args, load: float) -> None:
    results = results.copy()
    results["cell"] = [f"{r.spearman:.3f} ({r.coverage:.2f} / {r.mean_width:.2f})" if pd.notna(r.coverage)
                       else f"{r.spearman:.3f}" for r in results.itertuples()]
    wide = results.pivot(index=["assay", "head"], columns="scheme", values="cell")
    wide = wide[[s for s in SCHEMES if s in wide.columns]].reset_index()
    cpu = results.groupby(["assay", "head"], sort=False)["cpu_s"].sum().round(0)
    wide["cpu s (all schemes)"] = [cpu.get((a, h)) for a, h in zip(wide["assay"], wide["head"])]
    command = (f"OMP_NUM_THREADS=1 nice -n 10 python -m bench.small_data --vs-gp --heads {' '.join(args.heads)} "
               f"--assays {' '.join(args.assays)} --schemes {' '.join(args.schemes)}")
    args.markdown.write_text(
        f"`{command}` (2-core AMD EPYC VM, shared; load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} "
        f"at the end)\n\nPooled out-of-fold Spearman (95% interval: pooled coverage / mean width), features "
        f"{BASE_FEATURES}+ProteinMPNN profile:\n\n{to_markdown(wide)}\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/mimo-small-data"))
    parser.add_argument("--root", type=Path, default=default_root())
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 300, 1000, 5000])
    parser.add_argument("--assays", nargs="*", default=list(ASSAYS), choices=list(ASSAYS))
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--csv", type=Path, default=Path("/tmp/small_data.csv"))
    parser.add_argument("--resume", action="store_true", help="skip the cells already in --csv")
    parser.add_argument("--vs-gp", action="store_true", help="MIMO beside the GP under ProteinGym's folds")
    parser.add_argument("--heads", nargs="*", default=["mimo", "gp"], choices=[*VS_GP, "gp"])
    parser.add_argument("--schemes", nargs="*", default=list(SCHEMES), choices=SCHEMES)
    args = parser.parse_args(argv)
    if args.vs_gp:
        return vs_gp(args)
    done = pd.read_csv(args.csv) if args.resume and args.csv.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    seen = {(r["dataset"], r["config"]) for r in rows}
    load = os.getloadavg()[0]
    for label, dataset, profile in datasets(args.root, args.sizes, args.assays):
        X, y = features(dataset, profile, args.work / "cache" / label.replace(" ", "-"))
        for config in args.configs:
            if (label, config) in seen:
                continue
            cell = score(config, X, y, args.folds)
            rows.append({"dataset": label, "rows": len(y), "config": config, **cell, "load": os.getloadavg()[0]})
            print(f"{label:10s} {config:16s} spearman {cell['spearman']:.3f}  r2 {cell['r2']:.3f}  "
                  f"cpu {cell['cpu_s']:.1f}s", flush=True)
            pd.DataFrame(rows).to_csv(args.csv, index=False)
        if args.markdown:
            write(pd.DataFrame(rows), args, load)


def write(results: pd.DataFrame, args, load: float) -> None:
    spearman = table(results, "spearman").round(3)
    r2 = table(results, "r2").round(3)
    cpu = table(results, "cpu_s").round(1)
    command = (f"OMP_NUM_THREADS=1 nice -n 10 python -m bench.small_data --sizes {' '.join(map(str, args.sizes))} "
               f"--assays {' '.join(args.assays)} --folds {args.folds}")
    text = (f"`{command}` (2-core AMD EPYC VM, shared; load average {load:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end)\n\nMean Spearman over {args.folds} seeded random folds "
            f"(the inner validation the defaults are chosen on):\n\n{to_markdown(spearman)}\n\n"
            f"Mean R^2:\n\n{to_markdown(r2)}\n\nCPU seconds per fit:\n\n{to_markdown(cpu)}\n")
    args.markdown.write_text(text)


if __name__ == "__main__":
    main()
