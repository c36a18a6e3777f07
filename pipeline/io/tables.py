"""A user's files: a CSV/TSV of variants with a score, a FASTA of sequences, a split file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError, input_file, option, read_text
from mimo.pipeline.io.splits import FOLD_PREFIX, SPLIT_NAMES, fraction_split, seeded_name
from mimo.pipeline.io.variants import clip  # an error quoting a cell cuts it (owned beside the parser)
from mimo.pipeline.io.variants import (PROTEINGYM_FORMAT, MutationFormat, apply_mutations, check_sequence, derive_parent,
                       expressed_sequence, mutation_string, parse_mutations, read_fasta,
                       sequence_id)
from mimo.pipeline.io.variantset import FRAME_COLUMNS, VariantSet, hamming_to_parent, make_frame, parse_label

SCORE_COLUMNS = ("DMS_score", "score", "fitness", "activity", "log_fluorescence", "label", "y")
MUTANT_COLUMNS = ("mutant", "mutants", "mutation", "mutations", "variant", "variants", "aaMutations")
SEQUENCE_COLUMNS = ("mutated_sequence", "sequence")


def _separator(path: Path) -> str:
    return "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","


def check_fields(text: str, sep: str, path: Path) -> None:
    """Refuse a header naming a column twice, and a row with more fields than the header (pandas would take the
    extra field as a row index, or shift the row, silently: ``Q15S,Y48W`` unquoted loses ``Q15S``)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = next(reader)
        named: dict[str, int] = {}
        for index, name in enumerate(header, start=1):
            key = name.strip()
            if key and key in named:
                raise DataError(f"two columns are named {key!r} (columns {named[key]} and {index}): which one to "
                                f"read is ambiguous; rename one", path, 1)
            named.setdefault(key, index)
        for fields in reader:
            if len(fields) > len(header) and any(f.strip() for f in fields[len(header):]):
                quote = '"' if sep == "," else ""
                raise DataError(f"{len(fields)} fields but the header names {len(header)} columns: a separator "
                                f"inside a cell? (write doubles as {quote}Q15S,Y48W{quote} in quotes, or as "
                                f"Q15S:Y48W)", path, reader.line_num)
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):  # 131,072 characters: more than the longest protein
            raise DataError(f"a cell of more than {csv.field_size_limit():,} characters: not a table of variants",
                            path, reader.line_num) from None
        raise DataError(f"cannot parse as a table: {exc}", path, reader.line_num) from None


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (TSV for .tsv/.tab/.txt) as strings, with DataErrors for empty, non-UTF-8 or malformed files, a
    column named twice, or a row with more fields than the header."""
    text = read_text(path)
    if not text.strip():
        raise DataError("empty file", path)
    sep = _separator(path)
    check_fields(text, sep, path)
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError("empty file", path) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot parse as a table: {exc}", path) from None


def pick_column(columns: list[str], given: str | None, defaults: tuple[str, ...], what: str, path: Path,
                option: str) -> str | None:
    """The column named by ``option`` (``given``), else the one of the usual names the header has (in any
    case); two of them are ambiguous and refused, naming both."""
    if given is not None:
        if given not in columns:
            raise DataError(f"{option} {given!r}: no such column; the header has {columns}", path, 1)
        return given
    rank = {d.lower(): k for k, d in enumerate(defaults)}  # in any case: labs write Variant, Mutations, Activity
    found = sorted((c for c in columns if c.strip().lower() in rank), key=lambda c: rank[c.strip().lower()])
    if len(found) > 1:
        raise DataError(f"both {found[0]!r} and {found[1]!r} could be the {what} column; name one with {option}",
                        path, 1)
    return found[0] if found else None


def load_table(path: str | Path, parent: str | None = None, sequence_col: str | None = None,
               mutant_col: str | None = None, score_col: str | None = None,
               mutation_format: MutationFormat = PROTEINGYM_FORMAT, name: str | None = None,
               seed: int = 0) -> VariantSet:
    """A CSV/TSV of variants with a numeric score: full sequences, or mutation strings against ``parent``.

    ProteinGym's columns (``mutant``, ``mutated_sequence``, ``DMS_score``) and the names labs use (``variant``,
    ``mutation(s)``, ``activity``, ...) are found without options. Full sequences given with a ``parent`` are read
    as its substitutions: their mutation strings (in ``mutation_format``) are derived, so that one-hot features,
    predict's unseen-substitution check and design's measured set see what was measured; a sequence of another
    length (an indel) is refused naming its line. Rows with the same sequence are merged when their labels agree
    and refused when they don't.
    """
    path = input_file(path, option("input"))
    table = read_table(path)
    columns = list(table.columns)
    sequence_col = pick_column(columns, sequence_col, SEQUENCE_COLUMNS, "sequence", path, option("sequence_col"))
    mutant_col = pick_column(columns, mutant_col, MUTANT_COLUMNS, "mutant", path, option("mutant_col"))
    score_col = pick_column(columns, score_col, SCORE_COLUMNS, "score", path, option("score_col"))
    if score_col is None:
        raise DataError(f"no score column (looked for {list(SCORE_COLUMNS)}; name one with {option('score_col')}); "
                        f"the header has {columns}", path, 1)
    if sequence_col is None and mutant_col is None:
        raise DataError(f"no sequence or mutant column (name one with {option('sequence_col')} or "
                        f"{option('mutant_col')}); "
                        f"the header has {columns}", path, 1)
    if sequence_col is None and parent is None:
        raise DataError(f"mutation strings need a parent sequence ({option('parent')} FASTA or sequence)", path)
    if parent is None and mutant_col is not None:  # ProteinGym: mutations and sequences; the parent follows
        parent = derive_parent([(offset + 2, cells[0], check_sequence(cells[1], path, offset + 2))
                                for offset, cells in enumerate(zip(table[mutant_col], table[sequence_col]))],
                               mutation_format, path)

    rows: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    seen: dict[str, tuple[int, float]] = {}
    kept_lines: list[int] = []
    for offset, record in enumerate(table.itertuples(index=False)):
        number = offset + 2  # the header is line 1
        cells = dict(zip(columns, record))
        label = parse_label(cells[score_col], path, number)
        mutations, aligned = None, ""
        if mutant_col is not None and parent is not None:
            parsed = parse_mutations(cells[mutant_col], parent, mutation_format, path, number)
            aligned = apply_mutations(parent, parsed)
            mutations = len(parsed)
        if sequence_col is not None:
            sequence = check_sequence(cells[sequence_col], path, number)
            if mutations is not None and sequence != expressed_sequence(aligned):
                raise DataError(f"mutant {cells[mutant_col]!r} applied to the parent does not give the "
                                f"row's sequence", path, number)
        else:
            sequence = expressed_sequence(aligned)
        genotype = cells[mutant_col] if mutant_col is not None else ""
        if mutations is None:
            mutations = hamming_to_parent(sequence, parent)
            aligned = sequence if mutations >= 0 else ""
            if parent is not None:  # the substitutions, so that a run knows what was measured
                if mutations < 0:
                    raise DataError(f"the sequence has {len(sequence)} residues, the parent {len(parent)}: an "
                                    f"insertion or deletion; mimo reads sequences given with {option('parent')} as "
                                    f"substitutions of it (leave {option('parent')} out to embed sequences of "
                                    f"any length)", path, number)
                genotype = mutation_string(sequence, parent, mutation_format)
        sid = sequence_id(sequence)
        if sid in seen:
            first_line, first_label = seen[sid]
            if first_label != label:
                raise DataError(f"same sequence as line {first_line} but a different label "
                                f"({label} vs {first_label})", path, number)
            continue
        seen[sid] = (number, label)
        kept_lines.append(number)
        for key, value in zip(FRAME_COLUMNS, (sid, genotype, mutations, aligned, sequence, label)):
            rows[key].append(value)
    if not rows["id"]:
        raise DataError("no data rows", path)
    frame = make_frame(rows)
    splits = {"random": fraction_split(len(frame), seed=0)}
    if seed:
        splits[seeded_name("random", seed)] = fraction_split(len(frame), seed=seed)
    splits.update(read_fold_columns(table, columns, kept_lines, path))
    read_as = {"sequence": sequence_col, "mutant": mutant_col, "score": score_col}
    return VariantSet(name or path.stem, frame, parent, mutation_format, splits,
                      {k: v for k, v in read_as.items() if v is not None})


def read_fold_columns(table: pd.DataFrame, columns: list[str], kept_lines: list[int], path: Path) -> dict:
    """Cross-validation folds given in the file (``fold_*`` columns of non-negative integers, as ProteinGym's),
    for the rows kept (merged duplicates keep their first line)."""
    folds = {}
    for column in (c for c in columns if c.startswith(FOLD_PREFIX)):
        values = table[column].to_numpy()[[line - 2 for line in kept_lines]]
        for line, value in zip(kept_lines, values):
            if not str(value).strip().isdigit():
                raise DataError(f"fold column {column!r} holds {value!r}, not a fold number (0, 1, ...)", path, line)
        folds[column] = np.array([str(int(v)) for v in values], dtype=object)
    return folds


def load_fasta(path: str | Path, parent: str | None = None, name: str | None = None) -> VariantSet:
    """Sequences to embed only (labels NaN); identical sequences are kept once."""
    path = Path(path)
    rows: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    seen: set[str] = set()
    for header, sequence in read_fasta(path):
        sid = sequence_id(sequence)
        if sid in seen:
            continue
        seen.add(sid)
        n = hamming_to_parent(sequence, parent)
        for key, value in zip(FRAME_COLUMNS, (sid, header, n, sequence if n >= 0 else "", sequence, np.nan)):
            rows[key].append(value)
    return VariantSet(name or path.stem, make_frame(rows), parent)


def read_split_file(path: str | Path, frame: pd.DataFrame) -> np.ndarray:
    """A user's split: two columns (an id or genotype, then train/valid/test). Unlisted rows are left out."""
    path = input_file(path, "--split-file")
    table = read_table(path)
    if table.shape[1] < 2:
        raise DataError("a split file needs two columns: id or genotype, then train/valid/test", path, 1)
    by_id = {sid: i for i, sid in enumerate(frame["id"])}
    by_genotype = {g: i for i, g in enumerate(frame["mutations"]) if g}
    split = np.full(len(frame), "none", dtype=object)
    aliases = {"validation": "valid", "val": "valid", "dev": "valid"}
    first_line: dict[int, int] = {}
    for offset, (key, value) in enumerate(zip(table.iloc[:, 0], table.iloc[:, 1])):
        number = offset + 2
        value = aliases.get(value.strip().lower(), value.strip().lower())
        if value not in SPLIT_NAMES:
            raise DataError(f"split {value!r} is not one of {list(SPLIT_NAMES)}", path, number)
        row = by_id.get(key.strip(), by_genotype.get(key.strip()))
        if row is None:
            raise DataError(f"{key!r} is neither an id nor a genotype of the dataset", path, number)
        if row in first_line:
            raise DataError(f"{key!r} names the same sequence as line {first_line[row]}; each row may appear once",
                            path, number)
        first_line[row] = number
        split[row] = value
    return split
