"""The Gaussian-process head (`mimo fit gp`): kernels, marginal likelihood, posterior, saving, bad input."""
import json

import gpytorch
import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.utils.estimator_checks import parametrize_with_checks

from mimo.models.estimators.gp.regressor import GaussianProcessRegressor
from mimo.models.data import feature_blocks
from mimo.models.estimators.gp.kernels import (PROFILE_COLUMNS, HammingKernel, RbfKernel, SiteKernel,
                                    score_column)
from mimo.models.estimators.gp.posterior import GpModel, cholesky, negative_mll
from mimo.models.estimators.gp.targets import NormalScores, Standardised, label_nll, label_std
from mimo.models.estimators.registry import load_model, save_model

PROFILE_NAMES = ("dlogp", "entropy", "wt_logp", "mt_logp") + PROFILE_COLUMNS
FAST = {"steps": 30, "threads": 1}


def smooth_data(n: int, seed: int = 0, low: float = -3.0, high: float = 3.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(low, high, size=(n, 2)).astype(np.float32)
    y = np.sin(X[:, 0]) + 0.5 * np.cos(2 * X[:, 1]) + 0.1 * rng.normal(size=n)
    return X, y


def site_data(n: int, sites: int = 15, seed: int = 0, positions: bool = False):
    """Single substitutions: one-hot (substitution and site columns) beside a profile block with the profile
    featurizer's columns; labels follow the profile's log-odds and a smooth function of the site. With
    ``positions`` the one-hot block names its columns (``3A``, ``3``), so the head adds a position kernel."""
    rng = np.random.default_rng(seed)
    site, new = rng.integers(0, sites, n), rng.integers(0, 20, n)
    onehot = np.zeros((n, sites * 21), np.float32)
    onehot[np.arange(n), site * 20 + new] = 1
    onehot[np.arange(n), sites * 20 + site] = 1
    p = rng.dirichlet(np.full(20, 0.5), size=sites)[site]
    mt, wt = np.log(p[np.arange(n), new]), np.log(p.max(axis=1))
    profile = np.column_stack([mt - wt, -(p * np.log(p)).sum(axis=1), wt, mt, p]).astype(np.float32)
    X = np.hstack([onehot, profile])
    y = 0.8 * (mt - wt) + np.sin(site / 2.0) + 0.2 * rng.normal(size=n)
    names = tuple(f"{i}{a}" for i in range(sites) for a in "ACDEFGHIKLMNPQRSTVWY") + tuple(map(str, range(sites)))
    blocks = (("onehot-sites", "onehot", 0, onehot.shape[1], names if positions else None),
              ("profile-test", "profile", onehot.shape[1], X.shape[1], PROFILE_NAMES))
    return X, y, blocks


@pytest.fixture(scope="module")
def fitted_smooth():
    X, y = smooth_data(150)
    Xv, yv = smooth_data(60, seed=1)
    return GaussianProcessRegressor(target="raw", **FAST).fit(X, y, Xv, yv), (X, y, Xv, yv)


def test_recovers_a_smooth_function_far_better_than_the_mean(fitted_smooth):
    model, (_, y, Xv, yv) = fitted_smooth
    mse = np.mean((model.predict(Xv) - yv) ** 2)
    assert mse < 0.1 * np.mean((y.mean() - yv) ** 2)
    summary = model.run_summary()["gp"]
    assert summary["valid"]["rows"] == 60 and summary["valid"]["spearman"] > 0.9
    assert np.isfinite(summary["valid"]["nll"])
    assert summary["neg_mll_per_row"]["best"] < summary["neg_mll_per_row"]["first"]  # the steps improved it


def test_predictive_std_grows_away_from_the_data_and_includes_the_noise(fitted_smooth):
    model, _ = fitted_smooth
    near = np.array([[0.0, 0.0], [1.0, -1.0]], np.float32)
    far = np.array([[30.0, 30.0]], np.float32)
    _, std_near = model.predict(near, return_std=True)
    mean_far, std_far = model.predict(far, return_std=True)
    hyper = model.hyperparameters()
    assert np.all(std_near >= model.target_.std * np.sqrt(hyper["noise"]) - 1e-9)  # a measurement carries the noise
    assert std_far[0] > 2 * std_near.max()
    # far from every training row: back to the prior (the head models standardised labels here)
    y_std = model.target_.std
    assert std_far[0] == pytest.approx(y_std * np.sqrt(hyper["kernels"][0]["scale"] + hyper["noise"]), rel=1e-3)
    assert mean_far[0] == pytest.approx(model.target_.inverse(hyper["mean"]["value"]), abs=1e-3)
    np.testing.assert_allclose(model.predict_std(near), std_near)
    np.testing.assert_allclose(model.predict_members(near)[:, 0], model.predict(near))


def test_save_and_load_give_the_same_predictions(tmp_path, fitted_smooth):
    model, (_, _, Xv, _) = fitted_smooth
    again = load_model(save_model(model, tmp_path / "model.npz"))
    assert type(again) is GaussianProcessRegressor and again.get_params() == model.get_params()
    for a, b in zip(model.predict(Xv, return_std=True), again.predict(Xv, return_std=True)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert again.run_summary() == json.loads(json.dumps(model.run_summary()))


def test_a_saved_run_holds_its_one_hot_rows_as_indices_and_predicts_the_same(tmp_path):
    X, y, blocks = site_data(1500, sites=60, positions=True)
    model = GaussianProcessRegressor(blocks=blocks, steps=0, threads=1).fit(X, y)
    path = save_model(model, tmp_path / "model.npz")
    assert path.stat().st_size < X.nbytes / 8  # dense float32 rows would take X.nbytes (7.5 MB)
    again = load_model(path)
    for a, b in zip(model.predict(X[:200], return_std=True), again.predict(X[:200], return_std=True)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_cholesky_adds_jitter_only_where_rounding_needs_it():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 3))
    singular = A @ A.T  # rank 3: a factorisation fails without jitter
    L = cholesky(singular)
    np.testing.assert_allclose(L @ L.T, singular, atol=1e-5)
    well = singular + np.eye(6)
    np.testing.assert_allclose(cholesky(well), np.linalg.cholesky(well), rtol=1e-12)  # no jitter added
    with pytest.raises(ValueError, match="not positive definite") as caught:
        cholesky(-np.eye(3))
    assert "\n" not in str(caught.value)


def test_normal_scores_are_a_monotone_map_with_a_proper_density():
    rng = np.random.default_rng(0)
    y = np.r_[rng.normal(size=60), rng.normal(4, 0.2, size=30), [1.0, 1.0, 1.0]]  # bimodal, with ties
    warp = NormalScores.fit(y)
    z = warp.forward(y)
    assert np.all(np.diff(z[np.argsort(y)]) >= 0) and len(np.unique(z[y == 1.0])) == 1   # ties share a score
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.1
    np.testing.assert_allclose(warp.inverse(z), y)
    assert np.all(np.diff(warp.inverse(np.linspace(-6, 6, 101))) > 0)  # strictly monotone, also beyond the data
    # the labels' density is the normal one of their scores times the warp's slope: d/dy Phi(forward(y))
    labels = np.unique(y)
    points = np.r_[labels[0] - 1.0, (labels[1:] + labels[:-1]) / 2, labels[-1] + 1.0]
    step = 1e-6 * np.r_[1.0, np.diff(labels), 1.0]
    numeric = (norm.cdf(warp.forward(points + step)) - norm.cdf(warp.forward(points - step))) / (2 * step)
    density = np.exp(-label_nll(warp, points, np.zeros_like(points), np.ones_like(points)))
    np.testing.assert_allclose(density, numeric, rtol=1e-4, atol=1e-12)
    assert isinstance(NormalScores.fit(np.array([1.0, 2.0, 2.0])), Standardised)  # too few labels to warp


def test_normal_scores_make_the_fit_depend_on_the_labels_ranks_only():
    X, y = smooth_data(80)
    Xv, _ = smooth_data(30, seed=1)
    plain = GaussianProcessRegressor(**FAST).fit(X, y)
    squashed = GaussianProcessRegressor(**FAST).fit(X, np.exp(3 * y))  # the same ranking of the labels
    np.testing.assert_array_equal(np.argsort(plain.predict(Xv)), np.argsort(squashed.predict(Xv)))
    raw = GaussianProcessRegressor(target="raw", **FAST).fit(X, np.exp(3 * y))
    assert raw.hyperparameters()["units"] == "standardised labels"


def test_inducing_rows_equal_the_exact_posterior_with_every_row_and_come_close_with_fewer(tmp_path):
    X, y = smooth_data(120)
    Xv, yv = smooth_data(50, seed=1)
    exact = GaussianProcessRegressor(**FAST).fit(X, y)
    every = GaussianProcessRegressor(max_exact_rows=100, inducing_rows=120, **FAST).fit(X, y)
    fewer = GaussianProcessRegressor(max_exact_rows=100, inducing_rows=40, **FAST).fit(X, y)
    assert every.run_summary()["gp"]["posterior"] == "inducing"
    mean, std = exact.predict(Xv, return_std=True)
    mean_every, std_every = every.predict(Xv, return_std=True)
    np.testing.assert_allclose(mean_every, mean, atol=1e-3)
    np.testing.assert_allclose(std_every, std, atol=1e-3)
    assert np.corrcoef(fewer.predict(Xv), mean)[0, 1] > 0.95
    again = load_model(save_model(fewer, tmp_path / "model.npz"))
    np.testing.assert_allclose(again.predict(Xv, return_std=True)[1], fewer.predict(Xv, return_std=True)[1])


def _gpytorch_twin(model: GpModel, X: np.ndarray, y: np.ndarray):
    """gpytorch's own ExactGP with the same kernels, mean and likelihood, on the raw feature rows."""
    class Twin(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(y), model.likelihood)
            self.mean_module = model.mean_module
            self.covar_module = gpytorch.kernels.AdditiveKernel(*model.kernels)

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    return Twin()


def test_marginal_likelihood_and_its_gradient_equal_gpytorchs():
    X, y, blocks = site_data(80, positions=True)
    model = GaussianProcessRegressor(blocks=blocks, steps=3, threads=1).fit(X, y).model_
    kinds = [type(k.base_kernel).__name__ for k in model.kernels]
    assert kinds == ["HammingKernel", "PositionKernel", "SiteKernel", "RbfKernel"]
    without = GaussianProcessRegressor(blocks=blocks, steps=0, positions=False, threads=1).fit(X, y).model_
    assert "PositionKernel" not in [type(k.base_kernel).__name__ for k in without.kernels]
    z = torch.as_tensor((y - y.mean()) / y.std())
    rows = model.prepare(X)
    ours = negative_mll(model, model.bases(rows, rows), rows, z)
    ours.backward()
    ours_grad = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    twin = _gpytorch_twin(model, X, z.numpy())
    twin.train()
    with gpytorch.settings.max_cholesky_size(10_000):
        theirs = -gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, twin)(twin(*twin.train_inputs), z)
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-8)
    for name, parameter in model.named_parameters():
        np.testing.assert_allclose(ours_grad[name].numpy(), parameter.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=name)


