import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.linear_model import Ridge

from mimo.models.data import load_split_data
from mimo.models.runs.fit import fit_run
from mimo.models.metrics import regression_metrics
from mimo.models.estimators.ridge import ValidatedRidge
from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.io.datasets import load_gfp
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


def _one_hot(n, d, counts, rng):
    X = np.zeros((n, d), np.uint8)
    for i, k in enumerate(counts):
        X[i, rng.choice(d, k, replace=False)] = 1
    return X


def _cases():
    """(X, y, solver kind, standardize): one per way ``ridge_solver`` can solve."""
    rng = np.random.default_rng(0)
    singles = _one_hot(400, 150, np.ones(400, int), rng)
    dense = rng.normal(size=(400, 6)).astype(np.float32) * 0.3 + 10  # far from zero: centred in float64
    cases = (("singles", singles, "diagonal", True),
             ("singles + dense", np.hstack([singles.astype(np.float32), dense]), "diagonal", True),
             ("multi", _one_hot(800, 600, rng.choice([1, 2], 800), rng), "sparse LU", True),
             ("multi raw", _one_hot(800, 600, rng.choice([1, 2], 800), rng), "sparse LU", False),
             ("crowded", _one_hot(400, 60, rng.choice([2, 3], 400), rng), "eigen", True),
             ("crowded, fewer rows", _one_hot(80, 200, np.full(80, 6), rng), "eigen", True),
             ("dense", dense, "EigenRidge", True),
             ("dense, fewer rows", rng.normal(size=(60, 150)).astype(np.float32), "EigenRidge", True))
    out = []
    for name, X, kind, standardize in cases:
        y = X @ rng.normal(size=X.shape[1]) + 3 * rng.normal(size=len(X))
        out.append(pytest.param(X, y, kind, standardize, id=name))
    return out


@pytest.mark.parametrize("X, y, kind, standardize", _cases())
def test_every_solver_equals_a_float64_ridge_and_chooses_the_same_alpha(X, y, kind, standardize):
    """Each path of the solver (diagonal, sparse LU, eigen on either side, dense) against scikit-learn's Ridge
    on the standardised float64 matrix: the same validation MSE for every alpha, the same alpha chosen, the same
    coefficients and intercept (1e-6 relative; 2e-5 on dense columns, whose Gram matrix is summed from float32
    products as before, to keep 1,280-wide embeddings fast)."""
    from mimo.models.estimators.ridge_solver import ridge_path

    n = len(y)
    train, valid = slice(n // 5, None), slice(None, n // 5)
    grid = (0.1, 1.0, 10.0, 100.0, 1000.0)
    given = X.copy()
    model = ValidatedRidge(alphas=grid, standardize=standardize).fit(X[train], y[train], X[valid], y[valid])
    np.testing.assert_array_equal(X, given)  # the caller's matrix is left as it was
    path, _ = ridge_path(X[train], y[train] - y[train].mean(), standardize)
    assert (path.block.kind if hasattr(path, "block") else type(path).__name__) == kind
    Xt = X[train].astype(np.float64)
    mean, scale = Xt.mean(0), (Xt.std(0) if standardize else np.ones(X.shape[1]))
    scale[scale == 0] = 1
    tried = list(model.valid_mse_)  # the grid, and the alphas added past its edge
    assert tried[:len(grid)] == list(grid)
    references = {a: Ridge(alpha=a, solver="cholesky").fit((Xt - mean) / scale, y[train]) for a in tried}
    mse = {a: np.mean((r.predict((X[valid] - mean) / scale) - y[valid]) ** 2) for a, r in references.items()}
    assert model.alpha_ == min(mse, key=mse.get)
    rtol = 2e-5 if kind == "EigenRidge" else 1e-6
    np.testing.assert_allclose(list(model.valid_mse_.values()), [mse[a] for a in tried], rtol=rtol / 10)
    best = references[model.alpha_]
    np.testing.assert_allclose(model.coef_, best.coef_ / scale, rtol=rtol, atol=rtol * np.abs(best.coef_).max())
    assert model.intercept_ == pytest.approx(best.intercept_ - (mean / scale) @ best.coef_, rel=rtol)
    order = np.random.default_rng(1).permutation(n)  # predictions do not depend on the rows around them
    np.testing.assert_array_equal(model.predict(X[order]), model.predict(X)[order])


def test_a_best_alpha_at_the_edge_of_the_grid_extends_it(monkeypatch):
    import mimo.models.estimators.ridge as ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 5))
    y = X @ np.ones(5)  # no noise: the smaller the penalty, the better
    model = ValidatedRidge(alphas=(10.0, 100.0, 1000.0)).fit(X[:400], y[:400], X[400:], y[400:])
    assert model.alphas_added_[:3] == pytest.approx([1.0, 0.1, 0.01])  # by the grid's own spacing
    noisy = y + rng.normal(scale=3.0, size=500)
    model = ValidatedRidge(alphas=(1e-3, 1e-2, 1e-1)).fit(X[:400], noisy[:400], X[400:], noisy[400:])
    grid = sorted(model.valid_mse_)
    assert model.alphas_added_ and grid[0] < model.alpha_ < grid[-1]  # found inside the extended grid
    assert "alpha_at_grid_edge" not in model.run_summary()
    monkeypatch.setattr(ridge, "MAX_EXTEND", 2)
    model = ValidatedRidge(alphas=(10.0, 100.0, 1000.0)).fit(X[:400], y[:400], X[400:], y[400:])
    assert model.alphas_added_ == pytest.approx([1.0, 0.1]) and model.alpha_ == pytest.approx(0.1)
    assert "edge of the alphas tried (0.1 to 1000)" in model.run_summary()["alpha_at_grid_edge"]
    assert ValidatedRidge(alphas=(5.0,)).fit(X, y).alphas_added_ == []  # one alpha: a choice, kept
    again = ValidatedRidge(alphas=model.alphas)
    again.load_fitted_state(model.fitted_state())
    assert again.valid_mse_ == model.valid_mse_ and again.alphas_added_ == model.alphas_added_


