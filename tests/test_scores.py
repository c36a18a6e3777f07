"""External variant scores (``scores:PATH[:COL,...]``) as features and as zero-shot scores."""
import json

import numpy as np
import pandas as pd
import pytest

from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers import featurizer_from_manifest, get_featurizer
from mimo.pipeline.io.datasets import load_dataset
from test_generalize import write_proteingym_like
from test_profile import PROTEINGYM, one_error_line



def write_scores(tmp_path, frame, key="mutated_sequence", drop=0, **extra):
    """A scores file for ``frame``'s variants (less the last ``drop``): a model score, the label and folds (never
    features), and ``extra`` columns."""
    rng = np.random.default_rng(1)
    table = pd.DataFrame({key: frame[key], "model_score": frame["DMS_score"] + rng.normal(0, 0.5, len(frame)),
                          "DMS_score": frame["DMS_score"], "fold_random_5": frame["fold_random_5"], **extra})
    table = table.iloc[:len(table) - drop].sample(frac=1, random_state=0)
    table.to_csv(tmp_path / "model.csv", index=False)
    return table


def test_scores_join_on_sequence_or_mutant_and_never_take_the_label(tmp_path):
    frame = write_proteingym_like(tmp_path / "assay.csv")
    dataset = load_dataset(tmp_path / "assay.csv")
    for key in ("mutated_sequence", "mutant"):
        table = write_scores(tmp_path, frame, key, other=np.arange(len(frame), dtype=float))
        featurizer = get_featurizer(f"scores:{tmp_path / 'model.csv'}", dataset)
        assert featurizer.columns == ["model_score", "other", "covered"] and featurizer.name == "scores-model"
        [(rows, x)] = list(featurizer.embed(dataset.frame))
        by_key = table.set_index(key)
        np.testing.assert_allclose(x[:, 0], by_key.loc[frame[key], "model_score"], rtol=1e-6)
        assert (x[:, -1] == 1).all()
    named = get_featurizer(f"scores:{tmp_path / 'model.csv'}:model_score", dataset)
    assert named.columns == ["model_score", "covered"] and named.name == "scores-model-model_score"


def test_missing_variants_are_refused_or_marked_without_signal(tmp_path, cli):
    frame = write_proteingym_like(tmp_path / "assay.csv")
    write_scores(tmp_path, frame, drop=3)
    spec = f"scores:{tmp_path / 'model.csv'}:model_score"
    refused = cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", spec, "--cache", tmp_path / "c",
                  "--quiet", ok=False)
    first = frame["mutant"].iloc[-3]
    assert refused.exit_code == 1 and one_error_line(refused.output)
    assert f"3 of {len(frame)} variants have no scores in the file (first: {first!r}); --allow-missing" in refused.output
    result = cli("score", "--input", tmp_path / "assay.csv", "--model", spec, "--allow-missing", "--cache",
                 tmp_path / "c", "--quiet", "--out", tmp_path / "s.csv")
    assert "3 labelled variants not covered by the file: left out" in result.output
    assert f"over {len(frame) - 3} variants" in result.output
    scores = pd.read_csv(tmp_path / "s.csv").set_index("mutations")
    missing = frame["mutant"].iloc[-3:]
    assert (scores.loc[missing, "score"] == 0).all() and not scores.loc[missing, "covered"].any()
    manifest = json.loads((tmp_path / "c" / "assay" / "scores-model-model_score" / "manifest.json").read_text())
    assert manifest["columns"] == ["model_score", "covered"] and manifest["allow_missing"] is True
    rebuilt = featurizer_from_manifest(manifest, load_dataset(tmp_path / "assay.csv").parent)
    assert rebuilt.name == "scores-model-model_score" and rebuilt.allow_missing


