"""Profile features (``--model profile:PATH``, feature name ``profile-<file stem>``): what a per-site profile
(ProteinMPNN, ESM-IF1, an MSA, a table; read by ``mimo.pipeline.io.profiles``) says of each substitution.

Per variant, summed over its substituted sites (a sum, as ``aaprops``, so that a linear head stays additive
over sites; the shared assays hold singles only, where sum and mean agree):

- ``dlogp``: log p(mutant) - log p(wild type), the profile's zero-shot score (``mimo score`` reports it);
- ``entropy``: the site's entropy (nats): how much the structure or the family constrains it;
- ``wt_logp``, ``mt_logp``: log p of the wild-type and of the new residue;
- ``p_A`` .. ``p_Y``: the site's whole profile row (20 probabilities);
- ``covered``: 1 when the profile reaches every substituted site and every new residue is an amino acid, else
  0. The profile has nothing to say of a site it does not reach (or of a stop): such a site adds zeros, and the
  variant's ``covered`` = 0 marks that this block gives it no signal there.

``columns="scalars"`` (``--profile-columns scalars``, feature name ``profile-<stem>-scalars``) keeps ``dlogp``,
``entropy``, ``wt_logp``, ``mt_logp`` and ``covered`` only. Measured with ridge on ``onehot-sites+aaprops`` plus
the block, ProteinGym's folds of the three shared assays, chosen on the inner validation folds
(``python -m bench.profile_features``; bench/results/cpu-profile-features.md): the four scalars are the best
subset on validation in 10 of 15 assay x profile x scheme cells and within 0.002 of the best in the others
outside pilin (where every figure is below 0.16); the 20 profile probabilities, the same for every
substitution at a site, add little a linear head can use and cost up to 0.09 on position-split folds (DNJA1
contiguous, ProteinMPNN: 0.753 with the scalars, 0.666 with the whole block). They stay in the default block
for heads that compare sites (a Gaussian process's site kernel reads ``p_*``); linear heads are better served
by ``scalars``.

Log-probabilities are floored at ``log(PROB_FLOOR)`` (1e-6: -13.8 nats) so that one near-zero probability (ESM-IF1
writes some of 1e-12) does not stretch a standardised column. Measured against a floor of 1e-12 on the ESM-IF1
profiles (``python -m bench.profile_features --prob-floor 1e-12``): validation Spearman of the scalars block equal
within 0.006, 1e-6 ahead in 5 of 6 cells.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.profiles import feature_stem, file_fingerprint, place_profile, read_profile
from mimo.pipeline.featurizers.batching import encoded_in_chunks
from mimo.pipeline.io.variants import AMINO_ACIDS, check_aligned

PROB_FLOOR = 1e-6
SCALARS = ["dlogp", "entropy", "wt_logp", "mt_logp"]
COLUMNS = SCALARS + [f"p_{a}" for a in AMINO_ACIDS] + ["covered"]
COLUMN_SETS = {"all": COLUMNS, "scalars": SCALARS + ["covered"]}
_INDEX = np.full(256, -1, dtype=np.int64)
_INDEX[np.frombuffer(AMINO_ACIDS.encode(), np.uint8)] = np.arange(len(AMINO_ACIDS))


def site_tables(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Floored log-probabilities (L, 20) and entropies (L,) of placed profile rows (NaN rows stay NaN)."""
    log_p = np.log(np.maximum(probs, PROB_FLOOR))
    return log_p, -(probs * log_p).sum(axis=1)