def test_exact_posterior_equals_gpytorchs_prediction():
    X, y, blocks = site_data(90)
    model = GaussianProcessRegressor(blocks=blocks, steps=5, threads=1).fit(X[:60], y[:60])
    gp = model.model_
    z = model.target_.forward(y[:60])  # the normal scores of the labels, the head's default
    twin = _gpytorch_twin(gp, X[:60], z)
    twin.eval()
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000), gpytorch.settings.fast_pred_var(False):
        predictive = gp.likelihood(twin(torch.as_tensor(X[60:], dtype=torch.float64)))
    mean, std = model.predict(X[60:], return_std=True)
    latent_mean, latent_std = predictive.mean.numpy(), predictive.variance.sqrt().numpy()
    np.testing.assert_allclose(mean, model.target_.inverse(latent_mean), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(std, label_std(model.target_, latent_mean, latent_std), rtol=1e-5)  # L-BFGS drives the noise low: K is ill-conditioned


def test_kernels_are_what_they_say():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(7, 4))
    rbf = RbfKernel(np.arange(4)).double()
    rbf.fit_inputs(dense)
    rbf.lengthscale = 0.7
    reference = gpytorch.kernels.RBFKernel().double()
    reference.lengthscale = 0.7 * np.sqrt(4)  # ours: the mean over columns of standardised squared differences
    z = torch.as_tensor((dense - dense.mean(0)) / dense.std(0))
    with torch.no_grad():
        np.testing.assert_allclose(rbf(torch.as_tensor(dense)).to_dense(), reference(z).to_dense(), rtol=1e-6)

    onehot = (rng.random((6, 12)) < 0.3).astype(np.float64)
    hamming = HammingKernel(np.arange(12)).double()
    hamming.lengthscale = 2.0
    differ = (onehot[:, None, :] != onehot[None, :, :]).sum(axis=2)
    with torch.no_grad():
        np.testing.assert_allclose(hamming(torch.as_tensor(onehot)).to_dense(), np.exp(-differ / 2.0), rtol=1e-12)

    p = rng.dirichlet(np.ones(20), size=5)
    p[4] = 0  # the parent: no distribution
    logp = rng.normal(size=5)
    rows = np.column_stack([logp, p])
    site = SiteKernel(np.arange(1, 21), 0).double()
    site.site_lengthscale = [0.5, 2.0]
    kermut = np.sqrt(0.5 * ((np.sqrt(p[:, None, :]) - np.sqrt(p[None, :, :])) ** 2).sum(axis=2))  # Kermut's form
    expected = np.exp(-kermut / 0.5 - np.abs(logp[:, None] - logp[None, :]) / 2.0)
    with torch.no_grad():
        got = site(torch.as_tensor(rows)).to_dense().numpy()
        diag = site(torch.as_tensor(rows), diag=True).numpy()
    np.testing.assert_allclose(got[:4, :4], expected[:4, :4], rtol=1e-7, atol=1e-12)
    assert np.all(got[4] == 0) and np.all(got[:, 4] == 0)
    np.testing.assert_allclose(diag, [1, 1, 1, 1, 0])


