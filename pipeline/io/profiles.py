"""Per-site amino-acid profiles a user brings: what a structure model (ProteinMPNN, ESM-IF1), an MSA or any other
tool says each position of their protein tolerates.

A profile is a probability over the 20 amino acids (``AMINO_ACIDS`` order) for each position it covers, and,
where the file says it, the wild-type residue of each. Readers, by file suffix:

- ``.npz``: ProteinMPNN's ``--conditional_probs_only`` output: ``log_p`` (samples, L, 21) log-probabilities in
  ``ACDEFGHIKLMNPQRSTVWYX``, ``S`` (L,) the wild type as indices in that alphabet, ``mask`` (L,) 0 where the
  structure had no coordinates (those positions are left uncovered). The samples (random decoding orders) are
  averaged as PROBABILITIES: the profile is the mixture of the samples' conditionals, the probability that a
  draw from the ensemble is that residue. Averaging log-probabilities instead (a geometric mean) lets one sample
  that rules a residue out drag it down even when the others like it. On the shared assays' singles the two
  readings score alike zero-shot (GFP 0.4854 vs 0.4850, pilin 0.0800 vs 0.0799, DNJA1 0.6808 both;
  ``python -m bench.profile_features --zero-shot``), so the choice rests on the argument, not the figures.
- ``.npy``: an (L, K) matrix of probabilities or log-probabilities; K = 20 reads as ESM-IF1's
  ``ACDEFGHIKLMNPQRSTVWY``, K = 21 as ProteinMPNN's ``ACDEFGHIKLMNPQRSTVWYX``; other alphabets with
  ``alphabet=`` (``--profile-alphabet``). No wild type: it is checked against the parent by length only.
- ``.csv``/``.tsv``: wide (a position column, 1-based, then one column per amino acid, optionally a wild-type
  column) or long (position, amino acid, value).
- ``.a2m``/``.a3m``/``.afa``/``.aln``/``.fasta``...: an MSA, query first (``mimo.pipeline.io.msa``).

Values are told apart by content: rows within [0, 1] summing to 1 are probabilities; all values <= 0 are
log-probabilities (each row's probabilities summing to at most 1: a row of zeros is refused, not read as
uniform); anything else is refused, as is a ProteinMPNN ``log_p`` holding positive values (probabilities saved
under that name). Letters outside the 20 (X, gap) are dropped and each row renormalised over the 20. A long
table may write its amino acids in three letters (``Ala``, ``ALA``). A profile that places no position on the
parent is refused.
"""
from __future__ import annotations

import zipfile

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError, input_file
from mimo.pipeline.io.variants import AMINO_ACIDS
from mimo.pipeline.io.msa import msa_profile

PROTEINMPNN_ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"
ESM_IF1_ALPHABET = AMINO_ACIDS
DEFAULT_ALPHABETS = {20: ESM_IF1_ALPHABET, 21: PROTEINMPNN_ALPHABET}
ROW_SUM_TOLERANCE = 0.01  # probabilities written with two decimals still read as probabilities
TABLE_SUFFIXES = {".csv", ".tsv", ".tab", ".txt"}
MSA_SUFFIXES = {".a2m", ".a3m", ".afa", ".aln", ".fa", ".fasta", ".fas", ".faa"}
POSITION_COLUMNS = ("position", "pos", "site", "resi", "index")
WT_COLUMNS = ("wt", "wild_type", "wildtype", "wt_aa", "native")
AA_COLUMNS = ("aa", "amino_acid", "mt", "mutant_aa", "residue")
VALUE_COLUMNS = ("value", "p", "prob", "probability", "log_p", "logp", "log_prob", "score")
THREE_LETTER = {"ALA": "A", "CYS": "C", "ASP": "D", "GLU": "E", "PHE": "F", "GLY": "G", "HIS": "H", "ILE": "I",
                "LYS": "K", "LEU": "L", "MET": "M", "ASN": "N", "PRO": "P", "GLN": "Q", "ARG": "R", "SER": "S",
                "THR": "T", "VAL": "V", "TRP": "W", "TYR": "Y", "XAA": "X", "UNK": "X"}
