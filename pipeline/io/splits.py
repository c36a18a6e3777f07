"""Splits of a dataset: named train/valid/test assignments and cross-validation fold schemes, and their
identity (``split_hash``). Pure functions of row counts, ids and positions; reading a user's split file is
``tables.read_split_file``.
"""
from __future__ import annotations

import hashlib

import numpy as np

SPLIT_NAMES = ("train", "valid", "test")
FOLD_PREFIX = "fold_"  # columns of a dataset file holding cross-validation fold ids (ProteinGym: fold_random_5)


def is_fold_scheme(assignment) -> bool:
    """Whether a recorded split column holds fold ids (0, 1, ...) rather than train/valid/test."""
    values = {str(a) for a in assignment} - {"none", ""}
    return bool(values) and all(v.isdigit() for v in values)


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


def sized_random_split(n: int, sizes: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Train/valid/test of the given sizes drawn at random (the avGFP report's balanced split)."""
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


# ------------------------------------------------------------------ ProteinGym's cross-validation fold schemes
#
# As ProteinGym's fold files were written (ProteinNPT's utils/cv_split.py, the version whose output ProteinGym
# publishes; read, not copied). A variant's position is that of its FIRST listed substitution, 1-based on the
# parent (ProteinGym's return_position_single).
# - modulo:     fold = position % k (positions 5, 10, ... -> fold 0).
# - contiguous: the distinct positions, in the order they first appear in the dataset file (not sorted), cut into
#               k consecutive blocks; the first n % k blocks get one position more. A file sorted by position gives
#               blocks contiguous in sequence; ProteinGym's DNJA1 file is sorted as text, so its published
#               "contiguous" folds are not (reproduced as published; `fold_schemes_note` says when it happens).
# - random:     numpy's legacy RandomState(42).randint(0, k, n): one independent draw per row, as ProteinGym's
#               run drew it for the first assay of a fresh run. (Its published columns continue one generator
#               across all assays: DNJA1's starts 774,083 words in; tested.)
# Multi-mutants (ProteinGym makes position folds on singles only, so there is no published rule): a multi-mutant
# takes the fold of its first listed position, and only first positions define the blocks. Its other positions
# may sit in other folds, so position folds separate positions fully for singles only.
# Rows without a position (the parent itself, sequences not aligned to it) are in no fold of a position scheme.

FOLD_SCHEMES = ("random", "modulo", "contiguous")
PROTEINGYM_SEED = 42


def parse_fold_scheme(text: str) -> tuple[str, int] | None:
    """``modulo5`` -> ("modulo", 5); None when ``text`` names no scheme (e.g. a fold column of the file)."""
    for scheme in FOLD_SCHEMES:
        rest = str(text).removeprefix(scheme)
        if rest != text and rest.isdigit():
            return scheme, int(rest)
    return None


def random_folds(n: int, k: int, seed: int = PROTEINGYM_SEED, rng_offset: int = 0) -> np.ndarray:
    """``n`` independent fold ids in 0..k-1, drawn as ProteinGym drew them (legacy ``RandomState.randint``)."""
    state = np.random.RandomState(seed)
    if rng_offset:
        state._bit_generator.random_raw(int(rng_offset))  # skip what earlier assays of the same run consumed
    return state.randint(0, k, n).astype(np.int64)


def position_folds(positions: list[int | None], scheme: str, k: int) -> np.ndarray:
    """Fold id of each row from its first mutated position (None: no fold, -1), in the dataset file's order."""
    if scheme not in ("modulo", "contiguous"):
        raise ValueError(f"scheme must be modulo or contiguous, not {scheme!r}")
    distinct = list(dict.fromkeys(p for p in positions if p is not None))
    if len(distinct) < k:
        raise ValueError(f"{len(distinct)} mutated positions cannot make {k} position folds")
    if scheme == "modulo":
        return np.array([-1 if p is None else p % k for p in positions], dtype=np.int64)
    size, extra = divmod(len(distinct), k)
    block = np.repeat(np.arange(k), [size + (i < extra) for i in range(k)])
    lookup = dict(zip(distinct, block.tolist()))
    return np.array([-1 if p is None else lookup[p] for p in positions], dtype=np.int64)


def contiguous_out_of_order(positions: list[int | None]) -> bool:
    """Whether the positions first appear out of order, so that `contiguous` blocks are not contiguous."""
    distinct = list(dict.fromkeys(p for p in positions if p is not None))
    return distinct != sorted(distinct)
