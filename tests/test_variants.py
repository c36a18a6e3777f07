import pytest

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.variants import (PROTEINGYM_FORMAT, SARKISYAN_FORMAT, Mutation, apply_mutations, check_sequence,
                               expressed_sequence, load_parent, parse_mutations, read_fasta, sequence_id)

PARENT = "MKTAYIAK"


def test_parse_one_based_tokens_and_apply():
    muts = parse_mutations("K2R:A4G", PARENT, PROTEINGYM_FORMAT)
    assert muts == [Mutation(1, "K", "R"), Mutation(3, "A", "G")]
    assert apply_mutations(PARENT, muts) == "MRTGYIAK"


def test_parse_sarkisyan_tokens_with_stop():
    muts = parse_mutations("SK1R:SY4*", PARENT, SARKISYAN_FORMAT)
    aligned = apply_mutations(PARENT, muts)
    assert aligned == "MRTA*IAK"
    assert expressed_sequence(aligned) == "MRTAIAK"


@pytest.mark.parametrize("text", ["", "#", "WT", "_wt"])
def test_parent_tokens_mean_no_mutation(text):
    assert parse_mutations(text, PARENT) == []


@pytest.mark.parametrize("text, problem", [
    ("K2", "malformed mutation token 'K2'"),
    ("K9R", "out of range"),
    ("K0R", "out of range"),
    ("A2R", "expects 'A' at position 2, but the parent has 'K' there"),
    ("K2R:K2A", "mutated twice"),
    ("K2J", "unknown residue 'J'"),
])
def test_bad_tokens_name_file_line_and_problem(text, problem):
    with pytest.raises(DataError) as info:
        parse_mutations(text, PARENT, PROTEINGYM_FORMAT, path="variants.csv", line=7)
    assert str(info.value).startswith("variants.csv:7: ")
    assert problem in str(info.value)


def test_unknown_residue_in_sequence():
    with pytest.raises(DataError, match="unknown residue 'B' at position 3"):
        check_sequence("MKBT", "x.csv", 3)


def test_sequence_id_is_stable_and_distinct():
    assert sequence_id("MKT") == sequence_id("MKT")
    assert sequence_id("MKT") != sequence_id("MKA")
    assert len(sequence_id("MKT")) == 16


def test_fasta_reading_and_errors(tmp_path):
    good = tmp_path / "a.fasta"
    good.write_text(">one\nMKT\nAYI\n>two\nMK\n")
    assert read_fasta(good) == [("one", "MKTAYI"), ("two", "MK")]
    with pytest.raises(DataError, match=r"holds 2 records \('one', 'two', \.\.\.\); give a file with the parent alone"):
        load_parent(str(good))  # the second record is never ignored silently
    (tmp_path / "one.fasta").write_text(">one\nMKT\nAYI\n")
    assert load_parent(str(tmp_path / "one.fasta")) == "MKTAYI"
    bad = tmp_path / "b.fasta"
    bad.write_text("MKT\n>x\nMK\n")
    with pytest.raises(DataError, match=r"b.fasta:1: sequence data before"):
        read_fasta(bad)
    with pytest.raises(DataError, match="file not found"):
        read_fasta(tmp_path / "missing.fasta")