MAX_POSITION = 1 << 31  # a position beyond this is a damaged cell, not a residue (int64 would wrap it)


@dataclass
class Profile:
    """``probs`` (n, 20) over ``AMINO_ACIDS`` at 0-based ``positions`` (n,) of the profile's own numbering;
    ``wild_type``: the n wild-type letters, or None when the file does not say them."""

    probs: np.ndarray
    positions: np.ndarray
    wild_type: str | None
    format: str


def file_fingerprint(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: a cache built from a file refuses that file changed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def read_profile(path: str | Path, alphabet: str | None = None) -> Profile:
    """The profile in ``path`` (format by suffix, see the module); ``alphabet``: the column letters of a
    matrix (``.npy``/``.npz``) when they are not the defaults."""
    path = input_file(path, "--model profile:PATH")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_proteinmpnn(path, alphabet)
    if suffix == ".npy":
        return _read_matrix(path, alphabet)
    if suffix in TABLE_SUFFIXES:
        return _read_table(path)
    if suffix in MSA_SUFFIXES:
        return Profile(*msa_profile(path), "msa")
    raise DataError(f"unknown profile format {suffix!r}: .npz (ProteinMPNN), .npy (a matrix), .csv/.tsv (a table) "
                    f"or an MSA (.a2m, .a3m, .afa, .fasta)", path)


def _check_alphabet(alphabet: str, width: int, path: Path) -> str:
    missing = [a for a in AMINO_ACIDS if a not in alphabet]
    if missing or len(set(alphabet)) != len(alphabet):
        problem = f"lacks {''.join(missing)}" if missing else "repeats a letter"
        raise DataError(f"profile alphabet {alphabet!r} {problem}; it needs each of the 20 amino acids once", path)
    if len(alphabet) != width:
        raise DataError(f"the profile has {width} columns but the alphabet {alphabet!r} has {len(alphabet)} "
                        f"letters (--profile-alphabet)", path)
    return alphabet


def to_probabilities(values: np.ndarray, alphabet: str, path: Path, where=None, detect: bool = True) -> np.ndarray:
    """(n, K) probabilities or log-probabilities in ``alphabet`` -> (n, 20) probabilities over ``AMINO_ACIDS``,
    renormalised. ``where(row)`` names a row in errors (default: ``row N``). ``detect=False``: the values are
    known to be (unnormalised) probabilities."""
    where = where or (lambda row: f"row {row + 1}")
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"non-finite value {values[row, col]} at {where(row)}, column {alphabet[col]!r}", path)
    sums = values.sum(axis=1)
    if not detect:
        probs = values
    elif (values >= 0).all() and (values <= 1).all() and (np.abs(sums - 1) <= ROW_SUM_TOLERANCE).all():
        probs = values
    elif (values <= 0).all():
        probs = np.exp(values)
        over = probs.sum(axis=1) > 1 + ROW_SUM_TOLERANCE
        if over.any():
            row = int(np.argmax(over))
            raise DataError(f"read as log-probabilities (all values <= 0), but {where(row)}'s probabilities sum to "
                            f"{probs[row].sum():.4g}, above 1" + (" (every value is 0)" if not values[row].any()
                                                                else ""), path)
    else:
        row = int(np.argmax((values > 0).any(axis=1) & ((values > 1).any(axis=1) | (values < 0).any(axis=1)
                                                        | (np.abs(sums - 1) > ROW_SUM_TOLERANCE))))
        raise DataError(f"neither probabilities (values in [0, 1], rows summing to 1) nor log-probabilities (all "
                        f"<= 0): {where(row)} sums to {sums[row]:.4g} (values {values[row].min():.3g} to "
                        f"{values[row].max():.3g})", path)
    probs = probs[:, [alphabet.index(a) for a in AMINO_ACIDS]]
    total = probs.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise DataError(f"{where(int(np.argmax(total[:, 0] <= 0)))} gives the 20 amino acids no probability", path)
    return probs / total


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    try:  # allow_pickle=False: a profile file never runs code
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.ndarray):
            with data:
                return dict(data)
        return {"": data}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # a damaged .npz: BadZipFile
        raise DataError(f"cannot read as a NumPy file ({type(exc).__name__}: {str(exc)[:200]})", path) from None


