"""Neural heads, MIMO routing, the shared training loop, and their run directories."""
import json
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mimo.models.data import load_split_data
from mimo.models.estimators.neural.modules import ConvHead, GlobalEpistasisHead, MimoHead, MlpHead
from mimo.models.metrics import interval_metrics, interval_scale, uncertainty_metrics
from mimo.models.estimators.neural.regressors import CnnRegressor, GlobalEpistasisRegressor, MimoRegressor, MlpRegressor
from mimo.models.estimators.registry import load_model
from mimo.models.runs.fit import fit_run
from mimo.models.estimators.neural.training import MIN_BATCH, Schedule, TrainConfig
from mimo.models.estimators.neural.routing import OPEN, MutationGroups, mutation_routed_epoch, random_routed_epoch, routed_validation
from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.io.datasets import load_gfp
from mimo.pipeline.featurizers.onehot import OneHotFeaturizer


def test_groups_on_tape_counts_put_the_parent_with_the_singles():
    counts = np.array([0] + [1] * 877 + [2] * 10433 + [3] * 10135)
    groups = MutationGroups.from_counts(counts)
    assert groups.ranges == [(0, 1), (2, 2), (3, OPEN)]
    assert groups.labels() == ["0-1", "2", "3+"]
    assert [len(r) for r in groups.member_rows(counts)] == [878, 10433, 10135]


def test_many_counts_become_contiguous_ranges_of_similar_size():
    counts = np.repeat(np.arange(1, 15), [400, 5000, 5000, 3800, 2900, 1800, 1100, 600, 280, 140, 50, 20, 10, 2])
    groups = MutationGroups.from_counts(counts, max_members=3)
    assert len(groups) == 3 and groups.ranges[0][0] == 0 and groups.ranges[-1][1] == OPEN
    sizes = [len(r) for r in groups.member_rows(counts)]
    assert sum(sizes) == len(counts) and max(sizes) < 2.5 * min(sizes)


def test_group_spec_parsing_and_errors():
    assert MutationGroups.parse("0-1,2,3-").ranges == [(0, 1), (2, 2), (3, OPEN)]
    with pytest.raises(ValueError, match="must be increasing"):
        MutationGroups.parse("2,1")
    with pytest.raises(ValueError, match="bad mutation group"):
        MutationGroups.parse("a-b")
    with pytest.raises(ValueError, match="no rows with mutation counts 5"):
        MutationGroups.parse("1,5").member_rows(np.array([1, 1, 2]))


def test_routed_epoch_uses_all_of_smallest_group_repeated_and_fresh_draws_elsewhere():
    rows = [np.arange(0, 10), np.arange(10, 200), np.arange(200, 260)]
    plan = mutation_routed_epoch(rows, repeat=10, rng=np.random.default_rng(0))
    assert plan.shape == (100, 3)
    assert np.array_equal(np.bincount(plan[:, 0], minlength=10), np.full(10, 10))
    assert len(set(plan[:, 1])) == 100 and set(plan[:, 1]) <= set(rows[1])  # no repeats: group is large enough
    assert set(plan[:, 2]) == set(rows[2])                                     # 60 rows: each once, 40 drawn again
    other = mutation_routed_epoch(rows, repeat=10, rng=np.random.default_rng(1))
    assert set(other[:, 1]) != set(plan[:, 1])                                 # a fresh draw every epoch


def test_routed_validation_covers_every_row():
    rows = [np.arange(0, 3), np.arange(3, 10)]
    plan = routed_validation(rows)
    assert plan.shape == (7, 2) and set(plan[:, 0]) == {0, 1, 2} and list(plan[:, 1]) == list(range(3, 10))


def test_random_routing_permutes_each_batch_per_member():
    plan = random_routed_epoch(64, 3, batch_size=16, rho=0.0, batch_repetition=2, rng=np.random.default_rng(0))
    assert plan.shape == (128, 3)
    block = plan[:16]  # one step: two permuted copies of an 8-row base batch
    assert set(block[:8, 0]) == set(block[:8, 1]) == set(block[8:, 2]) and len(set(block[:, 0])) == 8
    assert not np.array_equal(block[:, 0], block[:, 1])
    same = random_routed_epoch(64, 3, batch_size=16, rho=1.0, batch_repetition=1, rng=np.random.default_rng(0))
    assert (same == same[:, :1]).all()


def test_picture_ticks_are_round_and_cover_the_range():
    from mimo.models.report.plots import round_ticks

    assert round_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert round_ticks(1, 40) == [10, 20, 30, 40]
    ticks = round_ticks(0.0123, 0.0871)
    assert ticks[0] >= 0.0123 and ticks[-1] <= 0.0871 and 3 <= len(ticks) <= 8


