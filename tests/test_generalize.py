"""Features that reach unseen substitutions, ProteinGym's cross-validation protocol, zero-shot scores."""
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import mimo
from mimo.cli import main
from models.metrics import spearman
from pipeline.aaprops import COLUMNS, PROPERTIES, AminoAcidPropertyFeaturizer

PARENT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTAEW"


def cli(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def write_proteingym_like(path, seed=0):
    """Singles of PARENT with ProteinGym's columns and fold schemes; scores from residue properties plus a
    per-site term, so that features describing substitutions carry over to unseen positions."""
    rng = np.random.default_rng(seed)
    site = rng.normal(0, 0.5, len(PARENT))
    rows = []
    for i, wt in enumerate(PARENT):
        for new in rng.choice(list("ACDEFGHIKLMNPQRSTVWY".replace(wt, "")), 6, replace=False):
            hydro = PROPERTIES[new][0] - PROPERTIES[wt][0]
            score = -abs(hydro) / 3 - (new == "P") + site[i] + rng.normal(0, 0.2)
            seq = PARENT[:i] + new + PARENT[i + 1:]
            rows.append((f"{wt}{i + 1}{new}", seq, score, rng.integers(5), i % 5, min(4, i * 5 // len(PARENT))))
    frame = pd.DataFrame(rows, columns=["mutant", "mutated_sequence", "DMS_score", "fold_random_5", "fold_modulo_5",
                                        "fold_contiguous_5"])
    frame.to_csv(path, index=False)
    return frame


def test_aaprops_describes_each_substitution():
    featurizer = AminoAcidPropertyFeaturizer("MKTAYIAK")
    x = featurizer.encode(["MKTAYIAR", "MKTAYIAK", "MPTAYIAR"])
    assert x.shape == (3, len(COLUMNS)) and not x[1].any()  # the parent is all zeros
    column = {c: j for j, c in enumerate(COLUMNS)}
    assert x[0, column["from_K"]] == 1 and x[0, column["to_R"]] == 1 and x[0, column["substitutions"]] == 1
    scale = np.std([v[0] for v in PROPERTIES.values()])
    assert x[0, column["delta_hydropathy"]] == pytest.approx((-4.5 - -3.9) / scale, rel=1e-5)
    np.testing.assert_allclose(x[2], x[0] + featurizer.encode(["MPTAYIAK"])[0], rtol=1e-6, atol=1e-6)  # a sum


def test_cross_validation_pools_out_of_fold_predictions_as_proteingym(tmp_path):
    frame = write_proteingym_like(tmp_path / "assay.csv")
    for model in ("onehot-sites", "aaprops"):
        cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", model, "--cache", tmp_path / "c", "--quiet")
    result = cli("fit", "ridge", "--dataset", "assay", "--features", "onehot-sites+aaprops", "--cv", "fold_modulo_5",
                 "--cache", tmp_path / "c", "--out", tmp_path / "cv")
    assert "pooled out-of-fold Spearman" in result.output
    metrics = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    predictions = pd.read_csv(tmp_path / "cv" / "predictions.csv")
    assert len(predictions) == len(frame) and predictions["prediction"].notna().all()
    assert metrics["test"]["spearman"] == pytest.approx(spearman(predictions["y"], predictions["prediction"]))
    assert [f["fold"] for f in metrics["per_fold"]] == ["0", "1", "2", "3", "4"]
    assert metrics["test"]["spearman"] > 0.4  # properties carry over to positions never measured
    # every held-out position was unseen by the model that predicted it: one-hot sites gave it nothing
    assert (predictions["unseen_sites"] == 1).all() and predictions["no_signal"].sum() == 0
    # fold k's predictions are those of a ridge fitted on the other folds (alpha chosen on the next fold)
    data = mimo.load_cv_data(tmp_path / "c", "assay", "onehot-sites+aaprops", "fold_modulo_5")
    folds = data.split
    test, valid = folds == "2", folds == "3"
    train = ~test & ~valid
    X, y = data.rows.embeddings, data.rows.labels
    chosen = mimo.ValidatedRidge().fit(X[train], y[train], X[valid], y[valid])
    final = mimo.ValidatedRidge(alphas=(chosen.alpha_,)).fit(X[train | valid], y[train | valid], X[valid], y[valid])
    by_id = predictions.set_index("id")["prediction"]
    np.testing.assert_allclose(by_id.loc[data.rows.ids[test]], final.predict(X[test]), rtol=1e-6)
    again = cli("fit", "ridge", "--dataset", "assay", "--features", "onehot-sites", "--cv", "5", "--cache",
                tmp_path / "c", "--out", tmp_path / "cv5")
    assert "random_5, 5 folds" in again.output
    bad = cli("fit", "ridge", "--dataset", "assay", "--features", "aaprops", "--split", "fold_modulo_5", "--cache",
              tmp_path / "c", ok=False)
    assert bad.exit_code == 1 and "use --cv fold_modulo_5" in bad.output
    variants = tmp_path / "v.txt"
    variants.write_text("K2R\nK2P\n")
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", "--run", tmp_path / "cv", "--variants", variants).stdout))
    assert np.isfinite(out["prediction"]).all()
