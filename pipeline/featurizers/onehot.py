"""The built-in one-hot featurizer: no weights needed."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.variants import AMINO_ACIDS, STOP, check_aligned

ONEHOT_LETTERS = AMINO_ACIDS + STOP
MODE_NAMES = {"substitutions": "onehot", "sites": "onehot-sites", "full": "onehot-full"}


class OneHotFeaturizer:
    """One-hot features of parent-aligned sequences.

    ``mode="substitutions"`` (feature name ``onehot``) has one column per substitution seen in the dataset,
    so the parent is all zeros; ``mode="sites"`` (``onehot-sites``) adds one column per position mutated in
    the dataset, set whatever the new residue (named by the position alone, e.g. ``"64"``), so a substitution
    seen rarely or never still gets its site's weight; ``mode="full"`` (``onehot-full``) one-hot encodes every
    position over the 20 residues and the stop. Columns are fixed when the featurizer is made and recorded in
    the manifest.
    """

    kind = "onehot"

    def __init__(self, parent: str, columns: list[str] | None = None, mode: str = "substitutions",
                 batch_size: int = 8192):
        if mode not in MODE_NAMES:
            raise ValueError(f"unknown one-hot mode {mode!r}")
        self.parent = parent
        self.mode = mode
        self.batch_size = batch_size
        if mode == "full":
            columns = [f"{i}{a}" for i in range(len(parent)) for a in ONEHOT_LETTERS]
        self.columns = list(columns or [])
        self._index = {c: j for j, c in enumerate(self.columns)}
        self.name = MODE_NAMES[mode]

    @classmethod
    def for_dataset(cls, parent: str | None, aligned: pd.Series, mode: str = "substitutions") -> "OneHotFeaturizer":
        """Columns from every substitution present in the dataset's aligned sequences."""
        if parent is None:
            raise DataError("the onehot featurizer needs a parent sequence (--parent) and variants "
                            "aligned to it")
        if mode == "full":
            return cls(parent, mode="full")
        seen: set[tuple[int, str]] = set()
        for aligned_seq in aligned:
            if len(aligned_seq) != len(parent):
                continue
            seen.update((i, a) for i, (a, p) in enumerate(zip(aligned_seq, parent)) if a != p)
        columns = [f"{i}{a}" for i, a in sorted(seen)]
        if mode == "sites":
            columns += [str(i) for i in sorted({i for i, _ in seen})]
        return cls(parent, columns, mode)

    @property
    def dim(self) -> int:
        return len(self.columns)

    @classmethod
    def from_manifest(cls, manifest: dict, parent: str) -> "OneHotFeaturizer":
        """Rebuild the featurizer a cache was built with."""
        mode = manifest["model"].removeprefix("onehot-")
        return cls(parent, manifest["columns"], mode)

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": f"onehot-{self.mode}", "layer": None,
                "pooling": None, "dtype": "uint8", "dim": self.dim,
                "columns": None if self.mode == "full" else self.columns}

    def encode(self, aligned: list[str]) -> np.ndarray:
        """(n, dim) uint8. Substitutions outside the column set are dropped (no weight could use them)."""
        out = np.zeros((len(aligned), self.dim), dtype=np.uint8)
        for row, seq in enumerate(aligned):
            for i, (a, p) in enumerate(zip(seq, self.parent)):
                if self.mode == "full" or a != p:
                    j = self._index.get(f"{i}{a}")
                    if j is not None:
                        out[row, j] = 1
                if self.mode == "sites" and a != p:
                    j = self._index.get(str(i))
                    if j is not None:
                        out[row, j] = 1
        return out

    def check(self, frame: pd.DataFrame) -> None:
        """Refuse rows that are not substitution variants of the parent."""
        check_aligned(frame, self.parent, "one-hot features")

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row positions in ``frame``, features) in batches."""
        self.check(frame)
        aligned = frame["aligned"].tolist()
        for start in range(0, len(aligned), self.batch_size):
            stop = min(start + self.batch_size, len(aligned))
            yield np.arange(start, stop), self.encode(aligned[start:stop])