def test_head_shapes():
    x = torch.randn(5, 40)
    assert MlpHead(40)(x).shape == (5, 1)
    assert ConvHead(40, channels=(4,), kernel_size=3, stride=1, pool=2)(x).shape == (5, 1)
    mimo = MimoHead(40, members=3).eval()
    assert mimo(torch.randn(3, 5, 40)).shape == (5, 3)
    x = torch.randn(5, 40)
    torch.testing.assert_close(mimo.forward_shared(x), mimo(x.expand(3, 5, 40)))


def test_mimo_monotone_output_is_each_members_own_increasing_map():
    torch.manual_seed(0)
    head = MimoHead(6, members=2, input_hidden=4, shared=(8,), member_hidden=3, dropout=0.0, output="monotone")
    assert head.monotone.offset.shape == (2,) and head.monotone.heights.shape == (2, 3)
    with torch.no_grad():
        head.monotone.heights[1] += 3.0  # member 1's map only
    z = torch.linspace(-6, 6, 50).unsqueeze(1).expand(50, 2)
    y = head.monotone(z)
    assert (y[1:] >= y[:-1]).all() and (y[-1] > y[0]).all()
    assert (y[:, 1] - y[:, 0]).abs().max() > 1.0  # the members' maps differ
    bounded = head.monotone(torch.full((1, 2), 1e6)) - head.monotone(torch.full((1, 2), -1e6))
    torch.testing.assert_close(bounded[0], torch.nn.functional.softplus(head.monotone.heights).sum(-1))
    with pytest.raises(ValueError, match="output must be"):
        MimoHead(6, output="sigmoid")


def test_mimo_members_have_their_own_input_layers():
    torch.manual_seed(0)
    head = MimoHead(8, members=2, input_hidden=4, shared=(6,), member_hidden=3, dropout=0.0)
    x = torch.randn(2, 4, 8)
    # with member 1's input zeroed, member 1's input weights get no gradient; member 0's do
    x2 = x.clone()
    x2[1] = 0
    head(x2)[:, 0].sum().backward()
    assert head.in_weight.grad[1].abs().sum() == 0 and head.in_weight.grad[0].abs().sum() > 0


def test_interval_scale_covers_the_level_on_new_rows_like_the_calibration_rows():
    rng = np.random.default_rng(0)

    def draw(n):  # errors proportional to a std that is off by a factor of 3
        std = rng.uniform(0.1, 1.0, n)
        return rng.normal(0, 3 * std), np.zeros(n), std
    y, mean, std = draw(2000)
    scale = interval_scale(y, mean, std, level=0.9)
    assert interval_metrics(y, mean - scale * std, mean + scale * std)["coverage"] >= 0.9
    assert scale == pytest.approx(3 * 1.645, rel=0.1)  # the normal 90% quantile, times the factor
    y2, mean2, std2 = draw(20000)
    fresh = interval_metrics(y2, mean2 - scale * std2, mean2 + scale * std2)
    assert fresh["coverage"] == pytest.approx(0.9, abs=0.02)
    assert fresh["mean_width"] == pytest.approx(2 * scale * std2.mean())


def test_interval_widens_with_mutation_count_chosen_on_validation():
    from mimo.models.metrics import calibrate_interval, interval_bounds

    rng = np.random.default_rng(0)

    def draw(counts):  # errors grow in proportion to the mutation count; the spread knows nothing of it
        counts = np.asarray(counts)
        std = rng.uniform(0.1, 0.3, len(counts))
        return rng.normal(0, std * counts), np.zeros(len(counts)), std, counts
    y, mean, std, counts = draw(rng.integers(1, 4, 3000))          # validation: 1-3 mutations
    interval = calibrate_interval(y, mean, std, counts)
    assert interval["mutation_exponent"] >= 1.0
    ty, tmean, tstd, tcounts = draw(rng.integers(4, 12, 5000))     # test: 4-11, as TAPE's
    lower, upper = interval_bounds(tmean, tstd, interval, tcounts)
    assert interval_metrics(ty, lower, upper)["coverage"] >= 0.9
    flat = calibrate_interval(*draw(np.ones(3000, int))[:3])       # no counts: no exponent
    assert flat["mutation_exponent"] == 0.0


