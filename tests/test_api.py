"""The public API (`import mimo`), the featurizer and head registries, recorded splits, runs of earlier versions,
and where the GFP data is found."""
import json
import pydoc
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mimo
from mimo.pipeline.errors import DataError
from conftest import run_cli as cli

REPO = Path(__file__).resolve().parents[1]




def write_assay(directory: Path, n: int = 400, seed: int = 0) -> str:
    """A small made-up assay: singles to triples of a 40-residue parent, additive effects plus noise."""
    rng = np.random.default_rng(seed)
    parent = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRV"
    effects = rng.normal(0, 1, (len(parent), 1)) + rng.normal(0, 0.3, (len(parent), 20))  # mostly per site
    letters = "ACDEFGHIKLMNPQRSTVWY"
    rows, seen = [], set()
    while len(rows) < n:
        positions = sorted(rng.choice(len(parent), rng.integers(1, 4), replace=False))
        muts = [(p, letters[rng.integers(20)]) for p in positions]
        muts = [(p, a) for p, a in muts if a != parent[p]]
        text = ":".join(f"{parent[p]}{p + 1}{a}" for p, a in muts)
        if not muts or text in seen:
            continue
        seen.add(text)
        score = sum(effects[p, letters.index(a)] for p, a in muts) + rng.normal(0, 0.3)
        rows.append(f"{text},{score:.4f}")
    (directory / "my_assay.csv").write_text("mutant,DMS_score\n" + "\n".join(rows) + "\n")
    (directory / "parent.fasta").write_text(f">parent\n{parent}\n")
    (directory / "new_variants.txt").write_text("\n".join(r.split(",")[0] for r in rows[:5]) + "\nM1A\n")
    return parent


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    write_assay(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    run, table = namespace["run"], namespace["table"]
    assert run.metrics["test"]["spearman"] > 0.3  # additive data: the one-hot MIMO ranks held-out variants
    assert list(table["mutations"])[-1] == "M1A" and np.isfinite(table["prediction"]).all()
    assert (table["lower"] < table["upper"]).all()
    assert (tmp_path / "runs" / "my-mimo" / "model.npz").exists()


def test_help_shows_the_public_api():
    text = pydoc.render_doc(mimo)
    for name in ("load_dataset", "get_featurizer", "build_cache", "load_split_data", "MimoRegressor", "fit_run",
                 "load_run", "predict_variants"):
        assert name in text
        assert getattr(mimo, name) is not None
    with pytest.raises(AttributeError):
        mimo.not_a_name


# ------------------------------------------------------------------------------------------------ featurizers

def test_featurizer_registry_builds_every_builtin_and_rebuilds_from_its_manifest(tmp_path, tiny_esm):
    write_assay(tmp_path, n=60)
    dataset = mimo.load_dataset(tmp_path / "my_assay.csv", parent=str(tmp_path / "parent.fasta"))
    frame = dataset.frame.head(7)
    for name in ("onehot", "onehot-sites", "onehot-full", "unirep64", str(tiny_esm)):
        featurizer = mimo.get_featurizer(name, dataset, device="cpu")
        assert isinstance(featurizer, mimo.Featurizer)
        again = mimo.featurizer_from_manifest(featurizer.manifest(), dataset.parent, device="cpu")
        assert (again.name, again.kind, again.dim) == (featurizer.name, featurizer.kind, featurizer.dim)
        a = np.concatenate([e for _, e in featurizer.embed(frame)])
        b = np.concatenate([e for _, e in again.embed(frame)])
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert mimo.get_featurizer("unirep256", device="cpu").dim == 256
    with pytest.raises(DataError, match="unknown featurizer 'unirep7'.*onehot-sites"):
        mimo.get_featurizer("unirep7")
    with pytest.raises(DataError, match="takes its columns from a dataset"):
        mimo.get_featurizer("onehot")
    with pytest.raises(DataError, match="cannot rebuild features of kind 'nope'"):
        mimo.featurizer_from_manifest({"kind": "nope"})


def test_cli_has_no_featurizer_dispatch_or_training_defaults():
    source = "".join(path.read_text() for path in (REPO / "mimo" / "cli").glob("*.py"))
    assert "def main" in source
    for marker in ("unirep", "OneHotFeaturizer", "EsmFeaturizer", "lr=", "epochs=", "1e-3", "1e-2"):
        assert marker not in source, marker


def test_esm_regression_file_as_fair_esm_downloads_it(tmp_path, tiny_esm, monkeypatch):
    """fair-esm's hub download leaves NAME-contact-regression.pt, holding only {"model": ...}, beside NAME.pt."""
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    shutil.copy(tiny_esm, hub / "esm2_t6_8M_UR50D.pt")
    torch.save({"model": {"contact_head.regression.weight": torch.randn(1, 2 * 4),
                          "contact_head.regression.bias": torch.randn(1)}},
               hub / "esm2_t6_8M_UR50D-contact-regression.pt")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    featurizer = mimo.get_featurizer("esm2_t6_8M_UR50D", device="cpu", dtype="float32")
    assert featurizer.name == "esm2_t6_8M_UR50D_L2"


# ------------------------------------------------------------------------------------------------ heads

def test_estimators_own_their_defaults_and_validate():
    ge = mimo.GlobalEpistasisRegressor()
    assert ge.get_params(deep=True)["lr"] == 1e-2 and ge.epochs == 60 and ge.patience == 10
    assert mimo.MlpRegressor().lr == 2e-3 and mimo.MimoRegressor().lr == 1e-3
    assert mimo.MimoRegressor().input_hidden == 32
    with pytest.raises(TypeError):
        mimo.MlpRegressor(256)  # keyword-only
    X, y = np.zeros((10, 3), np.float32), np.zeros(10)
    for bad, message in ((dict(lr=-0.01), r"'lr' parameter of MlpRegressor must be a float in the range \(0.0, 10.0\]"),
                         (dict(epochs=0), r"'epochs' parameter of MlpRegressor must be an int in the range \[1, inf\)"),
                         (dict(batch_size=0), "'batch_size' parameter"), (dict(hidden=(0,)), "positive integers"),
                         (dict(dropout=float("nan")), r"'dropout' parameter .* Got nan instead")):
        with pytest.raises(ValueError, match=message):
            mimo.MlpRegressor(**bad).fit(X, y, X, y)
    with pytest.raises(ValueError, match="'members' parameter of MimoRegressor must be an int in the range"):
        mimo.MimoRegressor(members=0, routing="random").fit(X, y, X, y)
    with pytest.raises(ValueError, match="'routing' parameter of MimoRegressor must be a str among"):
        mimo.MimoRegressor(routing="spiral").fit(X, y, X, y)
    assert mimo.get_head("ge").lr == 1e-2


def test_cli_options_come_from_the_estimators(tmp_path):
    help_text = cli("fit", "ge", "--help").output
    assert re.search(r"--lr FLOAT RANGE.*\[default: 0\.01", help_text.replace("\n", " "))
    assert "--dropout" not in help_text
    bad = cli("fit", "ge", "--dropout", "0.2", ok=False)
    assert bad.exit_code == 2 and "No such option '--dropout'" in bad.output
    for option, value in (("--epochs", "0"), ("--lr", "-0.01"), ("--batch-size", "0")):
        bad = cli("fit", "mlp", option, value, "--cache", tmp_path, ok=False)
        assert bad.exit_code == 2 and f"Invalid value for '{option}'" in bad.output


# ------------------------------------------------------------------------------------------------ splits

def test_a_build_never_changes_a_recorded_split(tmp_path, small_gfp_dir):
    cache = tmp_path / "c"

    def fit(out, features="onehot"):
        cli("fit", "ridge", "--features", features, "--split", "balanced", "--cache", cache, "--out", tmp_path / out)
        return json.loads((tmp_path / out / "metrics.json").read_text())

    cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", cache, "--quiet")
    first = fit("a")
    splits_before = (cache / "gfp" / "splits.csv").read_text()
    cli("embed", "build", "--model", "onehot-sites", "--seed", "1", "--data", small_gfp_dir, "--cache", cache, "--quiet")
    second = fit("b")
    assert (first["valid"], first["test"]) == (second["valid"], second["test"])
    assert first["split_hash"] == second["split_hash"]
    recorded = pd.read_csv(cache / "gfp" / "splits.csv", dtype=str)
    assert list(recorded.columns) == ["id", "tape", "balanced", "balanced-seed1"]
    assert recorded[["id", "tape", "balanced"]].to_csv(index=False) == splits_before.replace("\r", "")
    info = json.loads((cache / "gfp" / "dataset.json").read_text())
    assert info["splits"]["balanced"] == first["split_hash"] and set(info["splits"]) == {"tape", "balanced",
                                                                                           "balanced-seed1"}
    other = fit("e", "onehot-sites")  # the new split is there to use, under its own name
    assert other["split_hash"] == first["split_hash"]
    seeded = cli("fit", "ridge", "--split", "balanced-seed1", "--features", "onehot", "--cache", cache,
                 "--out", tmp_path / "d")
    assert "balanced-seed1 split" in seeded.output
    table = cli("report", tmp_path / "a", tmp_path / "d").output
    assert f"balanced ({first['split_hash'][:8]})" in table


def test_a_split_recorded_with_other_content_is_refused(tmp_path, small_gfp_dir):
    from mimo.pipeline.cache.build import build_cache

    dataset = mimo.load_dataset(data=small_gfp_dir)
    build_cache(dataset, mimo.get_featurizer("onehot", dataset), tmp_path, progress=False)
    dataset.splits["balanced"] = np.roll(dataset.splits["balanced"], 1)
    with pytest.raises(DataError, match="split 'balanced' is already recorded with other content"):
        build_cache(dataset, mimo.get_featurizer("onehot-sites", dataset), tmp_path, progress=False)


# ------------------------------------------------------------------------------------------------ runs

def test_one_model_file_format_for_every_head(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 40)).astype(np.float32)
    y = X @ rng.normal(size=40)
    for name, params in (("ridge", {}), ("mlp", {"epochs": 2, "hidden": (8,)}),
                         ("cnn", {"epochs": 2, "channels": (2,), "kernel_size": 3, "hidden": (4,)}),
                         ("ge", {"epochs": 2}), ("mimo", {"epochs": 2, "routing": "random", "shared": (8,)})):
        model = mimo.get_head(name, **params).fit(X[:60], y[:60], X[60:], y[60:])
        path = mimo.save_model(model, tmp_path / f"{name}.npz")
        with np.load(path, allow_pickle=False) as saved:  # arrays and JSON only: nothing to unpickle
            assert json.loads(str(saved["__meta__"]))["head"] == name
        again = mimo.load_model(path)
        assert type(again) is type(model) and again.get_params() == model.get_params()
        np.testing.assert_allclose(again.predict_members(X), model.predict_members(X), rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------------------ GFP data

def test_gfp_data_is_downloaded_to_the_user_data_dir_on_first_use(tmp_path, monkeypatch, small_gfp_dir):
    from test_fetch import serve_gfp
    from mimo.pipeline.io import fetch

    monkeypatch.delenv("MIMO_DATA", raising=False)
    monkeypatch.setenv("MIMO_HOME", str(tmp_path / "home"))
    with serve_gfp(tmp_path / "served", small_gfp_dir) as (url, sha):
        monkeypatch.setattr(fetch, "GENOTYPES_URL", f"{url}/genotypes.tsv")
        monkeypatch.setattr(fetch, "GENOTYPES_SHA256", sha)
        monkeypatch.setattr(fetch, "TAPE_URL", f"{url}/fluorescence.tar.gz")
        dataset = mimo.load_dataset()
    assert (tmp_path / "home" / "gfp" / "amino_acid_genotypes_to_brightness.tsv").exists()
    assert len(dataset) == 601 and (dataset.splits["tape"] == mimo.load_gfp(small_gfp_dir).splits["tape"]).all()
    assert len(mimo.load_dataset()) == 601  # found there from now on, with no server


def test_no_data_and_no_network_gives_one_clear_message(tmp_path, monkeypatch):
    from mimo.pipeline.io import fetch

    monkeypatch.delenv("MIMO_DATA", raising=False)
    monkeypatch.setenv("MIMO_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(fetch, "GENOTYPES_URL", "http://127.0.0.1:9/genotypes.tsv")  # nothing listens on port 9
    result = cli("embed", "build", "--model", "onehot", "--cache", tmp_path / "c", ok=False)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert lines[-1].startswith(f"Error: {tmp_path / 'home' / 'gfp'}: the GFP data is not here and could not be "
                                f"downloaded")
    assert f"mimo data fetch {tmp_path / 'home' / 'gfp'}" in lines[-1]
    assert not (tmp_path / "c").exists()


def test_every_public_name_resolves():
    missing = [name for name in mimo.__all__ if getattr(mimo, name, None) is None]
    assert not missing and {"set_threads", "convert_fair_esm", "get_featurizer"} <= set(dir(mimo))


def test_reprs_are_short(tmp_path, small_gfp_dir):
    dataset = mimo.load_dataset(data=small_gfp_dir)
    mimo.build_cache(dataset, mimo.get_featurizer("onehot", dataset), tmp_path / "cache")
    data = mimo.load_split_data(tmp_path / "cache", "gfp", "onehot", "tape")
    assert repr(data).startswith("SplitData(gfp/onehot, split 'tape': test ") and len(repr(data)) < 150
    run = mimo.fit_run(mimo.ValidatedRidge(), data, tmp_path / "run")
    assert repr(run).startswith(f"Run('{tmp_path / 'run'}': ridge on gfp/onehot") and len(repr(run)) < 300
