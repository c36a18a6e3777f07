"""A position-specific profile from a multiple sequence alignment, the site-independent model of Hopf et al.
2017 (EVmutation's "independent" baseline) in closed form.

Input: A2M, A3M or aligned FASTA, the query (the user's protein) first. Lower-case letters and ``.`` are insert
states (A2M/A3M) and are dropped, so every sequence is read on the query's match columns; columns where the
query has a gap are dropped too. A query header ending ``/START-END`` (jackhmmer, EVcouplings) places the
query's first residue at START; lower-case query residues (EVcouplings' non-focus positions) advance the
numbering but get no profile row (the feature marks variants there as not covered).

- Sequence weights: 1 / the number of sequences within 80% identity of each (itself included), identity being
  the fraction of match columns with the same character, gaps included (EVcouplings' default).
- Frequencies: weighted counts of the 20 amino acids per column; gaps (and X, B, Z...) are left out of the
  column, as the ratio p(mutant) / p(wild type) the model scores does not depend on the gap state.
- Pseudocount: ``PSEUDOCOUNT`` effective sequences spread evenly over the 20 amino acids, so that a residue
  never seen at a column gets a finite, small probability that shrinks as the column's evidence grows
  (Hopf et al. regularise the fields with an L2 penalty instead, to the same end; the closed form needs no
  optimiser).

The pairwise identities are counted with sparse one-hot products (scipy), in blocks of rows, so memory stays
at one block against the whole alignment.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy import sparse

from mimo.pipeline.errors import DataError, read_text
from mimo.pipeline.io.variants import AMINO_ACIDS

IDENTITY = 0.8
PSEUDOCOUNT = 1.0
GAP = len(AMINO_ACIDS)  # index of gaps and unknown letters in the encoded alignment
BLOCK_ROWS = 512
_RANGE = re.compile(r"/(\d+)-(\d+)\s*$")
_CODES = np.full(256, GAP, dtype=np.uint8)
_CODES[np.frombuffer(AMINO_ACIDS.encode(), np.uint8)] = np.arange(len(AMINO_ACIDS))


def read_alignment(path: Path) -> list[tuple[str, str, int]]:
    """(header, aligned text, line) of each record, in file order."""
    records: list[tuple[str, str, int]] = []
    header, chunks, line_of = None, [], 0
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith(">"):
            if header is not None:
                records.append((header, "".join(chunks), line_of))
            header, chunks, line_of = text[1:].strip(), [], number
        elif header is None:
            raise DataError("an MSA needs '>' header lines, the query first; found sequence data before any",
                            path, number)
        else:
            chunks.append(text)
    if header is not None:
        records.append((header, "".join(chunks), line_of))
    return records


def match_columns(text: str) -> str:
    """The match states of an A2M/A3M row: upper-case letters and ``-`` (insert letters and ``.`` dropped)."""
    return "".join(c for c in text if not (c.islower() or c == "."))


def _query(records, path: Path) -> tuple[str, np.ndarray, str]:
    """The query's wild type on kept columns, their 0-based positions, and the kept-column mask text."""
    if not records:
        raise DataError("no sequences in the MSA (its first record must be the query, the dataset's protein)", path)
    header, text, line = records[0]
    start = int(_RANGE.search(header).group(1)) - 1 if _RANGE.search(header) else 0
    wild, positions, index = [], [], start
    for c in text:
        if c.isalpha() and c.isupper():
            wild.append(c)
            positions.append(index)
        if c.isalpha():
            index += 1
    if not wild:
        raise DataError(f"the MSA's first record ({header!r}) has no residues in match columns: the query (the "
                        f"dataset's protein) must come first", path, line)
    return "".join(wild), np.array(positions, np.int64), match_columns(text)


def encode_alignment(records, query_columns: str, path: Path) -> np.ndarray:
    """(N, kept columns) codes 0..19 for the amino acids, ``GAP`` for gaps and other letters, on the columns
    where the query has a residue."""
    keep = np.array([c != "-" for c in query_columns])
    rows = np.empty((len(records), int(keep.sum())), np.uint8)
    for k, (header, text, line) in enumerate(records):
        columns = match_columns(text).upper()
        if len(columns) != len(query_columns):
            raise DataError(f"record {header!r} has {len(columns)} match columns, the query {len(query_columns)} "
                            f"(an A2M/A3M row keeps upper-case letters and '-' as match states)", path, line)
        rows[k] = _CODES[np.frombuffer(columns.encode("ascii", "replace"), np.uint8)][keep]
    return rows


def sequence_weights(codes: np.ndarray, identity: float = IDENTITY) -> np.ndarray:
    """1 / (number of sequences at least ``identity`` identical to each, itself included)."""
    n, length = codes.shape
    cols = (np.arange(length) * (GAP + 1))[None, :] + codes
    onehot = sparse.csr_matrix((np.ones(n * length, np.float32), cols.ravel(), np.arange(0, n * length + 1, length)),
                               shape=(n, length * (GAP + 1)))
    threshold = identity * length
    neighbours = np.empty(n)
    for start in range(0, n, BLOCK_ROWS):
        same = (onehot[start:start + BLOCK_ROWS] @ onehot.T).toarray()
        neighbours[start:start + BLOCK_ROWS] = (same >= threshold - 1e-6).sum(axis=1)
    return 1.0 / neighbours


def column_profile(codes: np.ndarray, weights: np.ndarray, pseudocount: float = PSEUDOCOUNT) -> np.ndarray:
    """(columns, 20): weighted amino-acid frequencies, gaps left out, with ``pseudocount`` effective
    sequences spread evenly."""
    counts = np.zeros((codes.shape[1], GAP + 1))
    for column in range(codes.shape[1]):
        counts[column] = np.bincount(codes[:, column], weights=weights, minlength=GAP + 1)
    residues = counts[:, :GAP]
    return (residues + pseudocount / GAP) / (residues.sum(axis=1, keepdims=True) + pseudocount)


def msa_profile(path: str | Path) -> tuple[np.ndarray, np.ndarray, str]:
    """The profile of the MSA in ``path`` (see the module): probabilities (n, 20) over ``AMINO_ACIDS``, the query's
    0-based positions (n,) and its letters there."""
    path = Path(path)
    records = read_alignment(path)
    wild, positions, query_columns = _query(records, path)
    codes = encode_alignment(records, query_columns, path)
    probs = column_profile(codes, sequence_weights(codes))
    return probs, positions, wild