def test_uncertainty_metrics():
    y = np.array([0.0, 0.0, 0.0, 0.0])
    mean = np.array([0.1, 0.5, 1.0, 3.0])
    std = np.array([0.1, 0.2, 0.4, 1.0])
    u = uncertainty_metrics(y, mean, std)
    assert u["spearman_std_abs_error"] == pytest.approx(1.0)
    assert u["coverage_2std"] == 0.25
    assert u["mean_std"] == pytest.approx(0.425)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, small_gfp_dir):
    root = tmp_path_factory.mktemp("cache")
    ds = load_gfp(small_gfp_dir)
    build_cache(ds, OneHotFeaturizer.for_dataset(ds.parent, ds.frame["aligned"]), root, progress=False)
    return load_split_data(root, "gfp", "onehot", "tape")


FAST = dict(epochs=6, batch_size=32, patience=3, seed=0, device="cpu", min_steps=120)


@pytest.mark.parametrize("make", [
    lambda: MlpRegressor(hidden=(32,), **FAST),
    lambda: CnnRegressor(channels=(4,), hidden=(16,), **FAST),
    lambda: GlobalEpistasisRegressor(**FAST),
    lambda: MimoRegressor(input_hidden=16, shared=(32,), member_hidden=8, repeat=2, **FAST),
    lambda: MimoRegressor(routing="random", members=3, rho=0.5, batch_repetition=2, input_hidden=16, shared=(32,),
                          member_hidden=8, **FAST),
    lambda: MimoRegressor(routing="random", members=3, output="monotone", input_hidden=16, shared=(32,),
                          member_hidden=8, **FAST),
])
def test_fit_restores_best_epoch_writes_run_and_reloads(tmp_path, small_data, make):
    model = make()
    run = fit_run(model, small_data, tmp_path / "run")
    run_dir, metrics = run.directory, run.metrics
    history = metrics["history"]
    best = min(history, key=lambda h: h["valid_mse"])
    assert metrics["best_epoch"] == best["epoch"]
    assert metrics["valid"]["mse"] == pytest.approx(best["valid_mse"], rel=1e-5)  # best weights restored
    assert metrics["epochs_run"] == len(history) <= 6
    from mimo.models.report.plots import loss_curve_figure

    assert ElementTree.parse(run_dir / "loss_curve.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    lines = [line for line in loss_curve_figure(metrics).axes[0].get_lines() if len(line.get_xdata()) > 2]
    assert len(lines) == (3 if isinstance(model, MimoRegressor) else 2)  # one line per series
    assert all(len(line.get_xdata()) == len(history) for line in lines)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert {"train", "valid", "test", "history", "params"} <= set(saved)
    reloaded = load_model(run_dir)
    X = small_data.X("test")
    np.testing.assert_allclose(reloaded.predict(X), model.predict(X), rtol=1e-5, atol=1e-6)
    if isinstance(model, MimoRegressor):
        assert len(saved["members"]) == 3
        u = saved["uncertainty"]["test"]
        assert 0.0 <= u["coverage_2std"] <= 1.0 and u["mean_std"] > 0
        import pandas as pd
        predictions = pd.read_csv(run_dir / "predictions.csv")
        members = model.predict_members(small_data.rows.embeddings)
        np.testing.assert_allclose(predictions["prediction"], members.mean(axis=1), atol=1e-4)
        np.testing.assert_allclose(predictions["member_spread"], members.std(axis=1), atol=1e-4)
        np.testing.assert_allclose(predictions["sd"], (predictions["upper"] - predictions["lower"]) / (2 * 1.959964),
                                   rtol=1e-5)
        interval = saved["uncertainty"]["interval"]
        assert interval["level"] == 0.95 and interval["valid"]["coverage"] >= 0.95
        width = predictions["upper"] - predictions["lower"]
        expected = 2 * interval["scale"] * (predictions["member_spread"] + interval["offset"]) * np.maximum(
            predictions["n_mutations"], 1) ** interval["mutation_exponent"]
        plain = ~predictions["no_signal"]
        assert plain.sum() > 0 and (~plain).sum() > 0  # 601 GFP rows: some test substitutions never in train
        np.testing.assert_allclose(width[plain], expected[plain], rtol=1e-6, atol=1e-9)
        train_y = predictions["y"][predictions["split"] == "train"]  # no signal: the interval spans the labels
        assert (predictions["lower"][~plain] <= train_y.min()).all() and (predictions["upper"][~plain] >= train_y.max()).all()
        assert (predictions["unseen"][~plain] > 0).all() and (predictions["unseen"][predictions["split"] == "train"] == 0).all()


def test_same_seed_same_metrics(tmp_path, small_data):
    def run(seed, name):
        model = MimoRegressor(input_hidden=16, shared=(32,), member_hidden=8, repeat=2,
                              **{**FAST, "seed": seed})
        return fit_run(model, small_data, tmp_path / name).metrics
    a, b, c = run(0, "a"), run(0, "b"), run(1, "c")
    assert a["test"] == b["test"] and a["history"][-1]["train_loss"] == b["history"][-1]["train_loss"]
    assert a["test"] != c["test"]


def test_global_epistasis_output_is_monotone_in_the_latent_score():
    torch.manual_seed(0)
    head = GlobalEpistasisHead(5, components=3)
    with torch.no_grad():
        head.output.slopes.copy_(torch.tensor([[-2.0, 0.5, 3.0]]))
        head.output.heights.copy_(torch.tensor([[-1.0, 2.0, 0.1]]))
        head.latent.weight.copy_(torch.tensor([[1.0, 0, 0, 0, 0]]))
    x = torch.zeros(200, 5)
    x[:, 0] = torch.linspace(-10, 10, 200)
    y = head(x).squeeze(1)
    assert (y[1:] >= y[:-1]).all() and y[-1] > y[0]


def test_global_epistasis_loads_weights_saved_before_monotone_output():
    torch.manual_seed(0)
    head = GlobalEpistasisHead(5, components=3)
    with torch.no_grad():
        head.output.heights.add_(torch.tensor([[0.3, -0.2, 1.0]]))
    state = head.state_dict()
    old = {k.removeprefix("output."): v for k, v in state.items()}  # the earlier layout: on the head, 1-D/scalar
    old["offset"] = old["offset"].reshape(())
    old["heights"], old["slopes"], old["centers"] = (old[k].reshape(3) for k in ("heights", "slopes", "centers"))
    again = GlobalEpistasisHead(5, components=3)
    again.load_state_dict(old)
    x = torch.randn(7, 5)
    torch.testing.assert_close(again(x), head(x))


def test_global_epistasis_keeps_one_hot_inputs_unscaled():
    rng = np.random.default_rng(0)
    X = (rng.random((200, 12)) < 0.2).astype(np.float32)
    y = 1 + 2 / (1 + np.exp(-(X @ rng.normal(size=12))))
    model = GlobalEpistasisRegressor(**FAST).fit(X[:150], y[:150], X[150:], y[150:])
    assert (model.x_mean_ == 0).all() and (model.x_std_ == 1).all()
    dense = GlobalEpistasisRegressor(**FAST)
    dense.fit(X[:150] + 0.5 * rng.normal(size=(150, 12)), y[:150], X[150:], y[150:])
    assert not (dense.x_std_ == 1).all()


@pytest.mark.parametrize("head", ["mlp", "ge", "mimo", "cnn"])
def test_sparse_inputs_give_the_dense_outputs_and_gradients(head):
    """One-hot rows go through SparseRows (an embedding-bag sum): outputs and gradients equal the dense
    standardised product's."""
    from mimo.models.estimators.neural.modules import SparseRows

    rng = np.random.default_rng(0)
    X = (rng.random((40, 200)) < 0.02).astype(np.float32) * rng.choice([1.0, 2.5], (40, 200)).astype(np.float32)
    X[3] = 0  # a row without any non-zero
    mean, std = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1).astype(np.float32)
    sparse = SparseRows.from_numpy(X, mean, std)
    assert sparse is not None and sparse.index.shape[1] == (X != 0).sum(1).max()
    dense = torch.from_numpy((X - mean) / std)
    torch.manual_seed(0)
    module = {"mlp": lambda: MlpHead(200, (16, 8), dropout=0.0), "ge": lambda: GlobalEpistasisHead(200),
              "mimo": lambda: MimoHead(200, members=3, dropout=0.0),
              "cnn": lambda: ConvHead(200, (4, 6), kernel_size=5, hidden=(8,), dropout=0.0)}[head]()
    if head == "cnn":  # non-zeros at both edges: the convolution's zero padding
        X[0, [0, 1, 199]], X[1, 198] = 1.0, 2.5
        mean, std = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1).astype(np.float32)
        sparse, dense = SparseRows.from_numpy(X, mean, std), torch.from_numpy((X - mean) / std)
    grads = []
    for x in (dense, sparse):
        module.zero_grad()
        if head == "mimo":
            rows = torch.from_numpy(rng.permutation(40)[:30].reshape(3, 10)) if x is dense else rows
            out = module(x[rows]).sum() + module.forward_shared(x).sum()
        else:
            out = module(x).sum()
        out.backward()
        grads.append((out.detach(), [p.grad.clone() for p in module.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-4)
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert SparseRows.from_numpy(np.ones((5, 200), np.float32), np.zeros(200, np.float32),
                                 np.ones(200, np.float32)) is None  # dense rows stay dense


def test_column_moments_match_numpy_and_sparse_rows_judge_every_row():
    from mimo.models.estimators.neural.modules import SparseRows, sparse_enough
    from mimo.models.estimators.neural.regressors import column_moments

    rng = np.random.default_rng(0)
    X = (rng.random((3000, 400)) < 0.01).astype(np.float32)
    X[:, :3] = rng.normal(1000.0, 0.01, (3000, 3))  # a large mean over a small spread: needs two passes
    mean, std = column_moments(X)
    reference = X.astype(np.float64)
    np.testing.assert_allclose(mean, reference.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, reference.std(axis=0), rtol=1e-3)
    assert sparse_enough(X) and SparseRows.from_numpy(X, mean, std) is not None
    X[1234] = 1.0  # one dense row that a sample of rows misses: still judged
    assert not sparse_enough(X) and SparseRows.from_numpy(X, mean, std) is None
    assert SparseRows.from_numpy(rng.normal(size=(50, 100)).astype(np.float32), mean[:100], std[:100]) is None


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 100_000), epochs=st.integers(1, 100), batch_size=st.integers(1, 1024),
       min_steps=st.integers(0, 10_000))
