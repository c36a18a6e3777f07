"""Structure features (``--structure FILE``, feature name ``structure-<file stem>``): what the fold says of each
variant's substituted sites (the file is read and mapped onto the parent by ``mimo.pipeline.io.structure``).

Per variant, summed over its substituted sites that have coordinates (a sum, as ``aaprops``, so that a linear
head stays additive over sites):

- burial: ``contacts_8``, ``contacts_10``, ``contacts_12`` (CB atoms of other residues, every chain, within 8, 10
  and 12 A of the site's CB; CA for a CA-only file), ``hse_up`` (half-sphere exposure: those within 13 A on the
  side-chain side of the site, Hamelryck 2005), ``burial`` (``contacts_10`` over the structure's largest, 0-1);
- ``plddt``: AlphaFold's per-residue confidence / 100 (0 when the file is not an AlphaFold model);
- ``buried_delta_<p>`` and ``buried_abs_delta_<p>``: the substitution's change in each of ``aaprops``' six
  properties (its table, scaled the same way: ``aaprops.PROPERTIES``), and its size, times ``burial``: a volume
  or hydropathy change weighs where the site is packed;
- ``min_pair_distance`` (A, CA-CA): the smallest distance between two substituted sites of a multi-mutant (0 with
  fewer than two), and ``close_pairs``: the pairs of substituted sites within 8 A (CB-CB): contacting pairs are
  where epistasis lives;
- ``site_distance`` (only with ``sites``, e.g. ``--sites 41,145``: an active site, a ligand, an interface): the
  smallest CA distance from a substituted site to the named ones (A);
- ``x``, ``y``, ``z``: the mean CA coordinate of the substituted sites, centred on the chain's mean (A). These
  are what the Gaussian process's structure kernel reads (the 3D distance between two variants' sites;
  ``mimo.models.estimators.gp.structure``); other heads may use or drop them (``COLUMN_GROUPS``);
- ``covered``: 1 when every substituted site has coordinates and every new residue is an amino acid. A site
  without coordinates adds nothing (no signal), and ``covered`` = 0 marks it.

``COLUMN_GROUPS`` names the groups the benchmark adds or drops one at a time (``python -m bench.structure``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist

from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers.aaprops import PROPERTY_NAMES, _scaled_table
from mimo.pipeline.featurizers.batching import encoded_in_chunks
from mimo.pipeline.io.profiles import feature_stem
from mimo.pipeline.io.structure import Structure, parse_sites, read_structure
from mimo.pipeline.io.variants import AMINO_ACIDS, check_aligned

RADII = (8.0, 10.0, 12.0)
HSE_RADIUS = 13.0
CONTACT = 8.0  # CB-CB distance of a contacting pair
COLUMN_GROUPS = {
    "burial": ["contacts_8", "contacts_10", "contacts_12", "hse_up", "burial"],
    "plddt": ["plddt"],
    "properties": [f"buried_delta_{p}" for p in PROPERTY_NAMES] + [f"buried_abs_delta_{p}" for p in PROPERTY_NAMES],
    "pairs": ["min_pair_distance", "close_pairs"],
    "coordinates": ["x", "y", "z"],
}
SITE_COLUMNS = [c for group in ("burial", "plddt", "properties") for c in COLUMN_GROUPS[group]]
COORDINATES = COLUMN_GROUPS["coordinates"]
_INDEX = np.full(256, -1, dtype=np.int64)
_INDEX[np.frombuffer(AMINO_ACIDS.encode(), np.uint8)] = np.arange(len(AMINO_ACIDS))


def columns_for(sites: tuple) -> list[str]:
    return SITE_COLUMNS + COLUMN_GROUPS["pairs"] + (["site_distance"] if sites else []) + COORDINATES + ["covered"]


def site_table(structure: Structure) -> np.ndarray:
    """(L, 6): contacts_8/10/12, hse_up, burial, plddt/100 per parent position (NaN rows where uncovered)."""
    covered = structure.covered
    out = np.full((len(covered), 6), np.nan)
    cb = structure.cb[covered]
    distances = cdist(cb, structure.neighbours)
    counts = [((distances < r).sum(axis=1) - 1) for r in RADII]  # less the site itself
    offsets = structure.neighbours[None, :, :] - cb[:, None, :]
    up = (np.einsum("ijk,ik->ij", offsets, structure.direction[covered]) > 0) & (distances < HSE_RADIUS) & \
        (distances > 1e-6)
    out[covered, :3] = np.column_stack(counts)
    out[covered, 3] = up.sum(axis=1)
    out[covered, 4] = counts[1] / max(1, counts[1].max())
    plddt = structure.plddt[covered]
    out[covered, 5] = np.where(np.isfinite(plddt), plddt / 100.0, 0.0)
    return out


class StructureFeaturizer:
    """Features of each variant's substituted sites read off a structure (see the module)."""

    kind = "structure"

    def __init__(self, path: str | Path, parent: str, chain: str | None = None, sites=(),
                 fingerprint: str | None = None):
        self.structure = read_structure(path, parent, chain)
        if fingerprint is not None and self.structure.sha256 != fingerprint:
            raise DataError(f"the structure file changed since the cache was built from it (sha256 "
                            f"{fingerprint[:16]}..., now {self.structure.sha256[:16]}...): give the same file, or "
                            f"rebuild the features", self.structure.path)
        self.path, self.parent = self.structure.path, parent
        self.fingerprint = self.structure.sha256  # what `mimo predict` compares with the run's manifest
        self.chain = self.structure.chain
        self.sites = parse_sites(sites if isinstance(sites, str) else ",".join(map(str, sites or ())), parent,
                                 self.structure)
        self.columns = columns_for(self.sites)
        self.dim = len(self.columns)
        self.name = f"structure-{feature_stem(self.path)}"
        self._sites = site_table(self.structure)
        self._table = _scaled_table()
        covered = self.structure.covered
        self._centre = self.structure.ca[covered].mean(axis=0)

    @classmethod
    def from_manifest(cls, manifest: dict, parent: str, path: str | Path | None = None) -> "StructureFeaturizer":
        """The featurizer a cache was built with; a changed file is refused (its sha256 is compared)."""
        featurizer = cls(path or manifest["weights"], parent, manifest.get("chain"), manifest.get("sites") or (),
                         manifest.get("weights_fingerprint"))
        featurizer.name = manifest["features"]
        return featurizer

    def manifest(self) -> dict:
        s = self.structure
        return {"features": self.name, "kind": self.kind, "model": self._model(), "layer": None,
                "pooling": "sum over substituted sites", "dtype": "float32", "dim": self.dim, "columns": self.columns,
                "weights": str(self.path), "weights_fingerprint": s.sha256, "chain": self.chain,
                "sites": list(self.sites), "covered_sites": int(s.covered.sum()), "alignment": s.summary(),
                "plddt": s.alphafold is not None, "ca_only": s.ca_only, "models": s.models}

    def _model(self) -> str:
        """What the features depend on besides the file's content: compared when a cache is reused."""
        return f"structure-v1 chain={self.chain} sites={','.join(map(str, self.sites)) or 'none'}"

    def check(self, frame: pd.DataFrame) -> None:
        check_aligned(frame, self.parent, "structure features (they read the structure at each substituted site)")

    def encode(self, aligned: list[str]) -> np.ndarray:
        """(n, dim) float32 features of parent-aligned sequences (see the module)."""
        out = np.zeros((len(aligned), self.dim), dtype=np.float64)
        out[:, -1] = 1
        if not aligned:
            return out.astype(np.float32)
        codes = np.frombuffer("".join(aligned).encode("ascii"), np.uint8).reshape(len(aligned), len(self.parent))
        parent = np.frombuffer(self.parent.encode("ascii"), np.uint8)
        rows, sites = np.nonzero(codes != parent)
        new, old = _INDEX[codes[rows, sites]], _INDEX[parent[sites]]
        known = (new >= 0) & (old >= 0) & self.structure.covered[sites]
        out[rows[~known], -1] = 0
        rows, sites, new, old = rows[known], sites[known], new[known], old[known]
        per_site = self._sites[sites]
        delta = self._table[new] - self._table[old]
        burial = per_site[:, 4:5]
        values = np.column_stack([per_site, burial * delta, burial * np.abs(delta)])
        np.add.at(out[:, :len(SITE_COLUMNS)], rows, values)
        self._pairs_and_places(out, rows, sites)
        return out.astype(np.float32)

    def _pairs_and_places(self, out: np.ndarray, rows: np.ndarray, sites: np.ndarray) -> None:
        """Pair columns, distance to the named sites and mean coordinates, a variant at a time where it has
        several sites (singles in one pass)."""
        ca, cb = self.structure.ca, self.structure.cb
        col = {c: i for i, c in enumerate(self.columns)}
        coords = slice(col["x"], col["z"] + 1)
        counts = np.bincount(rows, minlength=len(out))
        single = counts[rows] == 1
        out[rows[single], coords] = ca[sites[single]] - self._centre
        named = ca[[s - 1 for s in self.sites]] if self.sites else None
        if named is not None:
            out[rows[single], col["site_distance"]] = cdist(ca[sites[single]], named).min(axis=1)
        for row in np.unique(rows[~single]):
            where = sites[rows == row]
            out[row, coords] = ca[where].mean(axis=0) - self._centre
            d_ca, d_cb = cdist(ca[where], ca[where]), cdist(cb[where], cb[where])
            upper = np.triu_indices(len(where), 1)
            out[row, col["min_pair_distance"]] = d_ca[upper].min()
            out[row, col["close_pairs"]] = (d_cb[upper] < CONTACT).sum()
            if named is not None:
                out[row, col["site_distance"]] = cdist(ca[where], named).min()

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.check(frame)
        yield from encoded_in_chunks(self.encode, frame["aligned"].tolist())
