"""Datasets: the GFP data with TAPE's split and the balanced split, and any user's table or FASTA.

A dataset is a ``VariantSet``: one row per distinct sequence with columns ``id`` (hash of the sequence),
``mutations`` (the genotype as written in the source), ``n_mutations`` (-1 when unknown), ``aligned``
(parent-aligned sequence, ``*`` for stops; empty when no parent is known), ``sequence`` (what a model
embeds) and ``label`` (NaN for embedding-only data), plus named splits (``train``/``valid``/``test``).
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .errors import DataError, input_file, read_text
from .variants import (PROTEINGYM_FORMAT, SARKISYAN_FORMAT, MutationFormat, apply_mutations, check_sequence,
                       derive_parent, expressed_sequence, parse_mutations, read_fasta, sequence_id)

GFP_PARENT = (
    "SKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTLVTTLSYGVQCFSRYPDHMKQHDFFKSAMPEGYVQERTIFFK"
    "DDGNYKTRAEVKFEGDTLVNRIELKGIDFKEDGNILGHKLEYNYNSHNVYIMADKQKNGIKVNFKIRHNIEDGSVQLADHYQQNTPIGDGPVLLPDNH"
    "YLSTQSALSKDPNEKRDHMVLLEFVTAAGITHGMDELYK"
)
GFP_GENOTYPES = "amino_acid_genotypes_to_brightness.tsv"
GFP_VALID_LIST = "tape_fluorescence_valid_genotypes.txt"
SPLIT_NAMES = ("train", "valid", "test")
FOLD_PREFIX = "fold_"  # columns of a dataset file holding cross-validation fold ids (ProteinGym: fold_random_5)


def is_fold_scheme(assignment) -> bool:
    """Whether a recorded split column holds fold ids (0, 1, ...) rather than train/valid/test."""
    values = {str(a) for a in assignment} - {"none", ""}
    return bool(values) and all(v.isdigit() for v in values)
FRAME_COLUMNS = ["id", "mutations", "n_mutations", "aligned", "sequence", "label"]


@dataclass
class VariantSet:
    """A named dataset: one row per distinct sequence, and its named splits."""

    name: str
    frame: pd.DataFrame
    parent: str | None = None
    mutation_format: MutationFormat = PROTEINGYM_FORMAT
    splits: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def checksum(self) -> str:
        """SHA-256 of what a cache depends on: ids, genotypes, labels, mutation counts, parent."""
        h = hashlib.sha256((self.parent or "").encode())
        table = self.frame[["id", "mutations", "n_mutations", "label"]]
        h.update(table.to_csv(index=False, float_format="%.10g").encode())
        return h.hexdigest()

    def sample(self, n: int, seed: int = 0) -> "VariantSet":
        """A seeded random subset of ``n`` rows (all rows when ``n`` is larger), named ``<name>-sample<n>``
        (``<name>-sample<n>-seed<seed>`` for a seed other than 0)."""
        if n < 1:
            raise DataError(f"a sample needs at least 1 row, not {n}")
        if n >= len(self.frame):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self.frame), n, replace=False))
        return VariantSet(seeded_name(f"{self.name}-sample{n}", seed), self.frame.iloc[rows].reset_index(drop=True), self.parent,
                          self.mutation_format, {k: v[rows] for k, v in self.splits.items()})

    def split_hashes(self) -> dict[str, str]:
        """Each named split's content hash (``split_hash``)."""
        ids = self.frame["id"].to_numpy()
        return {name: split_hash(ids, assignment) for name, assignment in self.splits.items()}

    def splits_frame(self) -> pd.DataFrame:
        """``id`` plus one column per named split."""
        out = pd.DataFrame({"id": self.frame["id"].to_numpy()})
        for name, assignment in self.splits.items():
            out[name] = assignment
        return out


def split_hash(ids, assignment) -> str:
    """A split's identity: the first 16 hex digits of the SHA-256 of its (id, part) pairs in id order.

    Rows in no part (``none``) are left out, so a split's hash does not depend on which other rows a cache
    holds. Fold schemes (parts ``0``..``k-1``) are hashed the same way."""
    pairs = sorted((str(i), str(a)) for i, a in zip(ids, assignment) if str(a) not in ("none", ""))
    return hashlib.sha256("\n".join(f"{i},{a}" for i, a in pairs).encode()).hexdigest()[:16]