def test_bad_score_columns_are_one_line_errors(tmp_path):
    frame = write_proteingym_like(tmp_path / "assay.csv")
    dataset = load_dataset(tmp_path / "assay.csv")
    write_scores(tmp_path, frame, note=["fine"] * len(frame))
    with pytest.raises(DataError, match=r"column 'note' holds 'fine', not a finite number \(282 such rows; name the"):
        get_featurizer(f"scores:{tmp_path / 'model.csv'}", dataset)
    assert get_featurizer(f"scores:{tmp_path / 'model.csv'}:model_score", dataset).dim == 2
    values = np.ones(len(frame))
    values[5] = np.nan
    write_scores(tmp_path, frame, gappy=values)
    with pytest.raises(DataError, match=r"model.csv:\d+: column 'gappy' holds '', not a finite number \(1 such"):
        get_featurizer(f"scores:{tmp_path / 'model.csv'}:gappy", dataset)
    with pytest.raises(DataError, match="no column 'absent'"):
        get_featurizer(f"scores:{tmp_path / 'model.csv'}:absent", dataset)
    table = write_scores(tmp_path, frame)
    pd.concat([table, table.iloc[:1].assign(model_score=table["model_score"].iloc[0] * (1 + 1e-7))]).to_csv(tmp_path / "model.csv", index=False)
    assert get_featurizer(f"scores:{tmp_path / 'model.csv'}", dataset).dim == 2  # rounding noise: one variant
    pd.concat([table, table.iloc[:1].assign(model_score=99.0)]).to_csv(tmp_path / "model.csv", index=False)
    with pytest.raises(DataError, match="the same variant as line 2 with other scores"):
        get_featurizer(f"scores:{tmp_path / 'model.csv'}", dataset)


def test_proteingyms_own_tranceptevee_scores_give_its_published_zero_shot_figure(tmp_path, cli):
    """Pilin holds singles only, so its 922 variants are the whole assay ProteinGym scored: TranceptEVE L 0.075."""
    assay = "A0A1I9GEU1_NEIME_Kennouche_2019"
    result = cli("score", "--input", PROTEINGYM / f"{assay}.csv", "--model",
                 f"scores:{PROTEINGYM / 'zero_shot' / 'TranceptEVE' / f'{assay}.csv'}:avg_score", "--cache",
                 tmp_path / "c", "--quiet")
    published = pd.read_csv(PROTEINGYM / "anchors" / "zero_shot_DMS_substitutions_Spearman_DMS_level.csv")
    figure = published.set_index("DMS ID").loc[assay, "TranceptEVE L"]
    assert f"zero-shot Spearman of scores-{assay}-avg_score {figure:.3f} over 922 variants" in result.output


def test_predict_new_variants_with_their_scores_file(tmp_path, cli):
    from test_generalize import PARENT

    frame = write_proteingym_like(tmp_path / "assay.csv")
    write_scores(tmp_path, frame, "mutant")
    spec = f"scores:{tmp_path / 'model.csv'}:model_score"
    cli("fit", "ridge", "--input", tmp_path / "assay.csv", "--features", f"onehot-sites+{spec}".replace(
        spec, "scores-model-model_score"), "--cache", tmp_path / "c", ok=False)  # a name needs its cache first
    cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", spec, "--cache", tmp_path / "c", "--quiet")
    cli("fit", "ridge", "--dataset", "assay", "--features", "scores-model-model_score", "--cache", tmp_path / "c",
        "--out", tmp_path / "run", "--quiet")
    new = [f"{PARENT[0]}1A:{PARENT[2]}3G", f"{PARENT[1]}2L:{PARENT[4]}5W"]
    (tmp_path / "new.txt").write_text("\n".join(new) + "\n")
    pd.DataFrame({"mutant": new, "model_score": [5.0, -5.0]}).to_csv(tmp_path / "new_scores.csv", index=False)
    result = cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", "--scores",
                 tmp_path / "new_scores.csv")
    table = pd.read_csv(__import__("io").StringIO(result.output.split("\n", 0)[0][result.output.index("id,"):]))
    assert table["prediction"].iloc[0] > table["prediction"].iloc[1]  # the new file's scores were used
    without = cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", ok=False)
    assert without.exit_code == 1 and "no scores in the file" in without.output
    assert "give --scores a file" in without.output and "--allow-missing" not in without.output  # predict has no such option
    stray = cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", "--scores",
                tmp_path / "missing.csv", ok=False)
    assert "--scores" in stray.output.strip().splitlines()[-1]
