import json

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from mimo.models.data import load_split_data
from mimo.models.runs import fit_run
from mimo.models.metrics import regression_metrics
from mimo.models.ridge import ValidatedRidge
from mimo.pipeline.build import build_cache
from mimo.pipeline.datasets import load_gfp
from mimo.pipeline.errors import DataError
from mimo.models.metrics import spearman
from mimo.pipeline.featurizers.onehot import OneHotFeaturizer


def test_validated_ridge_equals_sklearn_ridge_at_chosen_alpha():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20))
    w = rng.normal(size=20)
    y = X @ w + rng.normal(scale=2.0, size=300)
    Xv = rng.normal(size=(100, 20))
    yv = Xv @ w + rng.normal(scale=2.0, size=100)
    model = ValidatedRidge(standardize=False).fit(X, y, Xv, yv)
    reference = Ridge(alpha=model.alpha_).fit(X, y)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-4, atol=1e-6)
    assert model.intercept_ == pytest.approx(reference.intercept_, abs=1e-5)
    assert model.valid_mse_[model.alpha_] == min(model.valid_mse_.values())


def test_dual_form_for_fewer_rows_than_features():
    rng = np.random.default_rng(1)
    X, Xv = rng.normal(size=(30, 80)), rng.normal(size=(10, 80))
    y, yv = X[:, 0] * 3, Xv[:, 0] * 3
    model = ValidatedRidge(standardize=False).fit(X, y, Xv, yv)
    reference = Ridge(alpha=model.alpha_).fit(X, y)
    np.testing.assert_allclose(model.predict(Xv), reference.predict(Xv), rtol=1e-4, atol=1e-5)


def test_spearman_with_ties_broken_at_random():
    from mimo.models.metrics import spearman_ties_broken, tied_share

    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    untied = y + rng.normal(size=400)
    assert spearman_ties_broken(y, untied) == pytest.approx(spearman(y, untied))  # nothing to break
    assert tied_share(untied) == 0
    # a block the model cannot order, given one value: ties raise Spearman, breaking them takes it back
    noise = np.where(y < 0, rng.normal(size=400) * 1e-3, y)
    tied = np.where(y < 0, 0.0, y)
    assert tied_share(tied) == pytest.approx((y < 0).mean())
    assert spearman(y, tied) > spearman(y, noise) + 0.05
    assert spearman_ties_broken(y, tied, repeats=20) == pytest.approx(spearman(y, noise), abs=0.03)


def test_metrics_values():
    m = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 4.0, 3.0]))
    assert m == {"n": 4, "mse": 0.5, "spearman": pytest.approx(0.8), "pearson": pytest.approx(0.8)}
    assert regression_metrics(np.array([1.0, 1.0]), np.array([0.0, 2.0]))["spearman"] is None


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory, small_gfp_dir):
    root = tmp_path_factory.mktemp("cache")
    ds = load_gfp(small_gfp_dir)
    build_cache(ds, OneHotFeaturizer.for_dataset(ds.parent, ds.frame["aligned"]), root, progress=False)
    return root


def test_fit_ridge_writes_run_directory_with_metrics_contract(tmp_path, small_cache):
    data = load_split_data(small_cache, "gfp", None, "tape")
    run = fit_run(ValidatedRidge(), data, tmp_path / "run")
    run_dir, metrics = run.directory, run.metrics
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("model", "features", "split", "train", "valid", "test", "fit_seconds"):
        assert key in saved
    assert saved["model"] == "ridge" and saved["features"] == "onehot" and saved["split"] == "tape"
    for part in ("train", "valid", "test"):
        assert set(saved[part]) >= {"n", "mse", "spearman", "pearson"}
        assert saved[part]["n"] == int((data.split == part).sum())
    by_mut = saved["test"]["by_mutations"]
    assert min(int(k) for k in by_mut) >= 4
    assert sum(v["n"] for v in by_mut.values()) == saved["test"]["n"]
    assert set(by_mut["4"]) == {"n", "mse", "spearman"}
    assert 0 <= saved["test"]["tied_share"] <= 1 and saved["test"]["spearman_ties_broken"] is not None
    import pandas as pd
    predictions = pd.read_csv(run_dir / "predictions.csv")
    assert list(predictions.columns[:5]) == ["id", "split", "mutations", "n_mutations", "y"]
    assert len(predictions) == len(data.rows)
    test = predictions[predictions["split"] == "test"]
    assert np.mean((test["y"] - test["prediction"]) ** 2) == pytest.approx(saved["test"]["mse"], rel=1e-6)
    # written with enough digits that rank metrics recomputed from the file agree (rounding would add ties)
    assert spearman(test["y"].to_numpy(), test["prediction"].to_numpy()) == pytest.approx(saved["test"]["spearman"],
                                                                                         abs=1e-6)
    assert (run_dir / "model.npz").exists() and saved["split_hash"] == data.split_hash


def test_unknown_split_and_missing_cache(tmp_path, small_cache):
    with pytest.raises(DataError, match="no split 'nope'"):
        load_split_data(small_cache, "gfp", None, "nope")
    with pytest.raises(DataError, match="nothing cached for dataset 'gfp'"):
        load_split_data(tmp_path, "gfp")


def test_split_file_without_validation_rows_is_refused(tmp_path, small_cache):
    data = load_split_data(small_cache, "gfp", None, "tape")
    path = tmp_path / "split.csv"
    path.write_text("key,split\n" + "".join(f"{i},train\n" for i in data.rows.ids[:50]))
    with pytest.raises(DataError, match="split 'split.csv' has no valid rows"):
        load_split_data(small_cache, "gfp", None, split_file=path)
