"""Inputs as labs write them, refused or read right at the boundary (issue 30's input cases, issue 31 §1)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SHORT_PARENT, refused, run_cli, write_singles
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers.profile import ProfileFeaturizer
from mimo.pipeline.io.datasets import load_dataset
from mimo.pipeline.io.profiles import PROTEINMPNN_ALPHABET, place_profile, read_profile
from mimo.pipeline.io.tables import load_table, read_table
from mimo.pipeline.io.variants import AMINO_ACIDS

PARENT = SHORT_PARENT


# ------------------------------------------------------------------------------------------- table shape

def test_a_row_with_more_fields_than_the_header_is_refused_naming_its_line(tmp_path):
    """``Q15S,Y48W`` unquoted: pandas took the first field as a row index and kept Y48W alone (High 1)."""
    path = tmp_path / "d.csv"
    path.write_text("mutant,score\nK2A,0.5\nK2A,T3G,1.0\nT3G,0.1\n")
    with pytest.raises(DataError, match=r"d.csv:3: 3 fields but the header names 2 columns"):
        load_table(path, PARENT)
    path.write_text("mutant,score\nK2A,T3G,1.0\nT3G,Y5L,0.1\n")  # every row: pandas shifted all silently
    with pytest.raises(DataError, match=r"d.csv:2: 3 fields"):
        load_table(path, PARENT)
    path.write_text('mutant,score\n"K2A,T3G",1.0\nT3G,0.1\n')  # quoted, as the docs say: read as a double
    assert load_table(path, PARENT).frame["n_mutations"].tolist() == [2, 1]


def test_two_columns_with_one_name_are_ambiguous(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("mutant,score,score\nK2A,0.5,7\n")
    with pytest.raises(DataError, match="two columns are named 'score' .*ambiguous"):
        load_table(path, PARENT)


def test_a_device_is_not_read_as_a_table():
    with pytest.raises(DataError, match="is a device"):
        read_table(__import__("pathlib").Path("/dev/zero"))


def test_a_huge_cell_is_not_repeated_whole(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("mutant,score\nK2A," + "9" * 20_000 + "x\n")
    with pytest.raises(DataError) as caught:
        load_table(path, PARENT)
    assert len(str(caught.value)) < 300 and "20,001 characters" in str(caught.value)


def test_labels_beyond_float32_are_refused_at_read(tmp_path):
    path = tmp_path / "d.csv"
    for value in ("1e39", "-1e300"):
        path.write_text(f"mutant,score\nK2A,0.5\nT3G,{value}\n")
        with pytest.raises(DataError, match=rf"d.csv:3: label '{value}' is beyond float32's range"):
            load_table(path, PARENT)


def test_the_api_names_the_argument_that_gave_a_missing_file(tmp_path):
    with pytest.raises(DataError) as caught:
        load_dataset(tmp_path / "none.csv")
    assert str(caught.value).endswith("file not found (argument input)")
    assert caught.value.cli_message().endswith("file not found (--input)")


# ----------------------------------------------------------------------------- sequences with a parent

def write_sequences(path, parent=PARENT, letters="AGLD", seed=0):
    rng = np.random.default_rng(seed)
    rows = [(parent[:i] + a + parent[i + 1:], rng.normal()) for i in range(len(parent)) for a in letters
            if a != parent[i]]
    pd.DataFrame(rows, columns=["sequence", "activity"]).to_csv(path, index=False)
    return rows


def test_sequences_given_with_a_parent_are_read_as_its_substitutions(tmp_path):
    write_sequences(tmp_path / "s.csv")
    data = load_dataset(tmp_path / "s.csv", parent=PARENT)
    first = data.frame.iloc[0]
    assert first["mutations"] == f"{PARENT[0]}1A" and first["n_mutations"] == 1
    assert (data.frame["mutations"] != "").all()
    zero = load_dataset(tmp_path / "s.csv", parent=PARENT, zero_based=True)
    assert zero.frame["mutations"].iloc[0] == f"{PARENT[0]}0A"  # in the dataset's own format


def test_an_indel_among_sequences_with_a_parent_names_file_and_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(f"sequence,score\n{PARENT[:3]}A{PARENT[4:]},1\n{PARENT[:-1]},2\n")
    with pytest.raises(DataError, match=r"s.csv:3: the sequence has 32 residues, the parent 33: an insertion"):
        load_dataset(path, parent=PARENT)
    assert len(load_dataset(path)) == 2  # without a parent, sequences of any length are embedded as they are


@pytest.mark.slow
def test_a_run_on_sequences_knows_what_was_measured(tmp_path):
    """One-hot on sequences + --parent: predictions not tied, new variants unseen, design never re-proposes a
    measured variant (all three failed when the substitutions were not derived)."""
    write_sequences(tmp_path / "s.csv", letters="AGLDE")
    run_cli("embed", "build", "--model", "onehot", "--input", tmp_path / "s.csv", "--parent", PARENT,
            "--cache", tmp_path / "cache", "--quiet")
    run_cli("fit", "ridge", "--dataset", "s", "--cache", tmp_path / "cache", "--out", tmp_path / "run")
    predictions = pd.read_csv(tmp_path / "run" / "predictions.csv", keep_default_na=False)
    assert predictions["prediction"].nunique() > len(predictions) // 2
    (tmp_path / "new.txt").write_text(f"{PARENT[0]}1W\n{PARENT[0]}1A\n")
    run_cli("predict", "--run", tmp_path / "run", "--variants", tmp_path / "new.txt", "--out", tmp_path / "p.csv")
    predicted = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert predicted["unseen"].astype(str).tolist()[0] not in ("", "0", "False")
    from mimo.design import propose

    measured = set(predictions["mutations"])
    batch = propose(tmp_path / "run", n=8, max_mutations=1)
    plate = batch[0] if isinstance(batch, tuple) else batch
    assert not measured & set(plate["mutations"])


# ------------------------------------------------------------------------------------------- profiles

def write_mpnn(path, log_p, parent=PARENT, mask=None):
    S = np.array([PROTEINMPNN_ALPHABET.index(a) for a in parent])
    np.savez(path, log_p=log_p, S=S, mask=np.ones(len(parent)) if mask is None else mask)


def probs(length, letters=21, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(letters), size=length)


def test_probabilities_saved_as_log_p_are_refused(tmp_path):
    p = probs(len(PARENT))[None]
    write_mpnn(tmp_path / "p.npz", p)
    with pytest.raises(DataError, match="log_p holds positive values .*probabilities saved under log_p"):
        read_profile(tmp_path / "p.npz")
    write_mpnn(tmp_path / "ok.npz", np.log(p))
    assert read_profile(tmp_path / "ok.npz").probs.shape == (len(PARENT), 20)


def test_a_damaged_npz_is_one_line(tmp_path):
    log_p = np.log(probs(len(PARENT)))[None]
    np.savez(tmp_path / "s.npz", log_p=log_p, S=np.zeros(len(PARENT)) + 0.5)
    with pytest.raises(DataError, match="S should hold the wild type as integer indices"):
        read_profile(tmp_path / "s.npz")
    np.savez(tmp_path / "l.npz", log_p=log_p, S=np.array(list(PARENT)))
    with pytest.raises(DataError, match="S should hold"):
        read_profile(tmp_path / "l.npz")
    write_mpnn(tmp_path / "m.npz", log_p, mask=np.ones(5))
    with pytest.raises(DataError, match=f"mask should be {len(PARENT)} numbers"):
        read_profile(tmp_path / "m.npz")
    write_mpnn(tmp_path / "z.npz", log_p, mask=np.zeros(len(PARENT)))
    with pytest.raises(DataError, match="covers no position"):
        place_profile(read_profile(tmp_path / "z.npz"), PARENT, 0, tmp_path / "z.npz")


def test_an_all_zero_profile_is_not_read_as_uniform(tmp_path):
    np.save(tmp_path / "z.npy", np.zeros((len(PARENT), 20)))
    with pytest.raises(DataError, match=r"position 1's probabilities sum to 20.*every value is 0"):
        read_profile(tmp_path / "z.npy")


def test_a_long_table_in_three_letter_codes_is_read(tmp_path):
    three = {"A": "Ala", "C": "Cys", "D": "Asp", "E": "Glu", "F": "Phe", "G": "Gly", "H": "His", "I": "Ile",
             "K": "Lys", "L": "Leu", "M": "Met", "N": "Asn", "P": "Pro", "Q": "Gln", "R": "Arg", "S": "Ser",
             "T": "Thr", "V": "Val", "W": "Trp", "Y": "Tyr"}
    p = probs(len(PARENT), 20)
    rows = [(i + 1, three[a], p[i, j]) for i in range(len(PARENT)) for j, a in enumerate(AMINO_ACIDS)]
    pd.DataFrame(rows, columns=["position", "aa", "value"]).to_csv(tmp_path / "t.csv", index=False)
    np.testing.assert_allclose(read_profile(tmp_path / "t.csv").probs, p, rtol=1e-9)
    pd.DataFrame([(1, "Xyz", 0.5)], columns=["position", "aa", "value"]).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(DataError, match="no amino acid recognised in column 'aa'"):
        read_profile(tmp_path / "u.csv")


def test_positions_and_offsets_out_of_any_range_are_one_line(tmp_path):
    p = probs(3, 20)
    frame = pd.DataFrame(p, columns=list(AMINO_ACIDS))
    frame.insert(0, "position", ["1", "2", "1e30"])
    frame.to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(DataError, match=r"w.csv:4: column 'position' holds '1e30', not an integer position"):
        read_profile(tmp_path / "w.csv")
    np.save(tmp_path / "p.npy", probs(len(PARENT), 20))
    with pytest.raises(DataError, match=r"--profile-offset 100000000000000000000 places every profile position"):
        ProfileFeaturizer(tmp_path / "p.npy", PARENT, offset=10**20)


def test_a_removed_profile_is_said_removed_not_changed(tmp_path):
    np.save(tmp_path / "p.npy", probs(len(PARENT), 20))
    built = ProfileFeaturizer(tmp_path / "p.npy", PARENT)
    (tmp_path / "p.npy").unlink()
    with pytest.raises(DataError, match="the profile file the cache was built from is gone"):
        ProfileFeaturizer.from_manifest(built.manifest(), PARENT)


def test_cli_refuses_unquoted_doubles_in_one_line(tmp_path):
    write_singles(tmp_path / "d.csv")
    with open(tmp_path / "d.csv", "a") as handle:
        handle.write("K2A,T3G,1.5\n")
    result = run_cli("embed", "build", "--model", "onehot", "--input", tmp_path / "d.csv", "--parent", PARENT,
                     "--cache", tmp_path / "c", "--quiet", ok=False)
    refused(result, "d.csv:", "3 fields but the header names 2 columns")
    assert not (tmp_path / "c").exists()


def test_lab_column_names_are_found_in_any_case(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text("Variant,Activity\nK2A,0.5\nT3G,0.1\n")
    data = load_table(path, PARENT)
    assert data.columns == {"mutant": "Variant", "score": "Activity"} and len(data) == 2
    path.write_text("variant,Mutations,activity\nK2A,K2A,0.5\n")
    with pytest.raises(DataError, match="both 'Mutations' and 'variant' could be the mutant column; name one with mutant_col="):
        load_table(path, PARENT)


def test_a_device_is_refused_by_every_reader(tmp_path):
    from mimo.pipeline.io.variants import read_fasta

    for read in (read_fasta, read_profile):
        with pytest.raises(DataError, match="is a device, not a file"):
            read(__import__("pathlib").Path("/dev/zero"))
