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
