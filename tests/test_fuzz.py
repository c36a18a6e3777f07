"""Fuzzing the parsers: whatever the input, the only failure is a clear DataError."""
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimo.pipeline.io.gfp import read_genotypes

from mimo.pipeline.io.tables import load_table
from mimo.pipeline.errors import DataError
from mimo.pipeline.io.variants import parse_mutations, read_fasta

PARENT = "MKTAYIAKQRQISFVKSHFSRQ"
TOKEN_ALPHABET = string.ascii_uppercase + string.digits + ":;,*#_- "
token = st.builds(lambda a, n, b: f"{a}{n}{b}", st.sampled_from(PARENT + "XZ*"), st.integers(-2, 30),
                  st.sampled_from("ACDEFGHIKLMNPQRSTVWY*BJ"))
mutation_text = st.one_of(st.text(TOKEN_ALPHABET, max_size=30), st.lists(token, max_size=4).map(":".join))
SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def only_data_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DataError as exc:
        assert str(exc)  # a message, never empty
        return None


@SETTINGS
@given(mutation_text)
def test_parse_mutations(text):
    result = only_data_errors(parse_mutations, text, PARENT, path="x.csv", line=2)
    if result is not None:
        for m in result:
            assert PARENT[m.position] == m.parent


@SETTINGS
@given(st.text(string.printable, max_size=200))
def test_read_fasta(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fasta") / "x.fasta"
    path.write_text(text)
    only_data_errors(read_fasta, path)


@SETTINGS
@given(st.lists(st.tuples(mutation_text, st.one_of(st.floats(allow_nan=True), st.text(max_size=4))), max_size=6),
       st.sampled_from(["mutant,DMS_score", "mutant,score", "sequence,score", "x,y", ""]))
def test_load_table(tmp_path_factory, rows, header):
    path = tmp_path_factory.mktemp("table") / "t.csv"
    path.write_text("\n".join([header] + [f"{m},{s}" for m, s in rows]) + "\n")
    only_data_errors(load_table, path, parent=PARENT)


@SETTINGS
@given(st.lists(st.tuples(st.lists(token.map(lambda t: "S" + t), max_size=3).map(":".join),
                          st.one_of(st.floats(), st.text(max_size=3))), max_size=6))
def test_read_genotypes(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("geno") / "g.tsv"
    path.write_text("aaMutations\tuniqueBarcodes\tmedianBrightness\n" + "".join(f"{g}\t1\t{v}\n" for g, v in rows))
    only_data_errors(read_genotypes, path, PARENT)


@SETTINGS
@given(st.lists(st.tuples(st.lists(token, min_size=1, max_size=3), st.sampled_from(",:;"),
                          st.floats(-5, 5, allow_nan=False)), min_size=1, max_size=6))
def test_load_table_never_drops_a_field(tmp_path_factory, rows):
    """Unquoted doubles written with a comma: the table is refused or every row keeps what it was written with
    (pandas took the extra field as a row index and kept the last mutation alone)."""
    path = tmp_path_factory.mktemp("table") / "t.csv"
    texts = [sep.join(tokens) for tokens, sep, _ in rows]
    path.write_text("mutant,score\n" + "".join(f"{t},{s!r}\n" for t, (_, _, s) in zip(texts, rows)))
    data = only_data_errors(load_table, path, parent=PARENT)
    if data is not None:
        assert set(data.frame["mutations"]) <= set(texts)
        assert all("," not in t for t in data.frame["mutations"])
