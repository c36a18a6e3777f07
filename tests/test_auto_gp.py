"""`mimo fit auto` with the Gaussian-process head among its candidates, profile and scores blocks in its feature
subsets, and what a profile that does not cover a position means for ``no_signal``."""
import json

import numpy as np
import pandas as pd
import pytest

import mimo
from mimo.models.estimators.auto import AutoRegressor, blocks_of, candidate_grid, describe, feature_subsets, subset_blocks
from mimo.models.data import feature_blocks
from mimo.models.runs.support import no_signal_rows
from test_generalize import PARENT, write_proteingym_like
from test_profile import write_mpnn

ONEHOT = {"features": "onehot-sites", "kind": "onehot", "model": "onehot-sites", "dim": 3,
          "columns": ["0", "1", "2"]}
AAPROPS = {"features": "aaprops", "kind": "aaprops", "dim": 2}
PROFILE = {"features": "profile-p", "kind": "profile", "dim": 3, "columns": ["dlogp", "p_A", "covered"]}
SCORES = {"features": "scores-s", "kind": "scores", "dim": 2, "columns": ["avg_score", "covered"]}


def joined(*parts):
    return {"features": "+".join(p["features"] for p in parts), "parts": list(parts)}


def test_grid_joins_one_hot_aaprops_and_profiles_and_tries_the_gp_last():
    blocks = [("onehot-sites", "onehot"), ("aaprops", "aaprops"), ("profile-p", "profile"), ("scores-s", "scores")]
    subsets = feature_subsets(blocks)
    for wanted in [("profile-p",), ("scores-s",), ("onehot-sites", "aaprops", "profile-p"),
                   ("onehot-sites", "aaprops", "scores-s"), ("onehot-sites", "aaprops", "profile-p", "scores-s"),
                   ("profile-p", "scores-s"), ("onehot-sites", "profile-p"), ("aaprops", "profile-p")]:
        assert wanted in subsets
    assert len(subsets) == len(set(subsets))
    grid = candidate_grid(blocks, gp_subsets="all")
    heads = [c["head"] for c in grid]
    assert heads[0] == "ridge" and set(heads[heads.index("gp"):]) == {"gp"}  # the GP, the costliest, last
    assert sum(h == "gp" for h in heads) == len(subsets)
    gp = [c["features"] for c in grid if c["head"] == "gp"]
    assert len(gp[0]) == 4 and [len(f) for f in gp] == sorted((len(f) for f in gp), reverse=True)  # richest first
    assert candidate_grid(blocks) == candidate_grid(blocks, gp_subsets="onehot")  # the default (measured)
    only = [c["features"] for c in candidate_grid(blocks, gp_subsets="onehot") if c["head"] == "gp"]
    assert only and all("onehot-sites" in f for f in only) and len(only) < len(subsets)
    with pytest.raises(ValueError, match="gp_subsets is 'all' or 'onehot'"):
        candidate_grid(blocks, gp_subsets="some")
    assert feature_subsets([("profile-p", "profile")]) == [("profile-p",)]  # a profile alone is a candidate
    refit = {"features": ["profile-p"], "head": "gp", "params": {"start": {"noise": [0.1]}, "steps": 0}}
    assert describe(refit) == "gp start=(fitted) steps=0 on profile-p"  # hyperparameters carried, not printed


def test_a_subsets_gp_blocks_count_their_columns_from_zero_and_keep_their_names():
    blocks = feature_blocks(joined(ONEHOT, AAPROPS, PROFILE))
    assert blocks_of(joined(ONEHOT, AAPROPS, PROFILE)) == blocks
    assert subset_blocks(blocks, ["aaprops", "profile-p"]) == (
        ("aaprops", "aaprops", 0, 2, None), ("profile-p", "profile", 2, 5, ("dlogp", "p_A", "covered")))
    assert subset_blocks([b[:4] for b in blocks], ["profile-p"]) == (("profile-p", "profile", 0, 3, None),)
    model = AutoRegressor(blocks=blocks)
    gp = model._make({"features": ["onehot-sites", "profile-p"], "head": "gp", "params": {}})
    assert gp.blocks == (("onehot-sites", "onehot", 0, 3, ("0", "1", "2")),
                         ("profile-p", "profile", 3, 6, ("dlogp", "p_A", "covered")))
    assert list(model._columns(["onehot-sites", "profile-p"])) == [0, 1, 2, 5, 6, 7]
    assert "blocks" not in model._make({"features": ["aaprops"], "head": "ridge", "params": {}}).get_params()
    with pytest.raises(ValueError, match=r"heads \(--heads\) names heads among ridge, ge, mimo, mlp, gp"):
        AutoRegressor(blocks=blocks, heads="gp,svm")._validate_params()
    assert {c["head"] for c in AutoRegressor(blocks=blocks, heads="ridge, gp")._candidates()} == {"ridge", "gp"}