def seeded_name(name: str, seed: int) -> str:
    """The name of a random split drawn with ``seed``: ``balanced`` for seed 0, ``balanced-seed3`` for 3.

    Seeds get their own names so that a split, once written to a cache, never changes under its name."""
    return name if seed == 0 else f"{name}-seed{seed}"


def _frame(rows: dict[str, list]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
    frame["n_mutations"] = frame["n_mutations"].astype(np.int64)
    frame["label"] = frame["label"].astype(np.float64)
    return frame


# --------------------------------------------------------------------------- GFP (Sarkisyan 2016, TAPE)

def data_home() -> Path:
    """Where mimo keeps data it downloads: ``$MIMO_HOME``, else ``~/.cache/mimo``."""
    return Path(os.environ.get("MIMO_HOME") or Path.home() / ".cache" / "mimo")


def resolve_data_dir(data: str | Path | None = None, download: bool = True,
                     log: Callable[[str], None] | None = None) -> Path:
    """Where the GFP files are: ``--data``, then ``$MIMO_DATA``, then ``<data_home()>/gfp``.

    The per-user folder is filled on first use: both public files are downloaded there (sha256 checked),
    as scikit-learn's ``fetch_*`` functions do. A folder the user named is never written to.
    """
    if data is not None or os.environ.get("MIMO_DATA"):
        directory = Path(data if data is not None else os.environ["MIMO_DATA"])
        where = "--data" if data is not None else "$MIMO_DATA"
        if not (directory / GFP_GENOTYPES).exists():
            raise DataError(f"no {GFP_GENOTYPES} here ({where}); download the GFP data into it with "
                            f"`mimo data fetch {directory}`", directory)
        return directory.resolve()
    directory = data_home() / "gfp"
    if (directory / GFP_GENOTYPES).exists() and (directory / GFP_VALID_LIST).exists():
        return directory.resolve()
    if not download:
        raise DataError(f"the GFP data is not here; run `mimo data fetch {directory}` (or pass --data DIR, or set "
                        f"MIMO_DATA)", directory)
    from . import fetch

    try:
        fetch.fetch_gfp(directory, fetch.GENOTYPES_URL, fetch.GENOTYPES_SHA256, fetch.TAPE_URL,
                        log=log or (lambda text: print(text, file=sys.stderr)))
    except DataError as exc:
        raise DataError(f"the GFP data is not here and could not be downloaded ({exc.message}); on a machine with "
                        f"a network run `mimo data fetch {directory}`, or pass --data DIR / set MIMO_DATA to a "
                        f"folder that has it", directory) from None
    return directory.resolve()


def read_genotypes(path: str | Path, parent: str = GFP_PARENT) -> pd.DataFrame:
    """Read Sarkisyan's genotype TSV into a dataset frame (stops deleted from ``sequence``)."""
    path = Path(path)
    lines = iter(read_text(path).splitlines())
    rows: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    seen: dict[str, int] = {}
    header = next(lines, "").rstrip("\n").split("\t")
    if not header or header[0] == "":
        raise DataError("empty file: expected a header with aaMutations and medianBrightness", path, 1)
    missing = {"aaMutations", "medianBrightness"} - set(header)
    if missing:
        raise DataError(f"missing column(s) {sorted(missing)} in header {header}", path, 1)
    geno_col, label_col = header.index("aaMutations"), header.index("medianBrightness")
    for number, raw in enumerate(lines, start=2):
        if not raw.strip():
            continue
        cells = raw.split("\t")
        if len(cells) <= max(geno_col, label_col):
            raise DataError(f"expected at least {max(geno_col, label_col) + 1} tab-separated fields, "
                            f"found {len(cells)}", path, number)
        genotype = cells[geno_col].strip()
        mutations = parse_mutations(genotype, parent, SARKISYAN_FORMAT, path, number)
        label = parse_label(cells[label_col], path, number)
        aligned = apply_mutations(parent, mutations)
        sequence = expressed_sequence(aligned)
        sid = sequence_id(sequence)
        if sid in seen:
            raise DataError(f"genotype {genotype!r} gives the same sequence as line {seen[sid]}", path, number)
        seen[sid] = number
        for key, value in zip(FRAME_COLUMNS, (sid, genotype, len(mutations), aligned, sequence, label)):
            rows[key].append(value)
    if not rows["id"]:
        raise DataError("no genotype rows in file", path)
    return _frame(rows)


def parse_label(text: str, path: str | Path | None, line: int | None) -> float:
    """A finite float label, or a DataError naming what the cell held."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise DataError(f"label {text!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise DataError(f"label {text!r} is not finite", path, line)
    return value


def read_genotype_list(path: str | Path) -> list[str]:
    """One genotype string a line (TAPE's validation list)."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def tape_split(frame: pd.DataFrame, valid_genotypes: list[str], valid_path: str | Path | None = None) -> np.ndarray:
    """TAPE's fluorescence split: test = 4+ substitutions, valid = the listed genotypes, train = the rest."""
    index = {g: i for i, g in enumerate(frame["mutations"])}
    split = np.where(frame["n_mutations"].to_numpy() >= 4, "test", "train").astype(object)
    for number, genotype in enumerate(valid_genotypes, start=1):
        row = index.get(genotype)
        if row is None:
            raise DataError(f"validation genotype {genotype!r} is not in the genotype table", valid_path, number)
        if split[row] == "test":
            raise DataError(f"validation genotype {genotype!r} has 4+ mutations", valid_path, number)
        split[row] = "valid"
    return split


def sized_random_split(n: int, sizes: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Train/valid/test of the given sizes drawn at random (the report's balanced split)."""
    if sum(sizes) > n:
        raise ValueError(f"split sizes {sizes} exceed the {n} rows")
    order = np.random.default_rng(seed).permutation(n)
    split = np.full(n, "none", dtype=object)
    start = 0
    for name, size in zip(SPLIT_NAMES, sizes):
        split[order[start:start + size]] = name
        start += size
    return split


def fraction_split(n: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> np.ndarray:
    """A seeded random split by fractions: the default for a user's dataset."""
    n_valid, n_test = int(round(fractions[1] * n)), int(round(fractions[2] * n))
    return sized_random_split(n, (n - n_valid - n_test, n_valid, n_test), seed)


def load_gfp(data: str | Path | None = None, seed: int = 0) -> VariantSet:
    """The avGFP dataset with TAPE's split (``tape``) and the report's balanced split (``balanced``, drawn with
    seed 0; another ``seed`` adds ``balanced-seed<seed>``)."""
    directory = resolve_data_dir(data)
    frame = read_genotypes(directory / GFP_GENOTYPES)
    valid_path = directory / GFP_VALID_LIST
    tape = tape_split(frame, read_genotype_list(valid_path), valid_path)
    sizes = tuple(int((tape == name).sum()) for name in SPLIT_NAMES)
    splits = {"tape": tape, "balanced": sized_random_split(len(frame), sizes, 0)}
    if seed:
        splits[seeded_name("balanced", seed)] = sized_random_split(len(frame), sizes, seed)
    return VariantSet("gfp", frame, GFP_PARENT, SARKISYAN_FORMAT, splits)


# --------------------------------------------------------------------------- a user's data

SCORE_COLUMNS = ("DMS_score", "score", "label", "fitness", "y")


def _separator(path: Path) -> str:
    return "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (TSV for .tsv/.tab/.txt) as strings, with DataErrors for empty, non-UTF-8 or malformed files."""
    text = read_text(path)
    if not text.strip():
        raise DataError("empty file", path)
    try:
        return pd.read_csv(io.StringIO(text), sep=_separator(path), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError("empty file", path) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"cannot parse as a table: {exc}", path) from None


def _pick(columns: list[str], given: str | None, defaults: tuple[str, ...], what: str, path: Path) -> str | None:
    if given is not None:
        if given not in columns:
            raise DataError(f"no {what} column {given!r}; the header has {columns}", path, 1)
        return given
    return next((c for c in defaults if c in columns), None)


def load_table(path: str | Path, parent: str | None = None, sequence_col: str | None = None,
               mutant_col: str | None = None, score_col: str | None = None,
               mutation_format: MutationFormat = PROTEINGYM_FORMAT, name: str | None = None,
               seed: int = 0) -> VariantSet:
    """A CSV/TSV of variants with a numeric score: full sequences, or mutation strings against ``parent``.

    ProteinGym's columns (``mutant``, ``mutated_sequence``, ``DMS_score``) are found without options.
    Rows with the same sequence are merged when their labels agree and refused when they don't.
    """
    path = input_file(path, "--input")
    table = read_table(path)
    columns = list(table.columns)
    sequence_col = _pick(columns, sequence_col, ("mutated_sequence", "sequence"), "sequence", path)
    mutant_col = _pick(columns, mutant_col, ("mutant", "mutations", "aaMutations"), "mutant", path)
    score_col = _pick(columns, score_col, SCORE_COLUMNS, "score", path)
    if score_col is None:
        raise DataError(f"no score column (looked for {list(SCORE_COLUMNS)}; name one with --score-col); "
                        f"the header has {columns}", path, 1)
    if sequence_col is None and mutant_col is None:
        raise DataError(f"no sequence or mutant column (name one with --sequence-col or --mutant-col); "
                        f"the header has {columns}", path, 1)
    if sequence_col is None and parent is None:
        raise DataError("mutation strings need a parent sequence (--parent FASTA or sequence)", path)
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
        if mutations is None:
            mutations = hamming_to_parent(sequence, parent)
            aligned = sequence if mutations >= 0 else ""
        genotype = cells[mutant_col] if mutant_col is not None else ""
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
    frame = _frame(rows)
    splits = {"random": fraction_split(len(frame), seed=0)}
    if seed:
        splits[seeded_name("random", seed)] = fraction_split(len(frame), seed=seed)
    splits.update(read_fold_columns(table, columns, kept_lines, path))
    return VariantSet(name or path.stem, frame, parent, mutation_format, splits)


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


def hamming_to_parent(sequence: str, parent: str | None) -> int:
    """Substitutions against the parent for a same-length sequence; -1 when not comparable."""
    if parent is None or len(sequence) != len(parent):
        return -1
    return sum(a != b for a, b in zip(sequence, parent))


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
    return VariantSet(name or path.stem, _frame(rows), parent)


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


FASTA_SUFFIXES = {".fa", ".fasta", ".faa", ".fas"}


def load_dataset(input: str | Path | None = None, *, data: str | Path | None = None, parent: str | None = None,
                 sequence_col: str | None = None, mutant_col: str | None = None, score_col: str | None = None,
                 zero_based: bool = False, name: str | None = None, seed: int = 0,
                 sample: int | None = None) -> VariantSet:
    """A dataset: the GFP data when ``input`` is None (found as ``resolve_data_dir`` says), else a user's
    CSV/TSV of variants with a score, or a FASTA file of sequences to embed.

    ``parent``: the parent sequence or a FASTA file holding it (needed for mutation strings; found from the
    rows of a ProteinGym file otherwise). ``zero_based``: mutation positions count from 0. ``seed``: a seed
    other than 0 adds a random split drawn with it (``balanced-seed<seed>``, ``random-seed<seed>``).
    ``sample``: a seeded random subset of that many rows.
    """
    from .variants import MutationFormat, load_parent

    if input is None:
        dataset = load_gfp(data, seed=seed)
        if name:
            dataset.name = name
    else:
        parent_seq = load_parent(parent) if parent else None
        path = Path(input)
        if path.suffix.lower() in FASTA_SUFFIXES:
            dataset = load_fasta(path, parent_seq, name)
        else:
            fmt = MutationFormat(prefix="", first_index=0 if zero_based else 1)
            dataset = load_table(path, parent_seq, sequence_col, mutant_col, score_col, fmt, name, seed)
    return dataset if sample is None else dataset.sample(sample, seed)
