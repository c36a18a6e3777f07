import collections

import numpy as np
import pandas as pd
import pytest

from mimo.pipeline.io.datasets import load_gfp

from mimo.pipeline.io.fetch import resolve_data_dir

from mimo.pipeline.io.gfp import GFP_PARENT, read_genotypes

from mimo.pipeline.io.tables import load_fasta, load_table, read_split_file
from mimo.pipeline.errors import DataError

TAPE_COUNTS = {
    "train": {0: 1, 1: 877, 2: 10433, 3: 10135},
    "valid": {1: 237, 2: 2577, 3: 2548},
    "test": {4: 9759, 5: 7215, 6: 4643, 7: 2783, 8: 1526, 9: 714, 10: 352, 11: 142, 12: 50, 13: 25, 14: 6, 15: 2},
}


@pytest.fixture(scope="module")
def gfp(gfp_dir):
    return load_gfp(gfp_dir)


def test_tape_split_is_rebuilt_exactly_on_the_real_files(gfp):
    assert len(gfp) == 54025
    split = gfp.splits["tape"]
    for part, expected in TAPE_COUNTS.items():
        counts = collections.Counter(gfp.frame["n_mutations"][split == part])
        assert dict(counts) == expected, part
    assert [int((split == p).sum()) for p in ("train", "valid", "test")] == [21446, 5362, 27217]
    means = {p: gfp.frame["label"][split == p].mean() for p in ("train", "valid", "test")}
    assert means == pytest.approx({"train": 3.18, "valid": 3.17, "test": 2.08}, abs=0.005)


def test_gfp_sequences_delete_stops_and_are_unique(gfp):
    lengths = gfp.frame["sequence"].str.len()
    assert lengths.min() == 235 and lengths.max() == 237
    assert gfp.frame["id"].is_unique
    assert "*" not in "".join(gfp.frame["sequence"].head(2000))
    parent_row = gfp.frame[gfp.frame["n_mutations"] == 0]
    assert parent_row["sequence"].item() == GFP_PARENT


def test_balanced_split_has_tape_sizes_and_shared_mutation_distribution(gfp):
    split = gfp.splits["balanced"]
    assert [int((split == p).sum()) for p in ("train", "valid", "test")] == [21446, 5362, 27217]
    means = [gfp.frame["n_mutations"][split == p].mean() for p in ("train", "valid", "test")]
    assert max(means) - min(means) < 0.1  # same distribution, unlike TAPE's (2.5 vs 5.3)
    assert np.array_equal(split, load_gfp(resolve_data_dir(None), seed=0).splits["balanced"])
    seeded = load_gfp(resolve_data_dir(None), seed=1).splits
    assert np.array_equal(split, seeded["balanced"])  # a named split never changes with --seed
    assert not np.array_equal(split, seeded["balanced-seed1"])


