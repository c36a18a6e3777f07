"""Per-site profiles a user brings (ProteinMPNN .npz, .npy matrices, tables, MSAs) as features and zero-shot scores."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mimo.models.metrics import spearman
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers import featurizer_from_manifest, get_featurizer
from mimo.pipeline.featurizers.profile import COLUMNS, PROB_FLOOR, ProfileFeaturizer
from mimo.pipeline.io.msa import sequence_weights
from mimo.pipeline.io.profiles import PROTEINMPNN_ALPHABET, place_profile, read_profile
from mimo.pipeline.io.variants import AMINO_ACIDS
from mimo.pipeline.io.variantset import VariantSet
from test_generalize import PARENT, write_proteingym_like

def one_error_line(output: str) -> bool:
    """The CLI reported bad input as one line (other lines are the dataset's summary), no traceback."""
    return sum(line.startswith("Error") for line in output.splitlines()) == 1 and "Traceback" not in output


from conftest import PROTEINGYM


def random_probs(length, letters=20, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(letters), size=length)


def holder(parent=PARENT):
    return VariantSet("p", pd.DataFrame(), parent)


def write_mpnn(path, parent=PARENT, samples=3, seed=0):
    probs = np.stack([random_probs(len(parent), 21, seed + s) for s in range(samples)])
    S = np.array([PROTEINMPNN_ALPHABET.index(a) for a in parent])
    np.savez(path, log_p=np.log(probs).astype(np.float32), S=S, mask=np.ones(len(parent), np.float32))
    return probs


def test_proteinmpnn_samples_are_averaged_as_probabilities_and_x_dropped(tmp_path):
    probs = write_mpnn(tmp_path / "p.npz")
    profile = read_profile(tmp_path / "p.npz")
    mean = probs.mean(axis=0)[:, :20]  # the first 20 letters of ProteinMPNN's alphabet are AMINO_ACIDS
    np.testing.assert_allclose(profile.probs, mean / mean.sum(axis=1, keepdims=True), rtol=1e-5)
    assert profile.wild_type == PARENT and profile.format == "proteinmpnn-npz"


def test_matrix_reads_probabilities_or_log_probabilities_and_refuses_neither(tmp_path):
    probs = random_probs(len(PARENT))
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "logp.npy", np.log(probs))
    np.testing.assert_allclose(read_profile(tmp_path / "p.npy").probs, probs, rtol=1e-9)
    np.testing.assert_allclose(read_profile(tmp_path / "logp.npy").probs, probs, rtol=1e-9)
    bad = probs.copy()
    bad[3] *= 1.5  # positive, but row 4 sums to 1.5
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(DataError, match="neither probabilities .* position 4 sums to 1.5"):
        read_profile(tmp_path / "bad.npy")
    bad = probs.copy()
    bad[5, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match="non-finite value nan at position 6, column 'D'"):
        read_profile(tmp_path / "nan.npy")
    np.save(tmp_path / "wide.npy", random_probs(len(PARENT), 22))
    with pytest.raises(DataError, match="22 columns; name their letters with --profile-alphabet"):
        read_profile(tmp_path / "wide.npy")


def test_profile_alphabet_names_the_columns(tmp_path):
    probs = random_probs(len(PARENT))
    order = "ARNDCQEGHILKMFPSTWYV"
    np.save(tmp_path / "p.npy", probs[:, [AMINO_ACIDS.index(a) for a in order]])
    np.testing.assert_allclose(read_profile(tmp_path / "p.npy", order).probs, probs, rtol=1e-9)
    with pytest.raises(DataError, match="lacks V"):
        read_profile(tmp_path / "p.npy", order[:-1] + "X")


