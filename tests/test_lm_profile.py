"""Profiles a language model computes of the parent (``profile:MODEL[:METHOD]``): the model's own softmax over the
20 amino acids, featurized as a profile file is, computed once and reused, recomputed when the weights change."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers import featurizer_from_manifest, get_featurizer
from mimo.pipeline.featurizers.profile import COLUMNS
from mimo.pipeline.featurizers.zeroshot import EsmZeroShot, UniRepZeroShot
from mimo.pipeline.io.variants import AMINO_ACIDS
from mimo.pipeline.io.variantset import VariantSet
from mimo.pipeline.testing import save_random_esm2
from test_generalize import PARENT, write_proteingym_like

VARIANTS = [PARENT, PARENT[:4] + "W" + PARENT[5:], PARENT[:4] + "W" + PARENT[5:9] + "C" + PARENT[10:],
            PARENT[:-1] + "A", PARENT[:2] + "*" + PARENT[3:]]


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """Each test keeps its computed profiles in its own folder."""
    monkeypatch.setenv("MIMO_PROFILES", str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.fixture
def passes(monkeypatch):
    """Counts of the models' forward passes (calls, and rows: one per parent copy) during a test."""
    count = {"calls": 0, "rows": 0}

    def counted(original):
        def wrapper(self, batch, *args):
            count["calls"] += 1
            count["rows"] += len(batch)
            return original(self, batch, *args)
        return wrapper

    monkeypatch.setattr(EsmZeroShot, "log_probs", counted(EsmZeroShot.log_probs))
    monkeypatch.setattr(UniRepZeroShot, "logits", counted(UniRepZeroShot.logits))
    return count


def holder(parent=PARENT, name="p"):
    return VariantSet(name, pd.DataFrame(), parent)


def esm_softmax_20(checkpoint, parent, masked: bool) -> np.ndarray:
    """The model's distribution over the 20 amino acids at each site, straight from fair-esm's forward."""
    from mimo.pipeline.featurizers.esm_load import load_esm

    net, alphabet, _ = load_esm(weights=checkpoint)
    _, _, tokens = alphabet.get_batch_converter()([("p", parent)])
    columns = [alphabet.get_idx(a) for a in AMINO_ACIDS]
    sites = torch.arange(len(parent))
    if masked:  # copy i has site i masked
        tokens = tokens.repeat(len(parent), 1)
        tokens[sites, sites + 1] = alphabet.mask_idx
    with torch.no_grad():
        logits = net(tokens)["logits"]
    logits = logits[sites, sites + 1] if masked else logits[0, 1:len(parent) + 1]
    return torch.softmax(logits[:, columns].double(), -1).numpy()


@pytest.mark.parametrize("method", ["wt", "masked"])
def test_esm_profile_is_the_models_softmax_over_the_20_computed_in_one_pass_or_one_per_site(tiny_esm, passes,
                                                                                          method):
    spec = f"profile:{tiny_esm}" + ("" if method == "wt" else ":masked")
    featurizer = get_featurizer(spec, holder())
    assert featurizer.name == f"profile-esm2_t2_tiny-{method}" and featurizer.columns == COLUMNS
    expected = esm_softmax_20(tiny_esm, PARENT, method == "masked")
    np.testing.assert_allclose(featurizer.probs, expected, atol=1e-6)
    assert passes["rows"] == (1 if method == "wt" else len(PARENT))  # masked: every site masked once, batched
    assert passes["calls"] == 1
    manifest = featurizer.manifest()
    assert manifest["kind"] == "profile-lm" and manifest["lm_method"] == method
    assert manifest["weights"] == str(tiny_esm.resolve()) and manifest["weights_fingerprint"]
    stored = json.loads(featurizer.stored.path.with_suffix(".json").read_text())
    assert stored["parent_sha256"] == manifest["parent_sha256"] and stored["method"] == method


def test_masked_batches_change_nothing_and_dlogp_of_singles_is_esms_own_zero_shot_score(tiny_esm, passes):
    from mimo.pipeline.featurizers.lm_profile import compute_profile, parse_spec

    spec = parse_spec(f"{tiny_esm}:masked")
    small_batches = compute_profile(spec, PARENT, "cpu", "float32", toks_per_batch=100)  # 2 masked copies a batch
    assert passes["calls"] == (len(PARENT) + 1) // 2 and passes["rows"] == len(PARENT)
    featurizer = get_featurizer(f"profile:{tiny_esm}:masked", holder())
    np.testing.assert_allclose(small_batches, featurizer.probs, atol=1e-6)
    singles = [PARENT[:i] + a + PARENT[i + 1:] for i in (0, 9, len(PARENT) - 1) for a in "AW" if a != PARENT[i]]
    wt = get_featurizer(f"profile:{tiny_esm}", holder())
    frame = pd.DataFrame({"aligned": singles, "sequence": singles})
    for method, feature in (("masked-marginal", featurizer), ("wt-marginal", wt)):
        scorer = get_featurizer(f"{tiny_esm}-{method}", holder(), device="cpu")  # `mimo score`'s ESM scores
        scores = np.concatenate([x for _, x in scorer.embed(frame)])[:, 0]
        np.testing.assert_allclose(feature.encode(singles)[:, 0], scores, rtol=1e-4, atol=1e-5)


