"""One run record (metrics.json of one shape for a split and for cross-validation, out-of-fold rows marked
``oof``, the rows that trained a run decided in one place), and runs refused or warned about in one line:
tiny splits, 2-fold cross-validation, a split given to ``fit_cv``, labels float32 cannot resolve."""
import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest

import mimo
from mimo.models.runs.record import FORMAT
from mimo.pipeline.errors import DataError
from conftest import SHORT_PARENT, refused, run_cli, write_singles


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    """Singles of SHORT_PARENT cached as onehot-sites (dataset ``s``), a split run and a 3-fold run on them."""
    root = tmp_path_factory.mktemp("record")
    write_singles(root / "s.csv")
    dataset = mimo.load_dataset(root / "s.csv", parent=SHORT_PARENT)
    mimo.build_cache(dataset, mimo.get_featurizer("onehot-sites", dataset), root / "cache", progress=False)
    mimo.fit_run(mimo.ValidatedRidge(), mimo.load_split_data(root / "cache", "s", "onehot-sites"), root / "run")
    mimo.fit_cv(mimo.ValidatedRidge(), mimo.load_cv_data(root / "cache", "s", "onehot-sites", "3"), root / "cv")
    return root


def test_fit_run_and_fit_cv_write_one_shape(singles):
    split, cv = mimo.load_run(singles / "run"), mimo.load_run(singles / "cv")
    assert set(split.metrics) == set(cv.metrics)
    assert split.metrics["format"] == cv.metrics["format"] == FORMAT and "cv" not in cv.metrics
    assert set(split.metrics["support"]) == set(cv.metrics["support"])
    assert split.metrics["evaluation"]["kind"] == "split" and split.metrics["per_fold"] == []
    assert cv.metrics["evaluation"] == {"kind": "cv", "held_out": "oof", "training": ["oof"], "folds": 3,
                                        "refit": True, "inner_validation": "the next fold"}
    for run in (split, cv):
        for part in ("train", "valid", "test"):
            assert run.metrics[part]["n"] > 0 and run.metrics[part]["spearman"] is not None
    predictions = pd.read_csv(singles / "cv" / "predictions.csv")
    assert set(predictions["split"]) == {"oof"} and cv.metrics["test"]["n"] == len(predictions)
    assert cv.metrics["train"]["n"] == len(predictions)  # the saved model was refitted on every fold
    assert cv.metrics["valid"]["n"] == int((predictions["fold"] == 0).sum())


def test_training_rows_are_decided_in_one_place(singles):
    split, cv = mimo.load_run(singles / "run"), mimo.load_run(singles / "cv")
    table = pd.read_csv(singles / "run" / "predictions.csv")
    assert len(split.training_rows()) == int((table["split"] == "train").sum()) > 0
    assert set(split.training_rows()["split"]) == {"train"}
    assert len(cv.training_rows(["n_mutations"])) == len(pd.read_csv(singles / "cv" / "predictions.csv"))


