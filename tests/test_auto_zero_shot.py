"""The zero-shot baseline beside every fit: a profile's dlogp, a zero-shot score, a scores file's columns."""
import json

import numpy as np
import pandas as pd

from mimo.models.report.summary import zero_shot_lines
from mimo.models.zero_shot import zero_shot_baselines, zero_shot_columns
from test_generalize import PARENT, write_proteingym_like
from test_profile import write_mpnn

BLOCKS = (("onehot-sites", "onehot", 0, 2, ("0", "1")), ("profile-p", "profile", 2, 5, ("dlogp", "p_A", "covered")),
          ("zs", "zeroshot", 5, 6, ("score",)), ("scores-s", "scores", 6, 8, ("avg_score", "covered")),
          ("aaprops", "aaprops", 8, 9, None))


def test_zero_shot_columns_are_dlogp_score_and_the_scores_files_columns():
    assert zero_shot_columns(BLOCKS) == [("profile-p", "dlogp", 2), ("zs", "score", 5), ("scores-s", "avg_score", 6)]
    assert zero_shot_columns(BLOCKS[:1] + BLOCKS[4:]) == []


def test_zero_shot_spearman_on_the_rows_and_whether_the_model_beats_it():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    X = rng.normal(size=(200, 9))
    X[:, 2] = y + rng.normal(0, 0.3, 200)  # a good profile
    X[:, 5] = -y  # a zero-shot score of the wrong sign
    noisy = y + rng.normal(0, 1.0, 200)
    z = zero_shot_baselines(X, y, noisy, BLOCKS)
    by = {c["block"]: c for c in z["columns"]}
    assert z["rows"] == 200 and 0.5 < z["model_spearman"] < 0.8
    assert by["profile-p"]["spearman"] > 0.9 and not by["profile-p"]["beaten"]
    assert by["zs"]["spearman"] == -1.0 and by["zs"]["beaten"]
    lines = zero_shot_lines({"zero_shot": z, "evaluation": {"kind": "cv"}})
    assert lines[0].startswith("zero-shot baseline on the same 200 out-of-fold rows: profile-p:dlogp 0.9")
    assert len(lines) == 2 and lines[1].startswith("warning: the model (0.") and "profile-p:dlogp alone" in lines[1]
    assert zero_shot_baselines(X, y, noisy, BLOCKS[:1]) is None and zero_shot_lines({}) == []


def test_fit_and_cv_report_the_profiles_zero_shot_spearman_on_the_same_rows(tmp_path, cli):
    write_proteingym_like(tmp_path / "assay.csv")
    write_mpnn(tmp_path / "p.npz", parent=PARENT)
    for model in ("aaprops", f"profile:{tmp_path / 'p.npz'}"):
        cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", model, "--cache", tmp_path / "c", "--quiet")
    for extra in ((), ("--cv", "fold_modulo_5")):
        out = tmp_path / f"run{len(extra)}"
        result = cli("fit", "ridge", "--dataset", "assay", "--features", "aaprops+profile-p", "--cache", tmp_path / "c",
                     "--out", out, *extra)
        metrics = json.loads((out / "metrics.json").read_text())
        z = metrics["zero_shot"]
        table = pd.read_csv(out / "predictions.csv")
        held = table[table["split"] == ("oof" if extra else "test")]
        assert z["rows"] == len(held) == metrics["test"]["n"]
        assert z["model_spearman"] == metrics["test"]["spearman"]
        assert [c["column"] for c in z["columns"]] == ["dlogp"] and -1 <= z["columns"][0]["spearman"] <= 1
        assert f"zero-shot baseline on the same {len(held)}" in result.output
    plain = cli("fit", "ridge", "--dataset", "assay", "--features", "aaprops", "--cache", tmp_path / "c",
                "--out", tmp_path / "plain")
    assert "zero-shot" not in plain.output
    assert "zero_shot" not in json.loads((tmp_path / "plain" / "metrics.json").read_text())
