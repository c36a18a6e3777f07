"""`fit auto` keeps its word: the chosen head's intervals, the budget (with a note when it stops early), the
choice by inner cross-validation and the one-standard-error rule, and a headline naming each fold's choice."""
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

import mimo
from mimo.models.estimators import auto as auto_module
from mimo.models.estimators.auto import AutoRegressor, budget_for, one_se_choice, simplicity
from mimo.models.report.summary import auto_lines, run_notes, summary_line
from test_generalize import cache_two_features


def linear(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, X @ np.array([1.0, -0.5, 0.3, 0.0]) + rng.normal(0, 0.2, n)


BLOCKS = (("a", "aaprops", 0, 2, None), ("b", "aaprops", 2, 4, None))


def entry(head, features, folds, params=None):
    return {"head": head, "features": features, "params": params or {}, "fold_spearman": list(folds),
            "valid_spearman": float(np.mean(folds))}


def test_one_se_rule_keeps_the_simplest_candidate_within_one_paired_standard_error():
    ridge = entry("ridge", ["a"], [0.70, 0.60, 0.80, 0.65, 0.75])
    gp = entry("gp", ["a", "b"], [0.72, 0.61, 0.81, 0.66, 0.77])  # better in every fold, by 0.01-0.02
    assert one_se_choice([gp, ridge]) is gp  # the paired differences' error is small: a consistent gain counts
    noisy = entry("gp", ["a", "b"], [0.80, 0.55, 0.90, 0.60, 0.78])  # better on average, not consistently
    assert one_se_choice([noisy, ridge]) is ridge
    skipped = {**entry("mlp", ["a"], [0.9] * 5), "valid_spearman": None}
    assert one_se_choice([ridge, skipped, gp]) is gp
    single = [{**entry("gp", ["a"], [0.5]), "fold_spearman": [0.5]}, {**entry("ridge", ["a"], [0.4])}]
    assert one_se_choice(single) is single[0]  # one figure each (a validation split): the best
    assert simplicity(ridge) < simplicity(gp) and simplicity(entry("ridge", ["a", "b"], [0])) > simplicity(ridge)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-1, 1), min_size=5, max_size=5), min_size=1, max_size=6))
def test_one_se_choice_is_never_more_than_one_error_below_the_best(folds):
    board = [entry(["ridge", "ge", "mlp", "gp", "mimo", "ridge"][i], ["a"] * (1 + i % 2), f)
             for i, f in enumerate(folds)]
    chosen = one_se_choice(board)
    best = max(board, key=lambda e: e["valid_spearman"])
    diff = np.array(best["fold_spearman"]) - np.array(chosen["fold_spearman"])
    assert diff.mean() <= diff.std(ddof=1) / np.sqrt(5) + 1e-12
    assert simplicity(chosen, board.index(chosen)) <= simplicity(best, board.index(best))


def test_budget_is_kept_and_an_early_stop_is_said(monkeypatch):
    """A fake clock: each fit takes 1 s. Ridge on 3 subsets under 5-fold inner CV costs 5 s a candidate; a 12 s
    budget scores two, leaves the third (keeping time to fit the chosen one) and says so."""
    clock = {"now": 0.0}
    monkeypatch.setattr(auto_module.time, "perf_counter", lambda: clock["now"])
    original = AutoRegressor._make

    def timed(self, candidate, **extra):
        clock["now"] += 1.0
        return original(self, candidate, **extra)
    monkeypatch.setattr(AutoRegressor, "_make", timed)
    X, y = linear()
    candidates = tuple({"features": f, "head": "ridge", "params": {}} for f in (["a"], ["b"], ["a", "b"]))
    model = AutoRegressor(blocks=BLOCKS, candidates=candidates, budget=12.0).fit(X, y)
    scored = [e for e in model.leaderboard_ if e["valid_spearman"] is not None]
    assert [e["features"] for e in scored] in ([["a"], ["b"]], [["b"], ["a"]])
    assert [e.get("skipped") for e in model.leaderboard_ if e["valid_spearman"] is None] == ["over the budget"]
    assert clock["now"] == 11.0 and model.seconds_ == 11.0  # 2 x 5 inner fits + the chosen one: within 12
    assert model.stopped_early_ == "the budget of 12s ran out: 2 of 3 candidates scored, 1 left untried"
    metrics = {"auto": model.run_summary()["auto"], "test": {"n": 0}}
    assert run_notes(metrics, {}) == [f"note: fit auto stopped early: {model.stopped_early_}"]
    roomy = AutoRegressor(blocks=BLOCKS, candidates=candidates, budget=100.0).fit(X, y)
    assert roomy.stopped_early_ is None and len(roomy.leaderboard_) == 3
    assert all(len(e["fold_spearman"]) == 5 for e in roomy.leaderboard_)
    assert "inner 5-fold cross-validation, one-standard-error rule" in roomy.selection_