def test_masked_differs_from_wt_and_features_equal_the_profile_file_featurizer(tiny_esm, tmp_path):
    wt = get_featurizer(f"profile:{tiny_esm}:wt", holder())
    masked = get_featurizer(f"profile:{tiny_esm}:masked-marginal", holder())  # the zero-shot method's name too
    assert np.abs(wt.probs - masked.probs).max() > 0.01
    for featurizer in (wt, masked):
        np.save(tmp_path / "same.npy", featurizer.probs)  # the same probabilities as a file the user brings
        from_file = get_featurizer(f"profile:{tmp_path / 'same.npy'}", holder())
        np.testing.assert_allclose(featurizer.encode(VARIANTS), from_file.encode(VARIANTS), rtol=1e-6, atol=1e-7)
        scalars = get_featurizer(f"profile:{tiny_esm}:{featurizer.spec.method}", holder(), profile_columns="scalars")
        assert scalars.name == featurizer.name + "-scalars"
        np.testing.assert_array_equal(scalars.encode(VARIANTS), featurizer.encode(VARIANTS)[:, [0, 1, 2, 3, -1]])


def test_unirep_profile_is_the_next_residue_softmax_and_agrees_with_llr_where_nothing_follows(passes):
    import mimo.pipeline.featurizers.unirep as unirep

    featurizer = get_featurizer("profile:unirep64", holder())
    assert featurizer.name == "profile-unirep64" and passes["calls"] == 1 and passes["rows"] == 1
    with np.load(unirep.unirep_weights_path(64)) as arrays:
        w, b = arrays["dense.w"], arrays["dense.b"]
    net = unirep.UniRepFeaturizer(64, "cpu").net
    tokens = torch.tensor([[unirep.START] + [unirep.UNIREP_INDEX[a] for a in PARENT]])
    with torch.no_grad():
        logits = net(tokens)[0].double().numpy() @ w + b  # after the start token and after each residue
    chosen = logits[:len(PARENT), [unirep.UNIREP_INDEX[a] - 1 for a in AMINO_ACIDS]]
    expected = np.exp(chosen - chosen.max(1, keepdims=True))
    np.testing.assert_allclose(featurizer.probs, expected / expected.sum(1, keepdims=True), atol=1e-5)
    # at the last site nothing follows: llr (a mean over the L residues) is dlogp / L exactly
    last = [PARENT[:-1] + a for a in "ACDW"]
    llr = UniRepZeroShot(64, PARENT, "cpu")
    expected_llr = llr.log_likelihood(last) - llr.log_likelihood([PARENT])[0]
    np.testing.assert_allclose(featurizer.encode(last)[:, 0] / len(PARENT), expected_llr, rtol=1e-4, atol=1e-6)
    with pytest.raises(DataError, match="UniRep reads left to right.*takes no method"):
        get_featurizer("profile:unirep64:masked", holder())


def test_a_second_build_reuses_the_stored_profile(tiny_esm, passes, tmp_path, store):
    write_proteingym_like(tmp_path / "assay.csv")
    from mimo.pipeline.io.datasets import load_dataset

    first = load_dataset(tmp_path / "assay.csv")
    featurizer = get_featurizer(f"profile:{tiny_esm}:masked", first)
    build_cache(first, featurizer, tmp_path / "c", progress=False)
    assert featurizer.stored.computed and passes["rows"] == len(PARENT)
    other = VariantSet("other", first.frame.iloc[::2].reset_index(drop=True), PARENT)  # same parent, other dataset
    again = get_featurizer(f"profile:{tiny_esm}:masked", other)
    build_cache(other, again, tmp_path / "c", progress=False)
    assert not again.stored.computed and passes["rows"] == len(PARENT)  # no forward pass
    assert again.stored.path == featurizer.stored.path and len(list(store.glob("*.npy"))) == 1
    rebuilt = featurizer_from_manifest(featurizer.manifest(), PARENT)  # `mimo predict`'s way back
    np.testing.assert_array_equal(rebuilt.encode(VARIANTS), featurizer.encode(VARIANTS))
    assert passes["rows"] == len(PARENT) and rebuilt.name == featurizer.name
    shorter = get_featurizer(f"profile:{tiny_esm}:masked", holder(PARENT[:-3]))  # another parent: computed
    assert shorter.stored.computed and passes["rows"] == 2 * len(PARENT) - 3


