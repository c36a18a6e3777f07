"""Intervals inside what the assay can measure, and a head made in Python fitting as `mimo fit` fits it."""
import json

import numpy as np
import pandas as pd

import mimo
from conftest import SHORT_PARENT, fit_on_half_the_singles, run_cli


def test_a_gp_runs_intervals_are_made_on_its_scale_and_stay_inside_the_labels(tmp_path):
    left_out = fit_on_half_the_singles(tmp_path, "gp", "--steps", "5")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["uncertainty"]["interval"]["space"] == "latent"
    table = pd.read_csv(tmp_path / "run" / "predictions.csv")
    train = table[table["split"] == "train"]
    low, high = train["y"].min(), train["y"].max()
    assert (table["lower"] <= table["prediction"] + 1e-9).all() and (table["prediction"] <= table["upper"] + 1e-9).all()
    assert (table["lower"] >= low - 1e-9).all() and (table["upper"] <= high + 1e-9).all()
    below, above = table["prediction"] - table["lower"], table["upper"] - table["prediction"]
    assert (np.abs(below - above) > 1e-3).mean() > 0.5  # mapped back through the normal scores: asymmetric
    # new variants through the run: the same scale, the same bounds
    (tmp_path / "new.txt").write_text("\n".join(left_out[:30]) + "\n")
    run_cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", "--out", tmp_path / "p.csv")
    new = pd.read_csv(tmp_path / "p.csv")
    assert (new["lower"] >= low - 1e-9).all() and (new["upper"] <= high + 1e-9).all()


def test_a_gp_made_in_python_gets_the_datas_blocks(tmp_path):
    fit_on_half_the_singles(tmp_path, "ridge")
    data = mimo.load_split_data(tmp_path / "cache", "singles", "onehot-sites", "random")
    run = mimo.fit_run(mimo.GaussianProcessRegressor(steps=5), data, tmp_path / "gp")
    assert run.metrics["params"]["blocks"]  # one kernel per featurizer, as `mimo fit gp` gives it
    assert json.loads((tmp_path / "gp" / "metrics.json").read_text())["params"]["blocks"][0][0] == "onehot-sites"