def test_wide_and_long_tables_read_as_the_matrix(tmp_path):
    probs = random_probs(len(PARENT))
    wide = pd.DataFrame(probs, columns=list(AMINO_ACIDS))
    wide.insert(0, "position", np.arange(1, len(PARENT) + 1))
    wide.insert(1, "wt", list(PARENT))
    wide.to_csv(tmp_path / "wide.csv", index=False)
    long = wide.melt(id_vars=["position", "wt"], var_name="aa", value_name="log_p")
    long["log_p"] = np.log(long["log_p"])
    long.drop(columns="wt").sample(frac=1, random_state=0).to_csv(tmp_path / "long.tsv", sep="\t", index=False)
    for name in ("wide.csv", "long.tsv"):
        profile = read_profile(tmp_path / name)
        np.testing.assert_allclose(profile.probs, probs, rtol=1e-6)
        np.testing.assert_array_equal(profile.positions, np.arange(len(PARENT)))
    assert read_profile(tmp_path / "wide.csv").wild_type == PARENT
    long[~((long["position"] == 7) & (long["aa"] == "W"))].to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(DataError, match="position 7 has values for .*, not all 20"):
        read_profile(tmp_path / "gap.csv")
    wide = wide.astype({"C": object})
    wide.loc[2, "C"] = "oops"
    wide.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(DataError, match=r"text.csv:4: column 'C' holds 'oops', not a finite number"):
        read_profile(tmp_path / "text.csv")


def test_msa_profile_weights_sequences_and_drops_insert_columns(tmp_path):
    # query MKTAY; A3M: lower case letters are inserts (dropped); the query's gap column (4th) is dropped too
    (tmp_path / "a.a3m").write_text(">query/1-5\nMKT-AY\n>s1\nMKTaaGAY\n>s2\nMKT-AY\n>s3\nLRS-AW\n>s4\n-RS-AW\n")
    profile = read_profile(tmp_path / "a.a3m")
    assert profile.wild_type == "MKTAY" and list(profile.positions) == [0, 1, 2, 3, 4]
    codes = np.array([[AMINO_ACIDS.index(a) for a in s] for s in ("MKTAY", "MKTAY", "MKTAY", "LRSAW")])
    codes = np.vstack([codes, [[20, 14, 15, 0, 18]]])  # s4: a gap, then RSAW
    weights = sequence_weights(codes)
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3, 1 / 2, 1 / 2])  # s3 and s4: 4 of 5 identical
    # position 1: M weighs 1 (three thirds), L a half, s4's gap leaves the column; one pseudo-sequence spread
    expected_m = (1 + 1 / 20) / (1.5 + 1)
    assert profile.probs[0, AMINO_ACIDS.index("M")] == pytest.approx(expected_m)
    assert profile.probs[0, AMINO_ACIDS.index("A")] == pytest.approx((1 / 20) / 2.5)
    np.testing.assert_allclose(profile.probs.sum(axis=1), 1)
    # A2M: a lower-case query residue (a non-focus column, insert state in every row) advances the numbering only
    (tmp_path / "focus.a2m").write_text(">query/11-15\nMKtAY\n>s1\nMK.AY\n>s2\nLRsAW\n")
    focus = read_profile(tmp_path / "focus.a2m")
    assert focus.wild_type == "MKAY" and list(focus.positions) == [10, 11, 13, 14]
    # through the featurizer: an aligned FASTA of the parent's first 20 residues, query first
    rows = [PARENT[:20], PARENT[:5] + "W" + PARENT[6:20], "-" * 3 + PARENT[3:20]]
    (tmp_path / "family.afa").write_text("".join(f">s{k}\n{r}\n" for k, r in enumerate(rows)))
    featurizer = get_featurizer(f"profile:{tmp_path / 'family.afa'}", holder())
    x = featurizer.encode([PARENT[:5] + "W" + PARENT[6:], PARENT[:25] + "W" + PARENT[26:]])
    # all three within 80% identity of each other: weights 1/3; site 6 holds I, W, I
    assert x[0, 0] == pytest.approx(np.log((1 / 3 + 1 / 20) / (2 / 3 + 1 / 20)), rel=1e-5)
    assert x[0, -1] == 1 and x[1, -1] == 0  # position 26 lies beyond the alignment
    (tmp_path / "empty.a2m").write_text("")
    with pytest.raises(DataError, match="no sequences in the MSA"):
        read_profile(tmp_path / "empty.a2m")
    (tmp_path / "gaps.afa").write_text(">q\n-----\n>s\nMKTAY\n")
    with pytest.raises(DataError, match="no residues in match columns: the query .* must come first"):
        read_profile(tmp_path / "gaps.afa")
    (tmp_path / "short.afa").write_text(">q\nMKTAY\n>s\nMKTA\n")
    with pytest.raises(DataError, match=r"short.afa:3: record 's' has 4 match columns, the query 5"):
        read_profile(tmp_path / "short.afa")