def test_no_signal_needs_every_part_silent_and_a_profile_is_silent_where_it_does_not_cover():
    counts = pd.DataFrame({"unseen": pd.array([1, 1, 0, None], dtype="Int64"),
                           "unseen_sites": pd.array([1, 1, 0, None], dtype="Int64")})
    covered = np.array([[0, 0, 0, 9, 9, 1], [0, 0, 0, 9, 9, 0], [0, 0, 0, 9, 9, 0], [0, 0, 0, 9, 9, 0]], float)
    with_profile = joined(ONEHOT, PROFILE)
    assert list(no_signal_rows(with_profile, counts, covered, with_profile)) == [False, True, False, False]
    assert list(no_signal_rows(ONEHOT, counts)) == [True, True, False, False]  # one-hot alone, as before
    # the profile alone: silent wherever it does not cover, seen in training or not
    alone = {**PROFILE}
    assert list(no_signal_rows(alone, counts, covered[:, 3:], alone)) == [False, True, True, True]
    # read in the joined columns where the model uses a part of them (fit auto)
    everything = joined(ONEHOT, AAPROPS, PROFILE)
    wide = np.hstack([covered[:, :3], np.zeros((4, 2)), covered[:, 3:]])
    assert list(no_signal_rows(with_profile, counts, wide, everything)) == [False, True, False, False]
    assert not no_signal_rows(everything, counts, wide, everything).any()  # aaprops: always some signal
    scores = joined(ONEHOT, SCORES)
    assert list(no_signal_rows(scores, counts, np.hstack([covered[:, :3], covered[:, [4, 5]]]), scores)) == \
        [False, True, False, False]
    # without the rows' features the profile is taken to give none: the wider interval
    assert list(no_signal_rows(with_profile, counts)) == [True, True, False, False]


def assay_with_gaps(tmp_path, cli):
    """The proteingym-like assay without positions 10 and 45, cached as onehot-sites, aaprops and a ProteinMPNN
    profile covering positions 1-40 only."""
    frame = write_proteingym_like(tmp_path / "full.csv")
    positions = frame["mutant"].str[1:-1].astype(int)
    frame[~positions.isin([10, 45])].to_csv(tmp_path / "assay.csv", index=False)
    write_mpnn(tmp_path / "p.npz", parent=PARENT[:40])
    for model in ("onehot-sites", "aaprops", f"profile:{tmp_path / 'p.npz'}"):
        cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", model, "--cache", tmp_path / "c", "--quiet")
    return frame


def test_an_untrained_position_is_no_signal_only_where_the_profile_does_not_cover_it(tmp_path, cli):
    assay_with_gaps(tmp_path, cli)
    cli("fit", "gp", "--dataset", "assay", "--features", "onehot-sites+profile-p", "--steps", "10", "--cache",
        tmp_path / "c", "--out", tmp_path / "gp", "--quiet")
    variants = tmp_path / "v.txt"
    # position 10: never mutated in training, covered; 45: never mutated, not covered; 43: trained, not covered
    variants.write_text(f"{PARENT[9]}10W\n{PARENT[44]}45W\n{PARENT[42]}43W\n")
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", "--run", tmp_path / "gp", "--variants",
                                                variants).stdout)).set_index("mutations")
    assert list(out["unseen_sites"]) == [1, 1, 0]
    assert list(out["no_signal"]) == [False, True, False]
    labels = pd.read_csv(tmp_path / "gp" / "predictions.csv").query("split == 'train'")["y"]
    uncovered, covered = out.loc[f"{PARENT[44]}45W"], out.loc[f"{PARENT[9]}10W"]
    assert uncovered["lower"] <= labels.min() and uncovered["upper"] >= labels.max()  # widened to the labels
    assert covered["upper"] - covered["lower"] < labels.max() - labels.min()


