"""Shared fixtures: the real GFP files, a small subset of them, and a tiny random ESM-2 checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets import GFP_GENOTYPES, GFP_VALID_LIST, resolve_data_dir
from pipeline.esm_embed import save_random_esm2


@pytest.fixture(scope="session")
def gfp_dir() -> Path:
    """The real data, found as users find it ($MIMO_DATA in CI; else downloaded on first use). Missing data is a
    failure, not a skip."""
    return resolve_data_dir(None)


@pytest.fixture(scope="session")
def small_gfp_dir(tmp_path_factory, gfp_dir) -> Path:
    """The parent and a 600-genotype slice of the real files (every mutation count present, TAPE's valid rows among them)."""
    out = tmp_path_factory.mktemp("gfp_small")
    lines = (gfp_dir / GFP_GENOTYPES).read_text().splitlines()
    header, parent, rows = lines[0], lines[1], lines[2:]
    rng = np.random.default_rng(0)
    picked = [rows[i] for i in sorted(rng.choice(len(rows), 600, replace=False))]
    (out / GFP_GENOTYPES).write_text("\n".join([header, parent] + picked) + "\n")
    genotypes = {r.split("\t")[0] for r in picked}
    valid = [g for g in (gfp_dir / GFP_VALID_LIST).read_text().split() if g in genotypes]
    (out / GFP_VALID_LIST).write_text("\n".join(valid) + "\n")
    return out


@pytest.fixture(scope="session")
def tiny_esm(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 32-wide ESM-2 in fair-esm's checkpoint format."""
    return save_random_esm2(tmp_path_factory.mktemp("weights") / "esm2_t2_tiny.pt", 2, 32, 4, seed=1)