@pytest.mark.parametrize("factor", [1e31, 1e-31])
def test_labels_float32_cannot_hold_are_refused(factor):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.normal(size=50)
    with pytest.raises(ValueError, match=r"outside what float32 holds \(1e-30 to 1e\+30\); rescale them"):
        ValidatedRidge().fit(X, y * factor)
    tiny = ValidatedRidge().fit(X, y * 1e-20)  # small but held: standardised in float64, nothing lost
    assert spearman(tiny.predict(X), y) == pytest.approx(spearman(ValidatedRidge().fit(X, y).predict(X), y))
    assert np.all(ValidatedRidge().fit(X, np.zeros(50)).predict(X) == 0)  # constant labels: that constant


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


FORMS = {  # form: (matrix maker from rng and a size factor, the solver path it takes)
    "diagonal": (lambda rng, f: _one_hot(int(400 * f), 150, np.ones(int(400 * f), int), rng), "diagonal"),
    "diagonal + dense": (lambda rng, f: np.hstack([_one_hot(int(400 * f), 150, np.ones(int(400 * f), int), rng),
                                                   rng.normal(size=(int(400 * f), 4)) + 5]), "diagonal"),
    "sparse LU": (lambda rng, f: _one_hot(int(800 * f), 600, rng.choice([1, 2], int(800 * f)), rng), "sparse LU"),
    "eigen, columns": (lambda rng, f: _one_hot(int(400 * f), 60, rng.choice([2, 3], int(400 * f)), rng), "eigen"),
    "eigen, rows": (lambda rng, f: _one_hot(int(80 * f), 200, np.full(int(80 * f), 6), rng), "eigen"),
    "dense, primal": (lambda rng, f: rng.normal(size=(int(400 * f), 6)).astype(np.float32) * 0.3 + 10,
                      "EigenRidge"),
    "dense, dual": (lambda rng, f: rng.normal(size=(int(60 * f), 150)).astype(np.float32), "EigenRidge"),
}


@pytest.mark.slow
@pytest.mark.parametrize("form", FORMS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2 ** 20), alpha=st.floats(0.1, 1000.0), standardize=st.booleans(),
       size=st.floats(0.8, 1.25))
def test_each_solver_form_equals_sklearn_ridge_on_random_data(form, seed, alpha, standardize, size):
    """Property: at any alpha, with or without standardising, each form of ``ridge_solver`` gives scikit-learn's
    Ridge (cholesky, float64, on the same standardised columns): coefficients, intercept and predictions."""
    from mimo.models.estimators.ridge_solver import ridge_path

    rng = np.random.default_rng(seed)
    make, kind = FORMS[form]
    X = make(rng, size)
    y = X @ rng.normal(size=X.shape[1]) + rng.normal(size=len(X))
    path, _ = ridge_path(X, y - y.mean(), standardize)
    assert (path.block.kind if hasattr(path, "block") else type(path).__name__) == kind
    model = ValidatedRidge(alphas=(alpha,), standardize=standardize).fit(X, y, X[:5], y[:5])
    Xf = X.astype(np.float64)
    mean, scale = Xf.mean(0), (Xf.std(0) if standardize else np.ones(X.shape[1]))
    scale[scale == 0] = 1
    reference = Ridge(alpha=alpha, solver="cholesky").fit((Xf - mean) / scale, y)
    rtol = 2e-5 if kind == "EigenRidge" else 1e-6
    coef = reference.coef_ / scale
    np.testing.assert_allclose(model.coef_, coef, rtol=rtol, atol=rtol * np.abs(coef).max())
    assert model.intercept_ == pytest.approx(reference.intercept_ - mean @ coef, rel=rtol, abs=rtol)
    np.testing.assert_allclose(model.predict(X), reference.predict((Xf - mean) / scale), rtol=rtol,
                               atol=rtol * np.abs(y).max())


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.tuples(st.integers(-3, 3), st.floats(-1e3, 1e3)), min_size=0, max_size=40))
def test_spearman_is_scipys_with_ties_averaged_and_none_where_undefined(values):
    """Property: ``spearman`` is Pearson on average ranks (ties share theirs), as scipy computes it; None for
    fewer than 2 rows or a constant input, never NaN."""
    import pandas as pd

    a = np.array([v[0] for v in values], np.float64)  # few distinct values: many ties
    b = np.array([v[1] for v in values], np.float64)
    got = spearman(a, b)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        assert got is None
        return
    ranks = np.corrcoef(pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy())[0, 1]
    assert got == pytest.approx(ranks, abs=1e-12)