def test_schedule_makes_min_steps_at_any_size_and_plain_epochs_without_it(rows, epochs, batch_size, min_steps):
    config = TrainConfig(epochs=epochs, batch_size=batch_size, min_steps=min_steps)
    schedule = Schedule.of(config, rows)
    per_epoch = -(-rows // schedule.batch)
    assert schedule.rounds == epochs and schedule.steps >= min_steps
    assert min(MIN_BATCH, batch_size) <= schedule.batch <= batch_size
    assert schedule.round_steps >= per_epoch  # a round sees every row at least once
    if min_steps == 0:  # the plain epoch schedule
        assert schedule.batch == batch_size and schedule.round_steps == per_epoch
    elif schedule.batch > min(MIN_BATCH, batch_size) and schedule.batch < batch_size:
        assert schedule.steps <= min_steps + 2 * epochs  # shrunk just enough


def test_few_rows_train_for_min_steps_and_refit_keeps_the_step_count():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = X @ rng.normal(size=5)
    model = MlpRegressor(hidden=(16,), epochs=10, patience=10, min_steps=300, device="cpu").fit(X, y)
    schedule = model.result_.schedule
    assert len(model.result_.history) == 10 and schedule.steps >= 300 and schedule.batch == MIN_BATCH
    refit = model.clone(**model.refit_params())
    best = model.result_.best_epoch
    again = Schedule.of(refit.train_config, 120)
    assert again.rounds == best and again.steps == best * schedule.round_steps
    plain = MlpRegressor(hidden=(16,), epochs=10, min_steps=0, device="cpu").fit(X, y)
    assert plain.result_.schedule.batch == plain.batch_size and plain.result_.schedule.steps == 10  # a step an epoch


@pytest.mark.slow
@pytest.mark.parametrize("make", [MimoRegressor, MlpRegressor])
def test_default_heads_fit_a_linear_problem(make):
    """400 rows x 12 features, y = Xw, 3-fold cross-validation: the defaults train to convergence on a few
    hundred rows (MIMO scored R^2 0.37 when training was scheduled by epochs)."""
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 12)).astype(np.float32)
    y = X @ rng.normal(size=12)
    scores = cross_val_score(make(device="cpu"), X, y, cv=3)
    assert scores.min() >= 0.95


def test_mimo_models_normal_scores_and_maps_each_member_back_to_labels():
    """MIMO on the training labels' normal scores (the GP's map): on skewed labels the members' outputs come
    back in label units, ranked as the labels, and a saved state predicts the same."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = np.exp(1.5 * (X @ rng.normal(size=6)) / np.sqrt(6))  # skewed, positive
    small = dict(input_hidden=8, shared=(16,), member_hidden=4, epochs=10, min_steps=300, device="cpu",
                 target="normal-scores")
    model = MimoRegressor(**small).fit(X[:240], y[:240])
    assert model.target_.kind == "normal-scores"
    members = model.predict_members(X[240:])
    assert members.shape == (60, 3) and members.min() > 0 and members.max() < 2 * y.max()
    assert spearmanr(members.mean(axis=1), y[240:]).statistic > 0.8
    assert MimoRegressor(**{**small, "target": "raw"}).fit(X[:240], y[:240]).target_ is None
    again = MimoRegressor(**small)
    again.load_fitted_state(model.fitted_state())
    np.testing.assert_allclose(again.predict_members(X[240:]), members, rtol=1e-6)