def test_data_dir_resolution_order(tmp_path, monkeypatch, gfp_dir):
    monkeypatch.setenv("MIMO_DATA", str(gfp_dir))
    assert resolve_data_dir(None) == gfp_dir.resolve()
    with pytest.raises(DataError, match=r"no amino_acid_genotypes_to_brightness.tsv here \(--data\); download "
                                        r"the GFP data into it with `mimo data fetch"):
        resolve_data_dir(tmp_path)
    monkeypatch.setenv("MIMO_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"here \(\$MIMO_DATA\)"):
        resolve_data_dir(None)


def test_malformed_token_in_genotype_file_names_line(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("aaMutations\tuniqueBarcodes\tmedianBrightness\n#\t1\t3.7\nSA108D\t1\t1.3\nSA108\t1\t2.0\n")
    with pytest.raises(DataError, match=r"g.tsv:4: malformed mutation token 'SA108'"):
        read_genotypes(path)


def test_missing_or_bad_label_in_genotype_file(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("aaMutations\tuniqueBarcodes\tmedianBrightness\n#\t1\tnan\n")
    with pytest.raises(DataError, match=r"g.tsv:2: label 'nan' is not finite"):
        read_genotypes(path)
    path.write_text("aaMutations\tmedianBrightness\n#\t\n")
    with pytest.raises(DataError, match=r"g.tsv:2: label '' is not a number"):
        read_genotypes(path)


def test_proteingym_table_needs_no_options(tmp_path):
    parent = "MKTAYIAK"
    path = tmp_path / "dms.csv"
    pd.DataFrame({"mutant": ["K2R", "K2R:A4G", "M1L"], "mutated_sequence": ["MRTAYIAK", "MRTGYIAK", "LKTAYIAK"],
                  "DMS_score": [0.5, -1.0, 0.1]}).to_csv(path, index=False)
    ds = load_table(path, parent=parent)
    assert ds.name == "dms"
    assert ds.frame["n_mutations"].tolist() == [1, 2, 1]
    assert ds.frame["label"].tolist() == [0.5, -1.0, 0.1]
    assert set(ds.splits["random"]) <= {"train", "valid", "test"}


def test_table_of_mutations_with_custom_columns(tmp_path):
    path = tmp_path / "v.tsv"
    path.write_text("variant\tfitness_value\nK2R\t1.5\nWT\t2.0\n")
    ds = load_table(path, parent="MKTAYIAK", mutant_col="variant", score_col="fitness_value")
    assert ds.frame["sequence"].tolist() == ["MRTAYIAK", "MKTAYIAK"]
    assert ds.frame["n_mutations"].tolist() == [1, 0]


@pytest.mark.parametrize("content, problem", [
    ("mutant,DMS_score\nK2R,1\nK2R,2\n", "dms.csv:3: same sequence as line 2 but a different label"),
    ("mutant,DMS_score\nK2R,inf\n", "dms.csv:2: label 'inf' is not finite"),
    ("mutant,DMS_score\nK2R,\n", "dms.csv:2: label '' is not a number"),
    ("mutant,other\nK2R,1\n", "dms.csv:1: no score column"),
    ("mutant,DMS_score\nX2R,1\n", "dms.csv:2: mutation 'X2R' expects 'X'"),
    ("", "dms.csv: empty file"),
    ("mutated_sequence,DMS_score\nMKTAYIAK,1\nMKTBYIAK,2\n", "dms.csv:3: unknown residue 'B' at position 4"),
    ("mutant,DMS_score\nK2R:K2A,1\n", "dms.csv:2: position 2 is mutated twice"),
    ("mutant,DMS_score\nK20R,1\n", "dms.csv:2: mutation 'K20R' is out of range"),
])
def test_bad_tables_name_file_and_line(tmp_path, content, problem):
    path = tmp_path / "dms.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_table(path, parent="MKTAYIAK")
    assert problem in str(info.value)


def test_duplicate_rows_with_equal_labels_are_merged(tmp_path):
    path = tmp_path / "dms.csv"
    path.write_text("mutant,DMS_score\nK2R,1\nK2R,1\nA4G,0\n")
    assert len(load_table(path, parent="MKTAYIAK")) == 2


def test_fasta_dataset_has_no_labels(tmp_path):
    path = tmp_path / "x.fasta"
    path.write_text(">a\nMKTAYIAK\n>b\nMRTAYIAK\n>c\nMKTAYIAK\n")
    ds = load_fasta(path, parent="MKTAYIAK")
    assert len(ds) == 2
    assert ds.frame["n_mutations"].tolist() == [0, 1]
    assert ds.frame["label"].isna().all()


def test_split_file_by_genotype_or_id(tmp_path, small_gfp_dir):
    ds = load_gfp(small_gfp_dir)
    frame = ds.frame
    path = tmp_path / "split.csv"
    path.write_text(f"key,split\n{frame['mutations'][1]},train\n{frame['id'][2]},validation\n")
    split = read_split_file(path, frame)
    assert split[1] == "train" and split[2] == "valid" and (split == "none").sum() == len(frame) - 2
    path.write_text("key,split\nSA108D:NOPE,train\n")
    with pytest.raises(DataError, match=r"split.csv:2: 'SA108D:NOPE' is neither an id nor a genotype"):
        read_split_file(path, frame)
    path.write_text(f"key,split\n{frame['id'][2]},holdout\n")
    with pytest.raises(DataError, match=r"split.csv:2: split 'holdout' is not one of"):
        read_split_file(path, frame)


def test_lab_column_names_are_found_said_and_ambiguity_refused(tmp_path, cli):
    parent = "MKTAYIAK"
    table = tmp_path / "lab.csv"
    table.write_text("variant,fitness,replicate_sd\nK2R,0.5,0.1\nT3A,-0.2,0.1\nA4G,0.1,0.2\n")
    dataset = load_table(table, parent)
    assert dataset.columns == {"mutant": "variant", "score": "fitness"}
    result = cli("data", "show", "--input", table, "--parent", parent, "--figure-dir", tmp_path / "fig")
    assert "mutant from column 'variant', score from column 'fitness'" in result.output
    both = tmp_path / "both.csv"
    both.write_text("mutant,score,fitness\nK2R,0.5,0.4\n")
    with pytest.raises(DataError, match="both 'score' and 'fitness' could be the score column; name one with score_col="):
        load_table(both, parent)
    assert load_table(both, parent, score_col="fitness").frame["label"].tolist() == [0.4]
    both_cli = cli("data", "show", "--input", both, "--parent", parent, ok=False)  # the command line names the flag
    assert "name one with --score-col" in both_cli.output


def test_a_label_with_an_underscore_is_not_a_number(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("mutant,score\nK2R,1_000\n")
    with pytest.raises(DataError, match=r"t.csv:2: label '1_000' is not a number"):
        load_table(table, "MKTAYIAK")


def test_a_built_dataset_is_named_later_not_described_again(tmp_path, cli):
    parent = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    table = tmp_path / "lab.tsv"
    rows = [f"{wt}{i}{aa}\t{0.1 * i:.2f}" for i, wt in enumerate(parent, start=0) for aa in "AG" if aa != wt]
    table.write_text("variant\tactivity\n" + "\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    cli("embed", "build", "--input", table, "--parent", parent, "--zero-based", "--model", "onehot-sites",
        "--cache", cache, "--quiet")
    result = cli("embed", "build", "--dataset", "lab", "--model", "aaprops", "--cache", cache, "--quiet")
    assert "lab/aaprops" in result.output
    cli("fit", "ridge", "--dataset", "lab", "--features", "onehot-sites+aaprops", "--cache", cache,
        "--out", tmp_path / "run")
    both = cli("embed", "build", "--dataset", "lab", "--input", table, "--model", "aaprops", "--cache", cache,
               ok=False)
    assert "give --dataset lab or the dataset's own options (--input), not both" in both.output


def test_a_parent_longer_than_a_file_name_is_read_as_a_sequence():
    """--parent with a 306-residue sequence crashed with OSError "File name too long" (it was tried as a path)."""
    from mimo.pipeline.io.variants import load_parent

    parent = "ACDEFGHIKLMNPQRSTVWY" * 15 + "ACDEFG"
    assert load_parent(parent) == parent