def test_site_kernel_and_profile_mean_carry_signal_to_unseen_substitutions():
    X, y, blocks = site_data(260, seed=3)
    train, test = np.arange(200), np.arange(200, 260)
    model = GaussianProcessRegressor(blocks=blocks, **FAST).fit(X[train], y[train])
    kinds = [k["kernel"] for k in model.hyperparameters()["kernels"]]
    assert kinds == ["HammingKernel", "SiteKernel", "RbfKernel"]
    assert model.hyperparameters()["mean"]["column"] == blocks[1][2]  # dlogp, the profile's first column
    onehot_only = GaussianProcessRegressor(blocks=blocks[:1], **FAST).fit(X[train][:, :blocks[0][3]], y[train])
    rho = np.corrcoef(model.predict(X[test]), y[test])[0, 1]
    assert rho > np.corrcoef(onehot_only.predict(X[test][:, :blocks[0][3]]), y[test])[0, 1] + 0.1


def test_blocks_from_a_manifest_and_the_mean_column():
    manifest = {"features": "onehot-sites+profile-x+scores-z", "parts": [
        {"features": "onehot-sites", "kind": "onehot", "dim": 3, "columns": ["0A", "1C", "0"]},
        {"features": "profile-x", "kind": "profile", "dim": 2, "columns": ["dlogp", "covered"]},
        {"features": "scores-z", "kind": "scores", "dim": 2, "columns": ["avg_score", "covered"]}]}
    blocks = feature_blocks(manifest)
    assert blocks == (("onehot-sites", "onehot", 0, 3, ("0A", "1C", "0")),
                      ("profile-x", "profile", 3, 5, ("dlogp", "covered")),
                      ("scores-z", "scores", 5, 7, ("avg_score", "covered")))
    assert score_column(blocks) == 5            # a zero-shot score before a profile's dlogp
    assert score_column(blocks[:2]) == 3
    assert score_column(blocks[:1]) is None
    full = feature_blocks({"features": "onehot-full", "kind": "onehot", "model": "onehot-full", "dim": 42, "columns": None})
    assert full[0][4][:2] == ("0A", "0C") and full[0][4][20:23] == ("0*", "1A", "1C")  # the featurizer's order
    assert feature_blocks({"features": "esm2", "kind": "esm", "dim": 8, "columns": None}) == (("esm2", "esm", 0, 8, None),)


