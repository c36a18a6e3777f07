"""Rows unlike the training rows (mimo.models.runs.shift): quiet on rows drawn like them, fires on shifted rows, and
`mimo predict` / `mimo design` carry the columns and the one-line warning."""
import numpy as np
import pandas as pd
import pytest

from conftest import fit_on_half_the_singles, run_cli as cli
from mimo.models.runs.shift import ALPHA, StreamCheck, check_rows


def blobs(n_train=1500, n_query=400, shifted=0, seed=0, dim=30):
    rng = np.random.default_rng(seed)
    train, query = rng.normal(size=(n_train, dim)), rng.normal(size=(n_query, dim))
    query[:shifted, :3] += 2.5  # these rows lie where few training rows do
    return train, query


def test_rows_drawn_like_the_training_rows_do_not_fire():
    for seed in range(3):
        report = check_rows(*blobs(seed=seed))
        assert report.flagged <= 3 * ALPHA * 400 + 3 and report.warning() is None
        assert 0.4 < report.auc < 0.6
        p = report.columns()["shift_p"]
        assert 0.35 < np.median(p) < 0.65  # about uniform: the p-values are calibrated under no shift


def test_rows_shifted_in_feature_space_fire_and_the_warning_names_the_count():
    train, query = blobs(shifted=100)
    report = check_rows(train, query)
    flag = report.columns()["unlike_training"].astype(bool)
    assert flag[:100].mean() > 0.7 and flag[100:].mean() < 0.03
    line = report.warning()
    assert line.startswith(f"{report.flagged} of 400 variants are unlike the run's training rows")
    assert "not evidence" in line and "unlike_training" in line


def test_rows_left_to_unseen_sites_are_not_checked_and_too_few_rows_say_so():
    train, query = blobs(shifted=100)
    skip = np.zeros(len(query), bool)
    skip[::5] = True
    report = check_rows(train, query, skip=skip)
    columns = report.columns()
    assert all(v is None for v in columns["unlike_training"][skip]) and np.isnan(columns["shift_p"][skip]).all()
    assert report.n_checked == 320 and "of the 320 variants at positions the training rows mutate" in report.warning()
    few = check_rows(train, query[:5])
    assert few.unlike is None and "too few" in few.reason and few.warning() is None
    assert "training rows to check against (at least 100)" in check_rows(train[:50], query).reason


def test_a_stream_scores_later_chunks_with_the_first_chunks_classifier():
    train, query = blobs(shifted=400, n_query=800)
    query = query[np.r_[0:200, 400:600, 200:400, 600:800]]  # each chunk: half shifted
    check = StreamCheck(train)
    flags = [check(query[k:k + 400])["unlike_training"].astype(bool) for k in (0, 400)]
    assert flags[1][:200].mean() > 0.7 and flags[1][200:].mean() < 0.03
    assert check.report().flagged == sum(f.sum() for f in flags) and check.report().n == 800


@pytest.fixture(scope="module")
def singles_ridge(tmp_path_factory):
    """A ridge run on half the single substitutions of a short parent (onehot-sites)."""
    root = tmp_path_factory.mktemp("shift")
    left_out = fit_on_half_the_singles(root, "ridge", letters="ACDEFGHIKLMNPQRSTVWY")
    return root / "run", left_out


def test_predict_writes_the_columns_and_warns_only_for_shifted_variants(singles_ridge, tmp_path):
    run, unmeasured = singles_ridge
    like = tmp_path / "like.txt"
    like.write_text("\n".join(unmeasured[:120]) + "\n")  # other singles at the same positions: like training
    result = cli("predict", "--run", run, "--variants", like, "--out", tmp_path / "like.csv")
    table = pd.read_csv(tmp_path / "like.csv")
    assert {"unlike_training", "shift_p"} <= set(table.columns) and table["shift_p"].between(0, 1).all()
    assert "unlike the run's training rows" not in result.output and table["unlike_training"].sum() <= 4
    rng = np.random.default_rng(1)
    triples = [":".join(sorted(rng.choice(unmeasured, 3, replace=False), key=lambda m: int(m[1:-1])))
               for _ in range(60)]
    triples = [t for t in triples if len({m[1:-1] for m in t.split(":")}) == 3]
    shifted = tmp_path / "shifted.txt"
    shifted.write_text("\n".join(unmeasured[:60] + triples) + "\n")  # triple mutants of a singles run
    result = cli("predict", "--run", run, "--variants", shifted, "--out", tmp_path / "shifted.csv")
    table = pd.read_csv(tmp_path / "shifted.csv")
    flagged = int(table["unlike_training"].sum())
    assert table["unlike_training"][table["n_mutations"] == 3].mean() > 0.5
    assert table["unlike_training"][table["n_mutations"] == 1].mean() < 0.1
    assert f"warning: {flagged} of {len(table)} variants are unlike the run's training rows" in result.output
    fitted = pd.read_csv(run / "predictions.csv")
    above = int((table["prediction"] > fitted.loc[fitted["split"] == "train", "y"].max()).sum())
    assert (f"note: {above} of {len(table)} variants are predicted above the best training label" in result.output) \
        == (above > 0)


def test_a_few_variants_are_not_checked_and_the_note_says_why(singles_ridge, tmp_path):
    run, unmeasured = singles_ridge
    few = tmp_path / "few.txt"
    few.write_text("\n".join(unmeasured[:3]) + "\n")
    result = cli("predict", "--run", run, "--variants", few, "--out", tmp_path / "few.csv")
    assert "not checked whether these variants are drawn like the training rows: 3 rows" in result.output
    assert pd.read_csv(tmp_path / "few.csv")["unlike_training"].isna().all()


def test_scan_and_plate_carry_the_columns_and_the_best_line_is_not_a_claim(singles_ridge, tmp_path):
    run, _ = singles_ridge
    cli("design", "scan", run, "--out", tmp_path / "scan.csv", "--figure", tmp_path / "scan.svg")
    scan = pd.read_csv(tmp_path / "scan.csv")
    assert {"unlike_training", "shift_p"} <= set(scan.columns) and scan["shift_p"].notna().all()
    assert scan["unlike_training"].mean() < 0.05  # singles at the measured positions, like the training rows
    result = cli("design", "propose", run, "--n", "24", "--max-mutations", "3", "--out", tmp_path / "plate.csv")
    plate = pd.read_csv(tmp_path / "plate.csv")
    assert {"unlike_training", "shift_p"} <= set(plate.columns)
    assert plate["unlike_training"][plate["n_mutations"] == 3].all()
    line = next(s for s in result.output.splitlines() if s.startswith("plate:"))
    measured = pd.read_csv(run / "predictions.csv")["y"].max()
    if plate["prediction"].max() > measured:
        assert "a guess to test, not evidence" in line
    else:
        assert "not above the best measured" in line