def test_weights_changed_since_the_profile_was_stored_are_recomputed_and_the_features_cache_refuses_to_mix(
        tiny_esm, passes, tmp_path):
    from mimo.pipeline.io.datasets import load_dataset

    write_proteingym_like(tmp_path / "assay.csv")
    dataset = load_dataset(tmp_path / "assay.csv")
    checkpoint = shutil.copy(tiny_esm, tmp_path / "esm2_t2_tiny.pt")
    before = get_featurizer(f"profile:{checkpoint}", dataset)
    build_cache(dataset, before, tmp_path / "c", progress=False)
    manifest = before.manifest()
    save_random_esm2(checkpoint, 2, 32, 4, seed=7)  # retrained: same path, other weights
    after = get_featurizer(f"profile:{checkpoint}", dataset)
    assert after.stored.computed and passes["calls"] == 2 and after.stored.path != before.stored.path
    np.testing.assert_allclose(after.probs, esm_softmax_20(checkpoint, PARENT, False), atol=1e-6)
    assert np.abs(after.probs - before.probs).max() > 0.01
    with pytest.raises(DataError, match="weights file changed since the cache was started"):
        build_cache(dataset, after, tmp_path / "c", progress=False)
    with pytest.raises(DataError, match="weights of esm2_t2_tiny changed since the cache was built"):
        featurizer_from_manifest(manifest, PARENT)


def test_a_stored_profile_that_no_longer_matches_its_record_is_computed_again(tiny_esm, passes, capsys):
    first = get_featurizer(f"profile:{tiny_esm}", holder())
    np.save(first.stored.path, first.probs[::-1])  # damaged or edited by hand
    second = get_featurizer(f"profile:{tiny_esm}", holder())
    assert second.stored.computed and passes["calls"] == 2 and "does not match its record" in capsys.readouterr().err
    np.testing.assert_allclose(second.probs, first.probs, atol=1e-12)


def test_bad_specs_and_parents_are_refused_in_one_line(tiny_esm, passes, tmp_path):
    long_parent = (PARENT * 25)[:1100]
    with pytest.raises(DataError, match="1100 residues, more than ESM's 1022-residue window; mimo neither truncates"):
        get_featurizer(f"profile:{tiny_esm}:masked", holder(long_parent))
    assert passes["calls"] == 0
    for spec, message in ((f"profile:{tiny_esm}:mutant-marginal", "depends on each variant"),
                          (f"profile:{tiny_esm}:sideways", "ESM profile methods are wt"),
                          (f"profile:{tmp_path / 'nothing.npy'}:masked", "no profile file has that name"),
                          (f"profile:{tmp_path / 'gone.pt'}", "weights file not found")):
        with pytest.raises(DataError, match=message) as error:
            get_featurizer(spec, holder())
        assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="--profile-offset and --profile-alphabet read a profile file"):
        get_featurizer("profile:unirep64", holder(), profile_offset=2)
    with pytest.raises(DataError, match="letters UniRep has no token for"):
        get_featurizer("profile:unirep64", holder(PARENT[:5] + "*" + PARENT[6:]))


def test_cli_scores_and_builds_the_computed_profile(tiny_esm, tmp_path, cli):
    from conftest import refused

    write_proteingym_like(tmp_path / "assay.csv")
    common = ("--input", tmp_path / "assay.csv", "--cache", tmp_path / "c", "--quiet")
    scored = cli("score", "--model", "profile:esm2_t6_8M_UR50D:masked", "--weights", tiny_esm, *common)
    assert "zero-shot Spearman" in scored.output
    manifest = json.loads((tmp_path / "c" / "assay" / "profile-esm2_t2_tiny-masked" / "manifest.json").read_text())
    assert manifest["lm_spec"] == f"{tiny_esm.resolve()}:masked" and manifest["profile_fingerprint"]
    for model in ("onehot-sites", f"profile:{tiny_esm}"):
        cli("embed", "build", "--model", model, *common)
    fit = cli("fit", "ridge", "--dataset", "assay", "--features", "onehot-sites+profile-esm2_t2_tiny-wt", "--cache",
              tmp_path / "c", "--out", tmp_path / "run")
    assert "Spearman" in fit.output
    # a variant not in the cache is featurized through the stored profile; the weights check compares the model's
    # fingerprint with the manifest's (it read the stored .npy's before, and refused every new variant)
    double = ":".join(f"{PARENT[i]}{i + 1}{'G' if PARENT[i] != 'G' else 'A'}" for i in (0, 1))
    (tmp_path / "new.txt").write_text(double + "\n")
    out = tmp_path / "new.csv"
    cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", "--out", out)
    assert pd.read_csv(out)["in_cache"].tolist() == [False]
    refused(cli("embed", "build", "--model", "profile:unirep64:masked", *common, ok=False), "takes no method")
    refused(cli("embed", "build", "--model", "profile:unirep64", "--weights", tiny_esm, *common, ok=False),
            "--weights goes with an ESM model")
    refused(cli("embed", "build", "--model", f"profile:{tiny_esm}", "--profile-offset", "1", *common, ok=False),
            "--profile-offset")