def test_refit_keeps_the_hyperparameters_of_the_training_rows():
    X, y = smooth_data(100)
    first = GaussianProcessRegressor(**FAST).fit(X[:70], y[:70])
    refit = first.clone(**first.refit_params()).fit(X, y)
    assert refit.steps == 0 and refit.run_summary()["gp"]["optimized_on_rows"] == 0
    for a, b in zip(first.hyperparameters()["kernels"], refit.hyperparameters()["kernels"]):
        assert a["lengthscale"] == pytest.approx(b["lengthscale"])
    assert refit.run_summary()["gp"]["training_rows"] == 100


def test_parameters_follow_scikit_learn_conventions():
    model = GaussianProcessRegressor(steps=7, dense="linear")
    params = model.get_params()
    assert params["steps"] == 7 and params["dense"] == "linear" and params["blocks"] == ()
    assert set(params) == set(GaussianProcessRegressor.param_defaults())
    other = model.clone(steps=9)
    assert other.get_params() == {**params, "steps": 9} and model.steps == 7
    assert not hasattr(model, "model_")  # nothing fitted in __init__
    X, y = smooth_data(30)
    for bad in ({"steps": -1}, {"dense": "cubic"}, {"threads": 0}, {"start": {"x": [np.nan]}}):
        with pytest.raises(ValueError) as caught:
            GaussianProcessRegressor(**bad).fit(X, y)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("change, message", [
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), y), "NaN"),
    (lambda X, y: (X, np.r_[y[:-1], np.inf]), "infinity"),
    (lambda X, y: (X, y[:-1]), "inconsistent numbers of samples"),
])
def test_bad_rows_are_refused(change, message):
    X, y = smooth_data(30)
    with pytest.raises(ValueError, match=message):
        GaussianProcessRegressor(**FAST).fit(*change(X, y))