@pytest.mark.slow
def test_fit_auto_with_the_gp_chosen_predicts_the_same_after_reload(tmp_path, cli):
    assay_with_gaps(tmp_path, cli)
    # one thread: two threads spin-waiting on a busy 2-core machine make each GP fit 20x slower
    result = cli("--threads", "1", "fit", "auto", "--dataset", "assay", "--heads", "gp", "--budget", "600",
                 "--min-valid", "10", "--cache", tmp_path / "c", "--out", tmp_path / "a")
    auto = json.loads((tmp_path / "a" / "metrics.json").read_text())["auto"]
    tried = {frozenset(c["features"]) for c in auto["candidates"] if c["valid_spearman"] is not None}
    assert frozenset({"onehot-sites", "aaprops", "profile-p"}) in tried and frozenset({"profile-p"}) not in tried
    assert auto["chosen"]["head"] == "gp" and "chosen: gp on" in result.output
    chosen = len(auto["chosen"]["features"])
    blocks = json.loads((tmp_path / "a" / "metrics.json").read_text())["params"]["blocks"]
    assert {b[0]: b[4][-1] for b in blocks if b[1] == "profile"} == {"profile-p": "covered"}  # names carried
    # `mimo predict` reloads the run: its GP (blocks of the chosen subset, posterior) predicts as when fitted
    saved = pd.read_csv(tmp_path / "a" / "predictions.csv", dtype={"mutations": str})
    variants = tmp_path / "v.txt"
    variants.write_text("\n".join(saved["mutations"].head(20)) + "\n")
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", "--run", tmp_path / "a", "--variants", variants).stdout))
    np.testing.assert_allclose(out["prediction"], saved["prediction"].head(20), rtol=1e-4, atol=1e-5)
    model = mimo.load_run(tmp_path / "a").model
    assert model.chosen_["head"] == "gp" and len(model.model_.blocks_) == chosen
    assert model.model_.blocks_[0][2] == 0 and model.model_.blocks_[-1][3] == len(model.columns_)


def test_an_inner_cross_validation_past_the_budget_is_left_after_its_first_folds(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = X @ np.array([1.0, -0.5, 0.2, 0.0]) + rng.normal(0, 0.1, 300)
    blocks = (("a", "aaprops", 0, 2, None), ("b", "aaprops", 2, 4, None))
    model = AutoRegressor(blocks=blocks, budget=1.0, candidates=(
        {"features": ["a"], "head": "ridge", "params": {}},
        {"features": ["a", "b"], "head": "gp", "params": {"steps": 300}}))
    made, original = [], AutoRegressor._make
    monkeypatch.setattr(AutoRegressor, "_make", lambda self, c, **kw: made.append(c["head"]) or original(self, c, **kw))
    model.fit(X, y)  # 30 validation rows: candidates scored by inner 5-fold cross-validation
    gp = next(e for e in model.leaderboard_ if e["head"] == "gp")
    assert gp["valid_spearman"] is None and gp["skipped"] == "over the budget"
    assert made.count("gp") < model.inner_folds  # left after its first folds (or not started), never all five
    assert made.count("ridge") == model.inner_folds + 1 and model.chosen_["head"] == "ridge"


def test_cv_summary_when_only_the_saved_model_has_intervals():
    """fit auto --cv may choose a head without a spread in some folds: no out-of-fold intervals then, but the
    saved model's calibration is recorded; the summary says so instead of failing (a KeyError before)."""
    from mimo.models.report.summary import uncertainty_lines

    metrics = {"cv": {"scheme": "random5"}, "uncertainty": {"interval": {"level": 0.95, "scale": 1.0}}}
    (line,) = uncertainty_lines(metrics)
    assert "not measured out of fold" in line
    metrics["uncertainty"]["interval"]["test"] = {"coverage": 0.9, "mean_width": 1.5}
    assert "coverage 0.900" in uncertainty_lines(metrics)[0]
