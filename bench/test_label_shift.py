"""The label-shift bench's splits and interval methods (bench/label_shift.py) on small synthetic rows."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench.label_shift import Fitted, make_splits, normalised, oracle_width, weighted_conformal


def fitted_on(labels: np.ndarray, parts: np.ndarray) -> Fitted:
    data = SimpleNamespace(rows=SimpleNamespace(labels=labels), mask=lambda part: parts == part)
    return Fitted(data, None, None, None, None, np.full(len(labels), 0.5))


def test_label_split_puts_the_upper_half_in_test_and_valid_below_it():
    labels = np.random.default_rng(1).normal(size=200)
    positions = [{i % 17 + 1} for i in range(200)]
    splits = make_splits(labels, positions)
    label = splits["label"]
    assert (label == "test").sum() == 100 and labels[label == "test"].min() > labels[label != "test"].max()
    assert 5 <= (label == "valid").sum() <= 15
    held = np.array([p % 5 == 0 for (p,) in positions])
    assert (splits["position"][held] == "test").all() and not (splits["position"][~held] == "test").any()


def test_weighted_conformal_with_equal_weights_is_split_conformal_and_opens_for_heavy_rows():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=300)
    parts = np.array(["valid"] * 100 + ["test"] * 200, dtype=object)
    fitted, mean = fitted_on(labels, parts), np.zeros(300)
    lower, upper = weighted_conformal(fitted, mean, np.ones(300))
    assert np.allclose(upper, normalised(fitted, mean, np.ones(300))[1])
    odds = np.ones(300)
    odds[150:] = 10.0  # these rows weigh more than 5% of the total: no valid quantile bounds them
    lower, upper = weighted_conformal(fitted, mean, odds)
    assert np.isinf(upper[150:]).all() and np.isfinite(upper[:150]).all()


def test_oracle_width_is_the_narrowest_constant_interval_covering_the_level():
    y, mean = np.arange(10.0), np.zeros(10)
    width = oracle_width(y, mean, 0.9)
    assert np.mean(np.abs(y - mean) <= width / 2) >= 0.9 and np.mean(np.abs(y - mean) <= width / 2 - 0.5) < 0.9
