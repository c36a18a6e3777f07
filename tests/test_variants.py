import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.variants import (PROTEINGYM_FORMAT, SARKISYAN_FORMAT, Mutation, MutationFormat,
                                       SubstitutionReader, apply_mutations, check_sequence, expressed_sequence,
                                       load_parent, parse_mutations, read_fasta, sequence_id)

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


def _parsed(text, parent, fmt):
    try:
        return {(m.position, m.new) for m in parse_mutations(text, parent, fmt)}
    except DataError:
        return None


TOKENS = st.builds(lambda old, number, new: f"{old}{number}{new}", st.sampled_from("MKTAYIJB*a"),
                   st.integers(-1, 10).map(str) | st.sampled_from(["02", "٣", "1 0"]), st.sampled_from("RGKAJBX*r "))
SEPARATORS = st.sampled_from([":", ";", ",", " : ", "\t;", "::", "", " ", "\u00a0,"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TOKENS, SEPARATORS), min_size=1, max_size=4), st.sampled_from(["", "S"]),
       st.sampled_from([0, 1]), st.text(alphabet=" \t\n", max_size=2))
def test_the_fast_reader_agrees_with_parse_mutations(parts, prefix, first, pad):
    """The fast path accepts only what parse_mutations accepts, with the same substitutions; the reader as a
    whole equals parse_mutations on every string (K2R:K2R, unknown new residues such as B, and so on)."""
    fmt = MutationFormat(prefix=prefix, first_index=first)
    text = pad + "".join((prefix if k % 2 == 0 else "") + token + sep for k, (token, sep) in enumerate(parts))
    text = text[:-len(parts[-1][1])] if parts[-1][1] else text
    read = SubstitutionReader(PARENT, fmt)
    fast = read.fast(text.strip())
    expected = _parsed(text, PARENT, fmt)
    if fast is not None:
        assert fast == expected
    try:
        assert read(text) == expected
    except DataError:
        assert expected is None


@pytest.mark.parametrize("text", ["K2R:K2R", "K2B", "K2R;K2R", "K2R:A4G:K2R"])
def test_the_fast_reader_refuses_what_parse_mutations_refuses(text):
    assert SubstitutionReader(PARENT).fast(text) is None
    with pytest.raises(DataError):
        SubstitutionReader(PARENT)(text)