def test_budget_is_shared_among_the_fits_of_a_cross_validation():
    assert budget_for(60) == 60 and budget_for(60, 5) == 10 and budget_for(60, None) == 60


def test_one_candidate_is_fitted_once_without_scoring(monkeypatch):
    made = []
    original = AutoRegressor._make
    monkeypatch.setattr(AutoRegressor, "_make", lambda self, c, **kw: made.append(c["head"]) or original(self, c, **kw))
    X, y = linear()
    model = AutoRegressor(blocks=BLOCKS, candidates=({"features": ["a"], "head": "ridge", "params": {}},)).fit(X, y)
    assert made == ["ridge"] and model.chosen_["head"] == "ridge" and not model.predicts_std
    with pytest.raises(ValueError, match="gives no predictive std"):
        model.predict(X, return_std=True)


@pytest.mark.slow
def test_fit_auto_run_is_the_chosen_heads_run_with_its_intervals(tmp_path):
    """A GP chosen by fit auto writes sd, lower, upper and member_spread, the same as `fit gp` on those features."""
    cache_two_features(tmp_path)
    data = mimo.load_split_data(tmp_path / "c", "assay", "onehot-sites+aaprops", "random")
    gp = {"features": ["aaprops"], "head": "gp", "params": {}}
    auto_run = mimo.fit_run(mimo.get_head("auto", blocks=data.blocks, candidates=(gp,)), data, tmp_path / "auto")
    alone = mimo.load_split_data(tmp_path / "c", "assay", "aaprops", "random")
    gp_run = mimo.fit_run(mimo.get_head("gp", blocks=alone.blocks), alone, tmp_path / "gp")
    a, g = (pd.read_csv(run.directory / "predictions.csv") for run in (auto_run, gp_run))
    for column in ("prediction", "sd", "lower", "upper", "member_spread"):
        assert a[column].notna().all()
        np.testing.assert_allclose(a[column], g[column], rtol=1e-4, atol=1e-5)
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert metrics["uncertainty"]["interval"]["test"]["coverage"] == pytest.approx(
        gp_run.metrics["uncertainty"]["interval"]["test"]["coverage"])
    assert auto_run.model.predicts_std


def test_cv_headline_names_each_folds_choice():
    chosen = lambda head: {"head": head, "features": ["a"], "params": {}}
    metrics = {"model": "auto", "dataset": "assay", "features": "a+b", "split": "random5",
               "evaluation": {"kind": "cv", "folds": 5}, "fit_seconds": 3.0,
               "test": {"spearman": 0.5, "mse": 1.0},
               "per_fold": [{"spearman": 0.5, "chosen": chosen(h)} for h in ("ge", "gp", "gp", "ge", "mlp")],
               "auto": {"chosen": chosen("gp"), "selection": "inner 5-fold cross-validation", "budget_seconds": 10,
                        "candidates": [{**chosen("gp"), "valid_spearman": 0.5}]}}
    line = summary_line(metrics)
    assert "chose ge, gp, gp, ge, mlp in the 5 folds" in line and "candidates scored" not in line
    assert auto_lines(metrics)[0].startswith("auto: for the saved model, 1 of 1 candidates scored")


def test_every_head_is_tried_once_on_all_blocks_before_the_smaller_subsets():
    blocks = (("onehot-sites", "onehot", 0, 2, None), ("aaprops", "aaprops", 2, 4, None),
              ("profile-p", "profile", 4, 6, None))
    order = AutoRegressor(blocks=blocks)._candidates()
    heads = len(auto_module.HEAD_GRID)
    assert [c["head"] for c in order[:heads]] == ["ridge", "gp"] + [h for h, _ in auto_module.HEAD_GRID
                                                                    if h not in ("ridge", "gp")]
    assert all(len(c["features"]) == 3 for c in order[:heads])
    assert sorted(map(json.dumps, order)) == sorted(map(json.dumps, auto_module.candidate_grid(blocks)))


def test_sd_is_what_the_calibrated_interval_implies_and_sits_beside_the_prediction():
    from mimo.models.metrics import interval_sd, with_sd

    table = pd.DataFrame({"prediction": [0.0, 1.0], "lower": [-1.96, 0.5], "upper": [1.96, 1.5],
                          "member_spread": [0.1, 0.05]})
    out = with_sd(table)
    assert list(out.columns) == ["prediction", "sd", "lower", "upper", "member_spread"]
    np.testing.assert_allclose(out["sd"], [1.0, 0.5 / 1.959964], rtol=1e-4)
    np.testing.assert_allclose(interval_sd(table["lower"], table["upper"], level=0.9), [1.96 / 1.644854, 0.5 / 1.644854],
                               rtol=1e-4)
    assert with_sd(table[["prediction"]]).columns.tolist() == ["prediction"]  # no interval, no sd