def test_wild_type_must_be_the_parent_and_offset_shifts_it(tmp_path):
    write_mpnn(tmp_path / "p.npz", parent=PARENT[10:30])
    profile = read_profile(tmp_path / "p.npz")
    with pytest.raises(DataError, match="profile position 1 is 'Q', the parent has 'M' at 1"):
        place_profile(profile, PARENT, 0, tmp_path / "p.npz")
    table = place_profile(profile, PARENT, 10, tmp_path / "p.npz")
    assert np.isnan(table[:10]).all() and np.isnan(table[30:]).all() and np.isfinite(table[10:30]).all()
    np.save(tmp_path / "bare.npy", random_probs(len(PARENT) - 1))
    with pytest.raises(DataError, match="46 positions and no wild type to align by; the parent has 47"):
        place_profile(read_profile(tmp_path / "bare.npy"), PARENT, 0, tmp_path / "bare.npy")


def test_features_per_substitution_sum_over_sites_and_mark_what_the_profile_lacks(tmp_path):
    write_mpnn(tmp_path / "p.npz", parent=PARENT[:40])  # positions 41-47 uncovered
    featurizer = get_featurizer(f"profile:{tmp_path / 'p.npz'}", holder())
    assert featurizer.name == "profile-p" and featurizer.manifest()["columns"] == COLUMNS
    assert COLUMNS[:4] == ["dlogp", "entropy", "wt_logp", "mt_logp"] and COLUMNS[-1] == "covered"
    probs = featurizer.probs
    single = PARENT[:4] + "W" + PARENT[5:]
    double = PARENT[:4] + "W" + PARENT[5:9] + "C" + PARENT[10:]
    x = featurizer.encode([PARENT, single, double, PARENT[:45] + "A" + PARENT[46:], PARENT[:2] + "*" + PARENT[3:]])
    col = {c: j for j, c in enumerate(COLUMNS)}
    assert not x[0, :-1].any() and x[0, col["covered"]] == 1
    log_w, log_y = np.log(probs[4, AMINO_ACIDS.index("W")]), np.log(probs[4, AMINO_ACIDS.index(PARENT[4])])
    assert x[1, col["dlogp"]] == pytest.approx(log_w - log_y, rel=1e-5)
    assert x[1, col["entropy"]] == pytest.approx(-(probs[4] * np.log(probs[4])).sum(), rel=1e-5)
    np.testing.assert_allclose(x[1, col["p_A"]:col["p_Y"] + 1], probs[4], rtol=1e-5)
    second = featurizer.encode([PARENT[:9] + "C" + PARENT[10:]])[0]
    np.testing.assert_allclose(x[2, :-1], x[1, :-1] + second[:-1], rtol=1e-5, atol=1e-6)  # a sum over sites
    assert x[3, col["covered"]] == 0 and not x[3, :-1].any()  # uncovered site: zeros, no signal
    assert x[4, col["covered"]] == 0 and not x[4, :-1].any()  # a stop has no profile value
    assert np.isfinite(x).all() and x[:, col["mt_logp"]].min() >= np.log(PROB_FLOOR) * 2
    scalars = get_featurizer(f"profile:{tmp_path / 'p.npz'}", holder(), profile_columns="scalars")
    assert scalars.name == "profile-p-scalars" and scalars.columns == COLUMNS[:4] + ["covered"]
    np.testing.assert_array_equal(scalars.encode([single, double]), x[1:3, [0, 1, 2, 3, -1]])