def test_bad_blocks_and_features_are_one_line(fitted_smooth):
    X, y = smooth_data(30)
    problems = [
        (GaussianProcessRegressor(blocks=(("a", "onehot", 0, 1, None),), **FAST), "describe 1 columns"),
        (GaussianProcessRegressor(blocks=(("a", "onehot", 1, 2, None),), **FAST), "side by side"),
        (GaussianProcessRegressor(mean="score", **FAST), "needs a zero-shot block"),
        (GaussianProcessRegressor(blocks=(("profile-p", "profile", 0, 2, ("dlogp", "x")),), **FAST), "p_A"),
    ]
    for model, message in problems:
        with pytest.raises(ValueError, match=message) as caught:
            model.fit(X, y)
        assert "\n" not in str(caught.value)
    model, _ = fitted_smooth
    with pytest.raises(ValueError, match="expecting 2 features"):
        model.predict(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.array([[np.nan, 0]], np.float32))


@pytest.fixture(scope="module")
def profile_cache(tmp_path_factory, cli):
    """A small assay of single substitutions with a per-site profile, cached as one-hot sites and profile."""
    folder = tmp_path_factory.mktemp("assay")
    rng = np.random.default_rng(0)
    parent = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 24))
    probs = rng.dirichlet(np.full(20, 0.5), size=len(parent))
    np.save(folder / "profile.npy", probs)
    rows = []
    for position, new in {(int(rng.integers(len(parent))), str(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"))))
                          for _ in range(200)}:
        if new == parent[position]:
            continue
        score = np.log(probs[position, "ACDEFGHIKLMNPQRSTVWY".index(new)]) + rng.normal(scale=0.3)
        rows.append(f"{parent[position]}{position + 1}{new},{parent[:position]}{new}{parent[position + 1:]},{score}")
    (folder / "assay.csv").write_text("mutant,mutated_sequence,DMS_score\n" + "\n".join(rows) + "\n")
    (folder / "parent.fasta").write_text(f">parent\n{parent}\n")
    cache = folder / "cache"
    for featurizer in ("onehot-sites", f"profile:{folder / 'profile.npy'}"):
        cli("embed", "build", "--input", folder / "assay.csv", "--parent", folder / "parent.fasta", "--model",
            featurizer, "--cache", cache)
    return cache


def test_cli_fits_a_gp_on_every_cached_featurizer(tmp_path, cli, profile_cache):
    result = cli("fit", "gp", "--dataset", "assay", "--cache", profile_cache, "--cv", "5", "--steps", "5",
                 "--out", tmp_path / "run", "--quiet")
    assert "pooled out-of-fold Spearman" in result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["features"] == "onehot-sites+profile-profile" and metrics["test"]["spearman"] > 0.3
    model = load_model(tmp_path / "run")
    assert [k["kernel"] for k in model.hyperparameters()["kernels"]] == ["HammingKernel", "PositionKernel",
                                                                         "SiteKernel", "RbfKernel"]
    assert model.hyperparameters()["mean"]["kind"] == "linear in column"  # the profile's dlogp


def test_cli_refuses_a_bad_option_in_one_line(cli, profile_cache):
    result = cli("fit", "gp", "--dataset", "assay", "--cache", profile_cache, "--steps", "-1", ok=False)
    assert result.exit_code == 2 and "--steps" in result.output
    result = cli("fit", "gp", "--dataset", "assay", "--cache", profile_cache, "--features", "onehot-sites",
                 "--mean", "score", "--cv", "5", ok=False)
    assert result.exit_code == 1 and "needs a zero-shot block" in result.output
    assert len(result.output.strip().splitlines()) == 1


@parametrize_with_checks([GaussianProcessRegressor(steps=5, threads=1)])
def test_scikit_learn_checks(estimator, check):
    check(estimator)


def test_intervals_are_made_on_the_normal_scores_and_stay_inside_the_measured_range():
    X, y, blocks = site_data(400, positions=True)
    y = 1.0 / (1.0 + np.exp(-3.0 * (y - np.median(y))))  # saturating: most labels near 0 or 1, as a bimodal assay
    model = GaussianProcessRegressor(blocks=blocks, steps=10, threads=1).fit(X[:300], y[:300])
    lower, upper = model.predict_interval(X[300:])
    median = model.predict(X[300:])
    assert np.all(lower >= y[:300].min()) and np.all(upper <= y[:300].max())
    assert np.all(lower <= median) and np.all(median <= upper)
    assert np.max(np.abs((upper - median) - (median - lower))) > 0.05  # asymmetric near the ends of the range
    assert np.mean((lower <= y[300:]) & (y[300:] <= upper)) >= 0.85
    mean, std = model.predict_latent(X[300:])
    np.testing.assert_allclose(model.target_.inverse(mean), median)
    z = model.to_latent(y[300:])  # a conformal scale calibrated there: wider intervals for scale > 1
    wider = model.predict_interval(X[300:], scale=2.0)
    assert np.all(wider[0] <= lower + 1e-12) and np.all(wider[1] >= upper - 1e-12) and np.isfinite(z).all()


def test_priors_hold_the_hyperparameters_near_their_start_on_few_rows():
    X, y, blocks = site_data(25, positions=True)

    def positive(model) -> np.ndarray:
        hyper = model.hyperparameters()
        values = [hyper["noise"]] + [v for k in hyper["kernels"] for name, v in k.items()
                                     if name == "scale" or name.endswith("lengthscale")]
        return np.log(values)

    start = positive(GaussianProcessRegressor(blocks=blocks, steps=0, threads=1).fit(X, y))

    def drift(model) -> float:
        return float(np.abs(positive(model) - start).sum())

    free = GaussianProcessRegressor(blocks=blocks, steps=30, prior_sd=0, threads=1).fit(X, y)
    held = GaussianProcessRegressor(blocks=blocks, steps=30, prior_sd=0.3, threads=1).fit(X, y)
    assert drift(held) < 0.5 * drift(free)
    assert held.run_summary()["gp"]["neg_mll_per_row"]["best"] < held.history_[0]
