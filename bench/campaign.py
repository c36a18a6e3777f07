"""Retrospective design campaigns on measured landscapes, as ALDE runs them (Yang et al. 2024).

    python -m bench.campaign [--datasets gfp,PATH.csv,...] [--seeds 10] [--rounds 4] [--batch 96]
                             [--strategies random,greedy-ridge,mimo-ucb,gp-ucb,gp-ts] [--markdown OUT.md]

Every landscape is a table of measured variants (the GFP genotypes via ``mimo.load_gfp``, or any CSV/TSV that
``mimo.load_dataset`` reads, such as ProteinGym's). A campaign starts from ``--batch`` variants drawn at random,
then runs ``--rounds`` rounds: fit the strategy's model on every variant revealed so far, choose ``--batch``
unrevealed variants of the landscape, reveal their measured values. Strategies:

- ``random``: the batch drawn at random;
- ``greedy-ridge``: ``ValidatedRidge`` (alpha by inner validation), the batch by the mean;
- ``mimo-ucb``: ``MimoRegressor`` (random routing), mean + 2 sd, the sd the members' spread scaled on the
  inner validation rows to a 95% interval (as runs calibrate it);
- ``gp-ucb``: ``GaussianProcessRegressor`` (a kernel per feature block), mean + 2 x its predictive std;
- ``gp-greedy`` (not run by default; a diagnostic): the same GP, the batch by its mean;
- ``gp-ts``: the same GP, batch Thompson sampling on its joint posterior over 4,000 candidates, the best by
  the mean and by UCB alternately (``mimo.acquisition.ts_pool``): every well the best of its own draw.

Every model-based batch goes through the plate's caps (``mimo.design.choose_plate``: no substitution in more than
25% of the batch, no position in more than ``--max-per-position`` wells). The inner validation rows (a fifth of
the revealed ones) are the only ones any choice is made on. Reported per round, as mean and sd over seeds:
``best``: the best value found, normalised as (best - median) / (max - median) of the landscape; ``top1``: the
share of the landscape's top 1% found; ``hits``: the share of the round's batch in the landscape's top 10%;
``s/round``: the seconds the strategy took to choose the batch (fit and acquisition).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

STRATEGIES = ("random", "greedy-ridge", "mimo-ucb", "gp-ucb", "gp-ts")
EXTRA = ("gp-greedy",)  # a diagnostic: the GP's mean alone (is it the model or the acquisition?)
FEATURES = "onehot-sites+aaprops"


def landscape(name: str, cache: str, features: str = FEATURES):
    """(X, y, mutations, n_mutations, manifest, dataset name) of a measured landscape."""
    import mimo

    dataset = mimo.load_dataset() if name == "gfp" else mimo.load_dataset(name)
    for feature in features.split("+"):
        mimo.build_cache(dataset, mimo.get_featurizer(feature, dataset), cache, progress=False)
    data = mimo.load_split_data(cache, dataset.name, features)
    rows = data.rows
    return (np.asarray(rows.embeddings, np.float32), np.asarray(rows.labels, np.float64), np.asarray(rows.mutations),
            np.asarray(rows.n_mutations), rows.manifest, dataset.name)


def _split(chosen: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(chosen)
    return order[len(order) // 5:], order[: len(order) // 5]


def _plate(mutations, rows, value, batch, max_per_position, orders=None):
    from mimo.design import choose_plate

    table = pd.DataFrame({"mutations": mutations[rows], "n_mutations": 1, "no_signal": False})
    plate = choose_plate(table, value, batch, 0.25, max_per_position, explore=0, multi_share=0.0, orders=orders)
    where = {m: i for i, m in enumerate(table["mutations"])}
    return rows[[where[m] for m in plate["mutations"]]]


def choose(strategy: str, X, y, mutations, revealed: np.ndarray, hidden: np.ndarray, batch: int, seed: int,
           manifest: dict, max_per_position: int, pool: int) -> np.ndarray:
    """The next batch (row indices of ``hidden``) by ``strategy``."""
    import mimo
    from mimo.models.data import feature_blocks

    rng = np.random.default_rng(seed)
    if strategy == "random":
        return rng.choice(hidden, min(batch, len(hidden)), replace=False)
    train, valid = _split(revealed, rng)
    if strategy == "greedy-ridge":
        model = mimo.ValidatedRidge()
        model.fit(X[train], y[train], X[valid], y[valid])
        value = model.predict(X[hidden])
        return _plate(mutations, hidden, value, batch, max_per_position)
    if strategy == "mimo-ucb":
        from bench.design_retro import mimo_mean_and_sd

        mean, sd = mimo_mean_and_sd(X, y, train, valid, hidden, seed)
        value = mean + 2.0 * sd
        return _plate(mutations, hidden, value, batch, max_per_position)
    model = mimo.GaussianProcessRegressor(blocks=feature_blocks(manifest), steps=50, seed=seed)
    model.fit(X[revealed], y[revealed])  # the GP chooses nothing on validation rows: all of them
    mean, std = model.predict(X[hidden], return_std=True)
    value = mean + 2.0 * std
    if strategy == "gp-greedy":
        return _plate(mutations, hidden, mean, batch, max_per_position)
    if strategy == "gp-ucb":
        return _plate(mutations, hidden, value, batch, max_per_position)
    from mimo.acquisition import thompson_orders, ts_pool

    top = ts_pool(mean, value, pool)
    rows = hidden[top]
    orders = thompson_orders(model, X[rows], batch, seed)
    return _plate(mutations, rows, value[top], batch, max_per_position, orders=orders)


def run_campaign(X, y, mutations, counts, manifest, strategy: str, seed: int, rounds: int, batch: int,
                 max_per_position: int, pool: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    revealed = np.sort(rng.choice(len(y), batch, replace=False))  # every strategy starts from the same draw
    median, top_value = np.median(y), np.max(y)
    top1 = set(np.argsort(-y)[: max(1, len(y) // 100)].tolist())
    top10 = np.quantile(y, 0.9)
    history = []
    picked = revealed
    seconds = 0.0
    for round_ in range(rounds + 1):
        best = float(y[revealed].max())
        history.append({"round": round_, "best": (best - median) / (top_value - median),
                        "top1": len(top1 & set(revealed.tolist())) / len(top1),
                        "hits": float(np.mean(y[picked] > top10)), "seconds": seconds})
        if round_ == rounds:
            break
        hidden = np.setdiff1d(np.arange(len(y)), revealed)
        start = time.perf_counter()
        picked = choose(strategy, X, y, mutations, revealed, hidden, batch, seed * 1000 + round_, manifest,
                        max_per_position, pool)
        seconds = time.perf_counter() - start
        revealed = np.union1d(revealed, picked)
    return history


def round_timing(X, y, mutations, manifest, measured: int, pool: int, batch: int, seed: int = 0) -> dict:
    """Seconds of one gp-ts round at ``measured`` revealed variants and a ``pool`` of candidates (the
    unrevealed rows, repeated as often as needed to reach ``pool``): GP fit, UCB over the pool, Thompson
    sampling over its best 4,000, the capped plate."""
    import mimo
    from mimo.acquisition import thompson_orders
    from mimo.models.data import feature_blocks

    rng = np.random.default_rng(seed)
    revealed = rng.choice(len(y), measured, replace=False)
    hidden = np.resize(np.setdiff1d(np.arange(len(y)), revealed), pool)
    times = {}
    start = time.perf_counter()
    model = mimo.GaussianProcessRegressor(blocks=feature_blocks(manifest), steps=50, seed=seed)
    model.fit(X[revealed], y[revealed])
    times["fit"] = time.perf_counter() - start
    mean, std = model.predict(X[hidden], return_std=True)
    times["pool"] = time.perf_counter() - start - times["fit"]
    value = mean + 2 * std
    order = np.argsort(-value, kind="stable")
    seen, rows = set(), []
    for i in order:
        if hidden[i] not in seen:
            seen.add(hidden[i])
            rows.append(i)
        if len(rows) == 4000:
            break
    rows = np.asarray(rows)
    orders = thompson_orders(model, X[hidden[rows]], batch, seed)
    _plate(mutations, hidden[rows], value[rows], batch, 4, orders=orders)
    times["ts"] = time.perf_counter() - start - times["fit"] - times["pool"]
    times["total"] = time.perf_counter() - start
    return times


def machine() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return (f"commit {commit}, {os.cpu_count()}-core {cpu}, load average {os.getloadavg()[0]:.1f} at the end, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="gfp", help="gfp and/or CSV/TSV landscapes, comma-separated.")
    parser.add_argument("--features", default=FEATURES)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--max-per-position", type=int, default=4)
    parser.add_argument("--pool", type=int, default=4000, help="gp-ts: candidates drawn jointly (best by UCB).")
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--raw", default=None, help="CSV of every campaign's rounds (to combine runs).")
    parser.add_argument("--timing", default=None, metavar="MEASURED,POOL",
                        help="Instead: the seconds of one gp-ts round at MEASURED variants and a POOL of candidates.")
    args = parser.parse_args()
    if args.timing:
        measured, pool = (int(v) for v in args.timing.split(","))
        X, y, mutations, _, manifest, dataset = landscape(args.datasets.split(",")[0], args.cache, args.features)
        times = round_timing(X, y, mutations, manifest, measured, pool, args.batch)
        print(f"{dataset}: one gp-ts round at {measured:,} measured, {pool:,} candidates: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()) + f"; {machine()}")
        return
    raw = []
    for name in args.datasets.split(","):
        X, y, mutations, counts, manifest, dataset = landscape(name, args.cache, args.features)
        print(f"{dataset}: {len(y):,} variants, {X.shape[1]} features", flush=True)
        for strategy in args.strategies.split(","):
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for row in run_campaign(X, y, mutations, counts, manifest, strategy, seed, args.rounds, args.batch,
                                        args.max_per_position, args.pool):
                    raw.append({"dataset": dataset, "strategy": strategy, "seed": seed, **row})
                last = raw[-1]
                print(f"  {strategy} seed {seed}: best {last['best']:.3f} top1 {last['top1']:.3f} "
                      f"({last['seconds']:.1f} s last round)", flush=True)
            if args.raw:
                pd.DataFrame(raw).to_csv(args.raw, index=False)
    text = summary(pd.DataFrame(raw), args.rounds) + f"\n\n{machine()}\n"
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text)


def summary(raw: pd.DataFrame, rounds: int) -> str:
    """The markdown table: per dataset, strategy and round, mean (sd) over seeds."""
    from mimo.models.report.tables import to_markdown

    def fmt(values: pd.Series) -> str:
        return f"{values.mean():.3f} ({values.std(ddof=0):.3f})"

    rows = []
    for (dataset, strategy, round_), part in raw.groupby(["dataset", "strategy", "round"], sort=False):
        rows.append({"dataset": dataset, "strategy": strategy, "round": round_, "seeds": part["seed"].nunique(),
                     "best (norm.)": fmt(part["best"]), "top-1% found": fmt(part["top1"]),
                     "hits (top 10%)": fmt(part["hits"]) if round_ else "",
                     "s/round": f"{part['seconds'].mean():.1f}" if round_ else ""})
    return to_markdown(pd.DataFrame(rows))


if __name__ == "__main__":
    main()