class ProfileFeaturizer:
    """Features of each variant's substitutions read off a per-site profile (see the module)."""

    kind = "profile"

    def __init__(self, path: str | Path, parent: str, offset: int = 0, alphabet: str | None = None,
                 fingerprint: str | None = None, columns: str = "all"):
        if columns not in COLUMN_SETS:
            raise DataError(f"profile columns are {' or '.join(COLUMN_SETS)}, not {columns!r}")
        self.path = Path(path).resolve()
        self.parent, self.offset, self.alphabet = parent, int(offset), alphabet
        self.fingerprint = file_fingerprint(self.path) if self.path.is_file() else None
        if fingerprint is not None and self.fingerprint is None:
            raise DataError("the profile file the cache was built from is gone (removed or moved): put it back, or "
                            "rebuild the features from where it is now", self.path)
        if fingerprint is not None and self.fingerprint != fingerprint:
            raise DataError(f"the profile file changed since the cache was built from it (fingerprint "
                            f"{fingerprint}, now {self.fingerprint}): rebuild the features", self.path)
        profile = read_profile(self.path, alphabet)
        self.format = profile.format
        self.probs = place_profile(profile, parent, self.offset, self.path)
        self.log_p, self.entropy = site_tables(self.probs)
        self.column_set, self.columns = columns, COLUMN_SETS[columns]
        self._keep = [COLUMNS.index(c) for c in self.columns]
        self.name = f"profile-{feature_stem(self.path)}" + ("" if columns == "all" else f"-{columns}")
        self.dim = len(self.columns)

    @classmethod
    def from_manifest(cls, manifest: dict, parent: str, path: str | Path | None = None) -> "ProfileFeaturizer":
        """The featurizer a cache was built with; ``path``: where the same file is now, if it moved (its content
        is still compared with the cache's)."""
        featurizer = cls(path or manifest["weights"], parent, manifest.get("profile_offset", 0),
                         manifest.get("profile_alphabet"), manifest.get("weights_fingerprint"),
                         manifest.get("profile_columns", "all"))
        featurizer.name = manifest["features"]
        return featurizer

    def manifest(self) -> dict:
        return {"features": self.name, "kind": self.kind, "model": self._model(), "layer": None,
                "pooling": "sum over substituted sites", "dtype": "float32", "dim": self.dim, "columns": self.columns,
                "weights": str(self.path), "weights_fingerprint": self.fingerprint, "profile_format": self.format,
                "profile_offset": self.offset, "profile_alphabet": self.alphabet, "profile_columns": self.column_set,
                "prob_floor": PROB_FLOOR,
                "covered_sites": int(np.isfinite(self.probs[:, 0]).sum())}

    def _model(self) -> str:
        """What the features depend on besides the file's content: compared when a cache is reused."""
        return f"profile-v1 offset={self.offset} alphabet={self.alphabet or 'default'} floor={PROB_FLOOR:g}"

    def check(self, frame: pd.DataFrame) -> None:
        check_aligned(frame, self.parent, "profile features (they read the profile at each substituted site)")

    def encode(self, aligned: list[str]) -> np.ndarray:
        """(n, dim) float32 features of parent-aligned sequences (see the module)."""
        return self._encode_all(aligned)[:, self._keep]

    def _encode_all(self, aligned: list[str]) -> np.ndarray:
        out = np.zeros((len(aligned), len(COLUMNS)), dtype=np.float32)
        out[:, -1] = 1
        if not aligned:
            return out
        codes = np.frombuffer("".join(aligned).encode("ascii"), np.uint8).reshape(len(aligned), len(self.parent))
        parent = np.frombuffer(self.parent.encode("ascii"), np.uint8)
        rows, sites = np.nonzero(codes != parent)
        new, old = _INDEX[codes[rows, sites]], _INDEX[parent[sites]]
        known = (new >= 0) & (old >= 0) & np.isfinite(self.probs[sites, 0])
        out[rows[~known], -1] = 0
        rows, sites, new, old = rows[known], sites[known], new[known], old[known]
        wt_logp, mt_logp = self.log_p[sites, old], self.log_p[sites, new]
        per_site = np.column_stack([mt_logp - wt_logp, self.entropy[sites], wt_logp, mt_logp, self.probs[sites]])
        np.add.at(out[:, :-1], rows, per_site)  # a view: multi-mutants sum their sites
        return out

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.check(frame)
        yield from encoded_in_chunks(self.encode, frame["aligned"].tolist())