def _read_proteinmpnn(path: Path, alphabet: str | None) -> Profile:
    arrays = _load_arrays(path)
    if "log_p" not in arrays or "S" not in arrays:
        raise DataError(f"a .npz profile is ProteinMPNN's --conditional_probs_only output, with log_p and S; this "
                        f"one has {sorted(arrays)}", path)
    log_p, wt = arrays["log_p"], arrays["S"]
    log_p = log_p[None] if log_p.ndim == 2 else log_p
    if log_p.ndim != 3 or wt.shape != (log_p.shape[1],):
        raise DataError(f"log_p {log_p.shape} should be (samples, L, letters) and S (L,); S is {wt.shape}", path)
    alphabet = _check_alphabet(alphabet or PROTEINMPNN_ALPHABET, log_p.shape[2], path)
    if log_p.dtype.kind not in "fiu" or not np.isfinite(log_p).all():
        raise DataError("log_p holds non-finite or non-numeric values", path)
    if (log_p > 1e-6).any():
        raise DataError(f"log_p holds positive values (up to {float(log_p.max()):.3g}): log-probabilities are <= 0; "
                        f"were probabilities saved under log_p? Save their logarithm, or the matrix as .npy", path)
    if wt.dtype.kind not in "iu":
        raise DataError(f"S should hold the wild type as integer indices into {alphabet!r}, not {wt.dtype}", path)
    if wt.min(initial=0) < 0 or wt.max(initial=0) >= len(alphabet):
        raise DataError(f"S holds indices outside the {len(alphabet)}-letter alphabet", path)
    if "mask" in arrays and (np.asarray(arrays["mask"]).size != len(wt)
                             or np.asarray(arrays["mask"]).dtype.kind not in "fiub"):
        raise DataError(f"mask should be {len(wt)} numbers (one per position), not {np.asarray(arrays['mask']).dtype} "
                        f"{np.asarray(arrays['mask']).shape}", path)
    mean = np.exp(log_p.astype(np.float64)).mean(axis=0)  # the mixture of the samples (see the module)
    probs = to_probabilities(mean, alphabet, path, lambda row: f"position {row + 1}", detect=False)
    keep = np.ones(len(wt), bool) if "mask" not in arrays else np.asarray(arrays["mask"]).reshape(-1) > 0
    letters = "".join(alphabet[i] for i in wt)
    return Profile(probs[keep], np.flatnonzero(keep), "".join(np.array(list(letters))[keep]), "proteinmpnn-npz")


def _read_matrix(path: Path, alphabet: str | None) -> Profile:
    values = _load_arrays(path)[""]
    if values.ndim != 2 or values.dtype.kind not in "fiu":
        raise DataError(f"a .npy profile is an (L, 20) or (L, 21) numeric matrix, not {values.dtype} "
                        f"{values.shape}", path)
    if alphabet is None and values.shape[1] not in DEFAULT_ALPHABETS:
        raise DataError(f"the matrix has {values.shape[1]} columns; name their letters with --profile-alphabet "
                        f"(20: {ESM_IF1_ALPHABET}, 21: {PROTEINMPNN_ALPHABET} are read without it)", path)
    alphabet = _check_alphabet(alphabet or DEFAULT_ALPHABETS[values.shape[1]], values.shape[1], path)
    probs = to_probabilities(values, alphabet, path, lambda row: f"position {row + 1}")
    return Profile(probs, np.arange(len(probs)), None, "matrix-npy")


