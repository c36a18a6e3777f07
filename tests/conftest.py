"""Shared fixtures: the real GFP files, a small subset of them, ProteinGym's files, a tiny random ESM-2
checkpoint, and ``cli``.

The suite is offline and needs nothing beside the clone: the GFP files and the few ProteinGym files the
agreement tests read ship under ``tests/data/`` (compressed; their licences in ``tests/data/README.md``) and are
unpacked into a temporary folder once per session. ``$MIMO_DATA``, when set, names another GFP folder (CI points
it at ``../shared/data/gfp``). ``$MIMO_HOME`` (downloads, compiled kernels, converted weights) is a temporary
folder for the whole session, so no test writes to the user's ``~/.cache/mimo``.
"""
from __future__ import annotations

import lzma
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mimo.pipeline.io.fetch import resolve_data_dir

from mimo.pipeline.io.gfp import GFP_GENOTYPES, GFP_VALID_LIST
from mimo.pipeline.testing import save_random_esm2


FIXTURES = Path(__file__).resolve().parent / "data"
_UNPACKED = Path(tempfile.mkdtemp(prefix="mimo-fixtures-"))


def _unpack(folder: str) -> Path:
    """``tests/data/<folder>`` with every ``.xz`` file decompressed, in this session's temporary folder."""
    out = _UNPACKED / folder
    for path in sorted((FIXTURES / folder).rglob("*")):
        if path.is_file():
            target = out / path.relative_to(FIXTURES / folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".xz":
                target.with_suffix("").write_bytes(lzma.decompress(path.read_bytes()))
            else:
                shutil.copyfile(path, target)
    return out


PROTEINGYM = _unpack("proteingym")  # ProteinGym's files the agreement tests read (see tests/data/README.md)


def pytest_configure(config):
    home = tempfile.mkdtemp(prefix="mimo-home-")
    os.environ["MIMO_HOME"] = home
    if not os.environ.get("MIMO_DATA"):
        os.environ["MIMO_DATA"] = str(_unpack("gfp"))
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    config.add_cleanup(lambda: shutil.rmtree(_UNPACKED, ignore_errors=True))


def run_cli(*args, ok: bool = True, env: dict | None = None):
    """Invoke the ``mimo`` command in-process; with ``ok`` (the default) assert that it exited 0."""
    from mimo.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)
    if ok:
        assert result.exit_code == 0, result.output
    return result


SHORT_PARENT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"


def write_singles(path: Path, parent: str = SHORT_PARENT, seed: int = 0, every: int = 1,
                  letters: str = "AGLD") -> list[str]:
    """A CSV of single substitutions of ``parent`` (to ``letters``; every ``every``-th) with random scores."""
    rng = np.random.default_rng(seed)
    singles = [f"{wt}{i + 1}{aa}" for i, wt in enumerate(parent) for aa in letters if aa != wt][::every]
    path.write_text("mutant,score\n" + "".join(f"{m},{rng.normal():.3f}\n" for m in singles))
    return singles


def fit_on_half_the_singles(root: Path, *fit_args, parent: str = SHORT_PARENT, seed: int = 0,
                            letters: str = "AGLD") -> list[str]:
    """Embed (onehot-sites) every other single substitution of ``parent`` as dataset ``singles`` under
    ``root/cache`` and run ``mimo fit *fit_args`` on it into ``root/run``; returns the singles left out."""
    write_singles(root / "singles.csv", parent, seed, every=2, letters=letters)
    run_cli("embed", "build", "--model", "onehot-sites", "--input", root / "singles.csv", "--parent", parent,
            "--cache", root / "cache", "--quiet")
    run_cli("fit", *fit_args, "--dataset", "singles", "--cache", root / "cache", "--out", root / "run")
    singles = [f"{wt}{i + 1}{aa}" for i, wt in enumerate(parent) for aa in letters if aa != wt]
    return singles[1::2]


def refused(result, *fragments) -> str:
    """Exit 1 with one clear line that names what is wrong (each of ``fragments``), and no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def onehot_cache(tmp_path_factory, small_gfp_dir) -> Path:
    """A cache of one-hot features of the small GFP slice (one per test module: modules may add to it)."""
    root = tmp_path_factory.mktemp("cache")
    run_cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", root, "--quiet")
    return root


@pytest.fixture(scope="module")
def ridge_run(tmp_path_factory, onehot_cache) -> Path:
    """A ridge run on ``onehot_cache``."""
    out = tmp_path_factory.mktemp("runs") / "ridge"
    run_cli("fit", "ridge", "--cache", onehot_cache, "--out", out)
    return out


@pytest.fixture(scope="session")
def cli():
    """``cli("fit", "ridge", ...)``: the ``mimo`` command in-process (see ``run_cli``)."""
    return run_cli


@pytest.fixture(scope="session")
def gfp_dir() -> Path:
    """The real data from $MIMO_DATA (tests/data/gfp unless set; no download: the suite is offline). Missing data
    is a failure, not a skip."""
    return resolve_data_dir(None, download=False)


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
