"""The campaign bench (bench/campaign.py) on a small synthetic landscape: every strategy runs its rounds, reveals
what it picks, and the model-based ones find more of the top than random on an easy landscape."""
import numpy as np
import pytest

from bench.campaign import STRATEGIES, run_campaign, summary


def landscape(n: int = 400, sites: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    letters = "ACDEFG"
    columns = [f"{p}{a}" for p in range(1, sites + 1) for a in letters]
    weights = rng.normal(size=len(columns))
    seen, X, mutations = set(), [], []
    while len(mutations) < n:
        k = rng.integers(1, 3)
        picked = sorted(rng.choice(sites, k, replace=False) + 1)
        text = ":".join(f"K{p}{rng.choice(list(letters))}" for p in picked)
        if text in seen:
            continue
        seen.add(text)
        row = np.zeros(len(columns), np.float32)
        for token in text.split(":"):
            row[columns.index(token[1:])] = 1
        X.append(row)
        mutations.append(text)
    X = np.array(X)
    y = X @ weights + 0.1 * rng.normal(size=n)
    manifest = {"features": "onehot", "kind": "onehot", "dim": len(columns), "columns": columns}
    return X, y, np.array(mutations), np.array([m.count(":") + 1 for m in mutations]), manifest


@pytest.mark.slow
def test_every_strategy_runs_and_the_models_beat_random_on_an_easy_landscape():
    import pandas as pd

    X, y, mutations, counts, manifest = landscape()
    raw = []
    for strategy in STRATEGIES:
        for seed in range(1):
            history = run_campaign(X, y, mutations, counts, manifest, strategy, seed, rounds=2, batch=24,
                                   max_per_position=8, pool=200)
            assert [h["round"] for h in history] == [0, 1, 2]
            assert all(0 <= h["top1"] <= 1 and h["best"] <= 1 + 1e-9 for h in history)
            assert history[0]["best"] == run_campaign(X, y, mutations, counts, manifest, "random", seed, 0, 24, 8,
                                                      200)[0]["best"]  # one start per seed, whatever the strategy
            assert np.all(np.diff([h["best"] for h in history]) >= 0)  # the best so far never drops
            raw += [{"dataset": "toy", "strategy": strategy, "seed": seed, **h} for h in history]
    table = pd.DataFrame(raw)
    last = table[table["round"] == 2].groupby("strategy")["top1"].mean()
    assert last["gp-ts"] > last["random"] and last["greedy-ridge"] > last["random"]
    assert "gp-ts" in summary(table, 2)