def as_format_1(run_dir):
    """Rewrite a run as mimo wrote it before the run record: no format or evaluation block, a ``cv`` entry for a
    cross-validation whose out-of-fold rows are labelled test, and no support.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    kind = metrics.pop("evaluation")
    for key in ("format", "per_fold", "warnings", "train", "valid"):
        metrics.pop(key) if kind["kind"] == "cv" or key in ("format", "warnings") else None
    if kind["kind"] == "cv":
        metrics["cv"] = {"scheme": metrics["split"], "folds": kind["folds"], "refit": kind["refit"]}
        table = pd.read_csv(run_dir / "predictions.csv", dtype={"id": str, "mutations": str}, keep_default_na=False)
        table["split"] = table["split"].replace("oof", "test")
        table.to_csv(run_dir / "predictions.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "support.json").unlink()


@pytest.mark.slow
def test_runs_of_format_1_are_read_with_their_training_rows(singles, tmp_path):
    for name in ("run", "cv"):
        shutil.copytree(singles / name, tmp_path / name)
        as_format_1(tmp_path / name)
        old, new = mimo.load_run(tmp_path / name), mimo.load_run(singles / name)
        assert old.metrics["evaluation"]["kind"] == new.metrics["evaluation"]["kind"]
        assert len(old.training_rows()) == len(new.training_rows())  # a CV run's rows are all its folds
        assert old.support.substitutions == new.support.substitutions  # support.json rebuilt from those rows
    out = run_cli("predict", "--run", tmp_path / "cv", "--variants", write_variants(tmp_path)).output
    assert out.startswith("id,mutations")


def test_a_later_format_is_refused_in_one_line(singles, tmp_path):
    shutil.copytree(singles / "run", tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({**metrics, "format": 99}))
    with pytest.raises(DataError, match=f"format 99, which this version of mimo \\(format {FORMAT}\\) cannot read"):
        mimo.load_run(tmp_path / "run")
    refused(run_cli("report", tmp_path / "run", ok=False), "format 99")


def test_two_folds_and_split_data_are_refused_by_fit_cv_in_one_line(singles, tmp_path):
    two = mimo.load_cv_data(singles / "cache", "s", "onehot-sites", "2")
    with pytest.raises(DataError, match="has 2 fold\\(s\\): cross-validation here needs at least 3"):
        mimo.fit_cv(mimo.ValidatedRidge(), two, tmp_path / "two")
    split = mimo.load_split_data(singles / "cache", "s", "onehot-sites")
    with pytest.raises(DataError, match="holds parts .*not fold ids"):
        mimo.fit_cv(mimo.ValidatedRidge(), split, tmp_path / "parts")
    refused(run_cli("fit", "ridge", "--dataset", "s", "--cache", singles / "cache", "--cv", "2", "--out",
                    tmp_path / "cli", ok=False), "needs at least 3")
    assert not (tmp_path / "two").exists() and not (tmp_path / "cli").exists()


@pytest.mark.parametrize("head", ["ridge", "mimo"])
def test_a_split_without_test_rows_is_refused_before_training(singles, tmp_path, head):
    data = mimo.load_split_data(singles / "cache", "s", "onehot-sites")
    no_test = dataclasses.replace(data, split=np.where(data.split == "test", "train", data.split).astype(object))
    with pytest.raises(DataError, match="has no test rows: nothing to evaluate the run on"):
        mimo.fit_run(mimo.get_head(head), no_test, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_labels_float32_cannot_resolve_are_warned_about(tmp_path):
    write_singles(tmp_path / "s.csv")
    table = pd.read_csv(tmp_path / "s.csv")
    table["score"] = 1e15 + table["score"]
    table.to_csv(tmp_path / "offset.csv", index=False, float_format="%.3f")
    result = run_cli("fit", "ridge", "--input", tmp_path / "offset.csv", "--parent", SHORT_PARENT, "--features",
                     "onehot-sites", "--cache", tmp_path / "c", "--out", tmp_path / "run", "--quiet")
    assert "warning: the labels vary by" in result.output and "float32" in result.output
    assert mimo.load_run(tmp_path / "run").metrics["warnings"][0].startswith("warning: the labels vary by")
    plain = run_cli("fit", "ridge", "--input", tmp_path / "s.csv", "--parent", SHORT_PARENT, "--features",
                    "onehot-sites", "--cache", tmp_path / "c", "--out", tmp_path / "plain", "--quiet")
    assert "labels vary" not in plain.output and mimo.load_run(tmp_path / "plain").metrics["warnings"] == []


def write_variants(tmp_path, n: int = 30):
    """``n`` doubles of SHORT_PARENT (some substitutions never measured), one a line."""
    letters = "AGLDEKR"
    singles = [f"{wt}{i + 1}{aa}" for i, wt in enumerate(SHORT_PARENT) for aa in letters if aa != wt]
    rng = np.random.default_rng(0)
    lines = set()
    while len(lines) < n:
        a, b = sorted(rng.choice(len(singles), 2, replace=False))
        if singles[a][1:-1] != singles[b][1:-1]:
            lines.add(f"{singles[a]}:{singles[b]}")
    (tmp_path / "variants.txt").write_text("\n".join(sorted(lines)) + "\n")
    return tmp_path / "variants.txt"


def test_predict_streams_in_chunks_and_returns_its_warnings(singles, tmp_path, monkeypatch):
    import mimo.predict as predict

    variants = write_variants(tmp_path)
    whole = mimo.predict_variants(singles / "run", variants)
    sizes = []
    featurize = predict.featurize
    monkeypatch.setattr(predict, "featurize",
                        lambda frame, *a, **k: sizes.append(len(frame)) or featurize(frame, *a, **k))
    monkeypatch.setattr(predict, "CHUNK", 7)
    result = run_cli("predict", "--run", singles / "run", "--variants", variants, "--out", tmp_path / "p.csv")
    sizes.remove(len(mimo.load_run(singles / "run").training_rows()))  # once, at most shift.MAX_ROWS of them
    assert max(sizes) <= 7 and sum(sizes) == len(whole)  # the variants featurized 7 at a time
    chunked = pd.read_csv(tmp_path / "p.csv", dtype={"id": str}, keep_default_na=False)
    np.testing.assert_allclose(chunked["prediction"], whole["prediction"], rtol=1e-6)
    assert list(chunked.columns) == list(whole.columns) and chunked["id"].tolist() == whole["id"].tolist()
    warnings = whole.attrs["warnings"]
    assert warnings and warnings[0].startswith("warning: ") and "never measured in training" in warnings[0]
    for line in warnings:
        assert line in result.output  # the command prints the API's lines


def test_library_calls_leave_the_thread_policy_alone(singles, tmp_path, monkeypatch):
    from mimo.pipeline.runtime import threads

    calls = []
    monkeypatch.setattr(threads.POLICY, "enabled", True)  # as under the command: adapt() would act
    monkeypatch.setattr(threads.POLICY, "adapt", lambda *a, **k: calls.append(a) or 1)
    mimo.predict_variants(singles / "run", write_variants(tmp_path))
    mimo.saturation_scan(singles / "run", check_shift=False)
    assert calls == []


def test_predict_never_writes_over_the_run(singles, tmp_path):
    shutil.copytree(singles / "run", tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    variants = write_variants(tmp_path)
    for target in ("predictions.csv", "metrics.json", "model.npz"):
        refused(run_cli("predict", "--run", tmp_path / "run", "--variants", variants, "--out",
                        tmp_path / "run" / target, ok=False), f"the run's own {target}")
    (tmp_path / "link.csv").symlink_to(tmp_path / "run" / "predictions.csv")
    refused(run_cli("predict", "--run", tmp_path / "run", "--variants", variants, "--out", tmp_path / "link.csv",
                    ok=False), "the run's own predictions.csv")
    run_cli("predict", "--run", tmp_path / "run", "--variants", variants, "--out", tmp_path / "run" / "new.csv")
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.name != "new.csv"}
    assert after == before


def test_predict_on_external_scores_does_not_advise_an_option_it_lacks(tmp_path):
    write_singles(tmp_path / "s.csv")
    table = pd.read_csv(tmp_path / "s.csv")
    table.assign(model_score=np.arange(len(table), dtype=float)).drop(columns="score").to_csv(
        tmp_path / "scores.csv", index=False)
    for model in ("onehot-sites", f"scores:{tmp_path / 'scores.csv'}"):
        run_cli("embed", "build", "--input", tmp_path / "s.csv", "--parent", SHORT_PARENT, "--model", model,
                "--cache", tmp_path / "c", "--quiet")
    run_cli("fit", "ridge", "--dataset", "s", "--features", "onehot-sites+scores-scores", "--cache", tmp_path / "c",
            "--out", tmp_path / "run", "--quiet")
    (tmp_path / "new.txt").write_text("K2R\n")  # a variant the scores file lacks
    message = refused(run_cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", ok=False),
                      "1 of 1 variants have no scores", "--scores")
    assert "--allow-missing" not in message


def test_zero_shot_spearman_rules_live_in_the_api():
    from mimo.models.runs.evaluate import zero_shot_spearman

    rng = np.random.default_rng(0)
    n = 60
    counts = np.r_[np.ones(40, int), np.full(15, 2), np.full(5, 3)]  # doubles and triples: under 20 each
    label = rng.normal(size=n)
    table = pd.DataFrame({"label": np.r_[label[:-1], np.nan], "score": label + rng.normal(0, 0.5, n),
                          "n_mutations": counts, "covered": np.r_[np.ones(n - 3, bool), np.zeros(3, bool)]})
    out = zero_shot_spearman(table, "assay")
    kept = table.iloc[:n - 3]
    assert out["left_out"] == 2 and out["n"] == n - 3  # the unlabelled row is not counted as left out
    assert out["spearman"] == pytest.approx(mimo.models.metrics.spearman(kept["label"].to_numpy(),
                                                                         kept["score"].to_numpy()))
    assert [c for c, _, _ in out["by_mutations"]] == [1]  # 15 doubles and 5 triples: noise, not figures
    assert out["lines"][0] == "2 labelled variants not covered by the file: left out"
    assert out["lines"][1].startswith(f"assay: zero-shot Spearman {out['spearman']:.3f} over {n - 3} variants")
    single = zero_shot_spearman(table.assign(n_mutations=1).drop(columns="covered"), "assay")
    assert single["by_mutations"] == [] and single["left_out"] == 0 and len(single["lines"]) == 1


def test_one_damaged_run_does_not_hide_the_others_from_report(singles, tmp_path):
    for name in ("run", "cv"):
        shutil.copytree(singles / name, tmp_path / name)
    (tmp_path / "cv" / "metrics.json").write_text("{not json")
    result = run_cli("report", tmp_path / "run", tmp_path / "cv")
    assert "note: skipped" in result.output and "metrics.json" in result.output and "| ridge" in result.output
    refused(run_cli("report", tmp_path / "cv", ok=False), "metrics.json")
    (tmp_path / "run" / "support.json").write_text('{"substitutions": ["x"]}')
    with pytest.raises(DataError, match="cannot read the run's support.json"):
        mimo.load_run(tmp_path / "run").support


def test_predictions_all_but_constant_and_a_choice_at_the_grid_edge_are_warned(tmp_path):
    """Labels the features cannot predict: ridge takes the largest alpha and predicts a constant. The run says
    so (its Spearman is rounding noise) instead of printing the figure alone."""
    from mimo.models.runs.evaluate import prediction_warnings

    rng = np.random.default_rng(0)
    constant = 0.02 + 1e-9 * rng.normal(size=200)
    lines = prediction_warnings(constant, rng.normal(size=200), {"alpha_at_grid_edge": "the best alpha 1e+09 ..."})
    assert lines[0].startswith("warning: the predictions are all but constant") and "rounding noise" in lines[0]
    assert lines[1] == "warning: the best alpha 1e+09 ..."
    assert prediction_warnings(rng.normal(size=200), rng.normal(size=200), {"alpha": 1.0}) == []