# ----------------------------------------------------------------------------------------------- tables

def _column(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def numeric_cells(cells: pd.Series, path: Path, column: str, integer: bool = False, hint: str = "") -> np.ndarray:
    """Cells as finite numbers; a DataError names the column and the first line that holds none."""
    from mimo.pipeline.io.tables import clip

    values = pd.to_numeric(cells.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (((values != np.round(values)) | (np.abs(values) >= MAX_POSITION)) if integer
                                      else (np.abs(values) > FLOAT32_MAX))
    if bad.any():
        row = int(np.argmax(bad))
        kind = ("an integer position" if integer else
                "a number a feature can hold (beyond float32's 3.4e38)" if np.isfinite(values[row]) else
                "a finite number")
        raise DataError(f"column {column!r} holds {clip(cells.iloc[row])}, not {kind} ({int(bad.sum())} such "
                        f"rows{hint})", path, row + 2)
    return values


def _read_table(path: Path) -> Profile:
    from mimo.pipeline.io.tables import read_table

    table = read_table(path)
    columns = list(table.columns)
    position = _column(columns, POSITION_COLUMNS)
    if position is None:
        raise DataError(f"a profile table needs a position column (one of {', '.join(POSITION_COLUMNS)}); the "
                        f"header has {columns}", path, 1)
    wide = [a for a in AMINO_ACIDS if a in columns]
    if wide:
        return _read_wide(table, path, position, wide)
    aa, value = _column(columns, AA_COLUMNS), _column(columns, VALUE_COLUMNS)
    if aa is None or value is None:
        raise DataError(f"a profile table is wide (a column per amino acid, {', '.join(AMINO_ACIDS)}) or long (a "
                        f"position, an amino-acid column such as 'aa' and a value column such as 'value'); the "
                        f"header has {columns}", path, 1)
    return _read_long(table, path, position, aa, value)


def _positions(table: pd.DataFrame, path: Path, column: str) -> np.ndarray:
    """1-based positions as 0-based; a DataError for a position below 1."""
    positions = numeric_cells(table[column], path, column, integer=True).astype(np.int64)
    if (positions < 1).any():
        row = int(np.argmax(positions < 1))
        raise DataError(f"position {positions[row]} in column {column!r}: positions count from 1", path, row + 2)
    return positions - 1


def _read_wide(table: pd.DataFrame, path: Path, position: str, present: list[str]) -> Profile:
    if len(present) < len(AMINO_ACIDS):
        missing = "".join(a for a in AMINO_ACIDS if a not in present)
        raise DataError(f"a wide profile table needs a column for each amino acid; {missing} missing", path, 1)
    positions = _positions(table, path, position)
    duplicated = pd.Series(positions).duplicated().to_numpy()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        raise DataError(f"position {positions[row] + 1} appears twice", path, row + 2)
    letters = AMINO_ACIDS + ("X" if "X" in table.columns else "")
    values = np.column_stack([numeric_cells(table[a], path, a) for a in letters])
    probs = to_probabilities(values, letters, path, lambda row: f"line {row + 2}")
    return Profile(probs, positions, _wild_type(table, path), "table-wide")


def _wild_type(table: pd.DataFrame, path: Path) -> str | None:
    column = _column(list(table.columns), WT_COLUMNS)
    if column is None:
        return None
    letters = table[column].str.strip().str.upper()
    bad = ~letters.isin(list(AMINO_ACIDS + "X"))
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataError(f"wild-type column {column!r} holds {table[column].iloc[row]!r}, not one amino acid",
                        path, row + 2)
    return "".join(letters)


def _read_long(table: pd.DataFrame, path: Path, position: str, aa: str, value: str) -> Profile:
    from mimo.pipeline.io.tables import clip

    positions = _positions(table, path, position)
    letters = table[aa].str.strip().str.upper()
    letters = letters.map(lambda a: THREE_LETTER.get(a, a))
    known = letters.isin(list(AMINO_ACIDS + "X"))
    if not known.any():
        raise DataError(f"no amino acid recognised in column {aa!r} (it holds {clip(table[aa].iloc[0])}, ...): "
                        f"write one letter (A) or three (Ala)", path, 2)
    values = numeric_cells(table[value], path, value)
    frame = pd.DataFrame({"position": positions, "aa": letters, "value": values})
    frame = frame[frame["aa"].isin(list(AMINO_ACIDS + "X"))]
    twice = frame.duplicated(["position", "aa"]).to_numpy()
    if twice.any():
        row = frame.index[int(np.argmax(twice))]
        raise DataError(f"position {positions[row] + 1}, amino acid {letters[row]!r} appears twice", path, row + 2)
    wide = frame.pivot(index="position", columns="aa", values="value").reindex(columns=list(AMINO_ACIDS + "X"))
    incomplete = wide[list(AMINO_ACIDS)].isna().any(axis=1).to_numpy()
    if incomplete.any():
        at = wide.index[int(np.argmax(incomplete))]
        have = "".join(a for a in AMINO_ACIDS if pd.notna(wide.loc[at, a]))
        raise DataError(f"position {at + 1} has values for {have or 'no amino acid'}, not all 20", path)
    letters_used = AMINO_ACIDS + ("X" if wide["X"].notna().all() else "")
    probs = to_probabilities(wide[list(letters_used)].to_numpy(), letters_used, path,
                             lambda row: f"position {wide.index[row] + 1}")
    return Profile(probs, wide.index.to_numpy(np.int64), None, "table-long")


# ------------------------------------------------------------------------------------------ on the parent

def place_profile(profile: Profile, parent: str, offset: int, path: str | Path) -> np.ndarray:
    """(len(parent), 20) probabilities, NaN rows where the profile does not reach; the profile's position p is
    the parent's p + ``offset``. Its wild type must be the parent's there (a DataError names the first
    position that differs); a profile without one must have the parent's length (offset 0) or fit in it."""
    if not len(profile.probs):
        raise DataError("the profile covers no position (every position masked or absent)", path)
    if not -int(profile.positions.max()) - 1 < offset < len(parent):
        raise DataError(f"--profile-offset {offset} places every profile position outside the {len(parent)}-residue "
                        f"parent", path)
    positions = profile.positions + offset
    outside = (positions < 0) | (positions >= len(parent))
    if profile.wild_type is None and offset == 0 and len(profile.probs) != len(parent):
        raise DataError(f"the profile has {len(profile.probs)} positions and no wild type to align by; the parent "
                        f"has {len(parent)} residues (--profile-offset N places the profile's first position at "
                        f"the parent's N+1)", path)
    if outside.any():
        row = int(np.argmax(outside))
        raise DataError(f"profile position {profile.positions[row] + 1} falls at parent position "
                        f"{positions[row] + 1}, outside the {len(parent)}-residue parent (--profile-offset "
                        f"{offset})", path)
    if profile.wild_type is not None:
        differ = [k for k, p in enumerate(positions) if profile.wild_type[k] != parent[p]]
        if differ:
            k = differ[0]
            raise DataError(f"the profile's wild type is not the dataset's parent: profile position "
                            f"{profile.positions[k] + 1} is {profile.wild_type[k]!r}, the parent has "
                            f"{parent[positions[k]]!r} at {positions[k] + 1} ({len(differ)} of {len(positions)} "
                            f"positions differ; --profile-offset N shifts the profile)", path)
    table = np.full((len(parent), len(AMINO_ACIDS)), np.nan)
    table[positions] = profile.probs
    return table


STEM = re.compile(r"[^A-Za-z0-9_.-]")


def feature_stem(path: str | Path) -> str:
    """A file's stem as a feature name can hold it (``+`` joins features, ``/`` parts paths)."""
    return STEM.sub("_", Path(path).stem)