def test_embed_build_and_score_read_the_profile_and_refuse_a_changed_file(tmp_path, cli):
    frame = write_proteingym_like(tmp_path / "assay.csv")
    # a profile whose log-probabilities follow the assay's hydropathy term: the zero-shot score must see it
    from mimo.pipeline.featurizers.aaprops import PROPERTIES

    hydro = np.array([PROPERTIES[a][0] for a in AMINO_ACIDS])
    logits = np.array([-np.abs(hydro - PROPERTIES[wt][0]) for wt in PARENT])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.save(tmp_path / "prof.npy", probs)
    result = cli("score", "--input", tmp_path / "assay.csv", "--model", f"profile:{tmp_path / 'prof.npy'}", "--cache",
                 tmp_path / "c", "--quiet", "--out", tmp_path / "s.csv")
    scores = pd.read_csv(tmp_path / "s.csv")
    expected = spearman(scores["label"].to_numpy(), scores["score"].to_numpy())
    assert f"zero-shot Spearman of profile-prof {expected:.3f} over {len(frame)} variants" in result.output
    assert expected > 0.3
    manifest = json.loads((tmp_path / "c" / "assay" / "profile-prof" / "manifest.json").read_text())
    assert manifest["weights"] == str((tmp_path / "prof.npy").resolve()) and manifest["kind"] == "profile"
    rebuilt = featurizer_from_manifest(manifest, PARENT)
    np.testing.assert_array_equal(rebuilt.encode([PARENT[:3] + "W" + PARENT[4:]]),
                                  get_featurizer(f"profile:{tmp_path / 'prof.npy'}", holder()).encode(
                                      [PARENT[:3] + "W" + PARENT[4:]]))
    (tmp_path / "moved").mkdir()
    moved = (tmp_path / "moved" / "other-name.npy")
    moved.write_bytes((tmp_path / "prof.npy").read_bytes())
    assert ProfileFeaturizer.from_manifest(manifest, PARENT, moved).name == "profile-prof"  # same content, moved
    for model in ("onehot-sites", "aaprops"):
        cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", model, "--cache", tmp_path / "c", "--quiet")
    fit = cli("fit", "ridge", "--dataset", "assay", "--features", "onehot-sites+aaprops+profile-prof", "--cv",
              "fold_modulo_5", "--cache", tmp_path / "c", "--out", tmp_path / "cv")
    assert "pooled out-of-fold Spearman" in fit.output
    np.save(tmp_path / "prof.npy", probs[::-1])  # the same file name, other content
    changed = cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", f"profile:{tmp_path / 'prof.npy'}",
                  "--cache", tmp_path / "c", "--quiet", ok=False)
    assert changed.exit_code == 1 and "weights_fingerprint" in changed.output and "Traceback" not in changed.output
    with pytest.raises(DataError, match="the profile file changed since the cache was built"):
        featurizer_from_manifest(manifest, PARENT)
    wrong = cli("embed", "build", "--input", tmp_path / "assay.csv", "--model", f"profile:{tmp_path / 'prof.npy'}",
                "--profile-offset", "1", "--cache", tmp_path / "c2", "--quiet", ok=False)
    assert wrong.exit_code == 1 and one_error_line(wrong.output)
    assert "outside the 47-residue parent (--profile-offset 1)" in wrong.output


def test_shared_proteinmpnn_profile_scores_gfp_singles():
    """ProteinGym's GFP singles against the shared ProteinMPNN profile: 0.485 (averaging probabilities)."""
    from mimo.pipeline.io.datasets import load_dataset

    dataset = load_dataset(PROTEINGYM / "GFP_AEQVI_Sarkisyan_2016.csv")
    featurizer = get_featurizer(f"profile:{PROTEINGYM / 'profiles' / 'GFP_AEQVI.npz'}", dataset)
    x = featurizer.encode(dataset.frame["aligned"].tolist())
    assert x[:, -1].all()
    assert spearman(dataset.frame["label"].to_numpy(), x[:, 0]) == pytest.approx(0.485, abs=0.001)
