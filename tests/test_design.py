"""From a fitted run to the next experiment: saturation scan, batch proposal."""
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from mimo.design import _key, acquisition, candidates, diverse_top, wells
from conftest import run_cli as cli




@pytest.fixture(scope="module")
def mimo_run(tmp_path_factory, small_gfp_dir):
    root = tmp_path_factory.mktemp("design")
    cli("embed", "build", "--model", "onehot-sites", "--data", small_gfp_dir, "--cache", root / "c", "--quiet")
    cli("fit", "mimo", "--routing", "random", "--epochs", "3", "--cache", root / "c", "--out", root / "run", "--quiet")
    return root / "run"


def test_candidates_respect_k_skip_measured_and_never_repeat():
    singles = pd.DataFrame({"position": [1, 1, 2, 3, 4], "mutations": ["A1C", "A1D", "K2R", "T3S", "Y4W"]})
    score = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    out = candidates(singles, score, max_mutations=3, measured={_key("A1C"), _key("T3S:A1C")}, top=5)
    assert len(out) == len(set(out)) and "A1C" not in out and "A1C:T3S" not in out
    assert all(len(m.split(":")) <= 3 for m in out) and any(len(m.split(":")) == 3 for m in out)
    assert not any("A1C" in m and "A1D" in m for m in out)  # one substitution per position
    assert candidates(singles, score, 1, set()) == list(singles["mutations"])


def test_acquisitions_order_as_documented():
    table = pd.DataFrame({"mutations": ["a", "b", "c"], "prediction": [1.0, 0.9, 0.5], "sd": [0.0, 0.5, 2.0],
                          "std": [0.5, 0.0, 0.0]})  # the calibrated sd ranks, never the raw member spread
    assert np.argmax(acquisition(table, "greedy")) == 0
    assert np.argmax(acquisition(table, "ucb", beta=2.0)) == 2
    ei = acquisition(table, "ei", best=1.0)
    assert (ei >= 0).all() and np.argmax(ei) == 2
    assert np.array_equal(acquisition(table.drop(columns="sd"), "ucb"), table["prediction"].to_numpy())


def test_diversity_caps_each_substitution():
    table = pd.DataFrame({"mutations": ["A1C", "A1C:K2R", "A1C:T3S", "K2R", "T3S", "Y4W"]})
    batch = diverse_top(table, np.array([6, 5, 4, 3, 2, 1.0]), n=4, max_share=0.5)
    counts = pd.Series([t for m in batch["mutations"] for t in m.split(":")]).value_counts()
    assert counts.max() <= 2 and len(batch) == 4 and batch["mutations"].iloc[0] == "A1C"
    assert wells(98)[:2] == ["A1", "A2"] and wells(98)[95] == "H12" and wells(98)[96] == "P2-A1"


def test_scan_and_propose_on_a_run(tmp_path, mimo_run):
    result = cli("design", "scan", "--run", mimo_run, "--out", tmp_path / "scan.csv", "--figure", tmp_path / "s.svg")
    scan = pd.read_csv(tmp_path / "scan.csv")
    assert len(scan) == 19 * 237 and not scan.duplicated(["position", "new_residue"]).any()
    assert (scan["parent_residue"] != scan["new_residue"]).all() and {"std", "lower", "upper"} <= set(scan.columns)
    svg = ElementTree.parse(tmp_path / "s.svg").getroot()  # the cells: images inside the SVG (tests/test_pictures.py)
    assert svg.tag == "{http://www.w3.org/2000/svg}svg" and svg.findall(".//{http://www.w3.org/2000/svg}image")
    assert "single substitutions scored" in result.output
    measured = tmp_path / "measured.txt"
    best = scan.sort_values("prediction").iloc[-1]["mutations"]
    measured.write_text(best + "\n")
    cli("design", "propose", "--run", mimo_run, "--n", "24", "--max-mutations", "2", "--measured", measured,
        "--out", tmp_path / "plate.csv")
    plate = pd.read_csv(tmp_path / "plate.csv")
    assert len(plate) == 24 and list(plate["well"][:3]) == ["A1", "A2", "A3"]
    assert best not in set(plate["mutations"]) and plate["n_mutations"].max() <= 2
    fitted = pd.read_csv(mimo_run / "predictions.csv", dtype={"mutations": str}, keep_default_na=False)
    assert not {_key(m) for m in plate["mutations"]} & {_key(m) for m in fitted["mutations"]}
    assert plate["acquisition_value"].is_monotonic_decreasing
    counts = pd.Series([t for m in plate["mutations"] for t in m.split(":")]).value_counts()
    assert counts.max() <= 6  # 25% of 24


def test_cache_lookup_reads_just_the_rows_asked_for(tmp_path, small_gfp_dir):
    from mimo.pipeline.cache.store import EmbeddingCache

    cli("embed", "build", "--model", "onehot", "--data", small_gfp_dir, "--cache", tmp_path, "--quiet")
    cache = EmbeddingCache(tmp_path, "gfp", "onehot")
    rows = cache.load()
    ids = [rows.ids[5], "0000000000000000", rows.ids[500], rows.ids[5]]
    found, X = cache.lookup(ids)
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(X[[0, 2, 3]], rows.embeddings[[5, 500, 5]])
    assert not X[1].any()


@pytest.mark.slow
def test_propose_under_torchrun_equals_one_process(tmp_path, mimo_run):
    import subprocess
    import sys
    from pathlib import Path

    mimo = str(Path(sys.executable).with_name("mimo"))
    args = ["design", "propose", str(mimo_run), "--n", "12", "--max-mutations", "2", "--top-singles", "30"]
    cli(*args, "--out", tmp_path / "one.csv")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python",
               "--", mimo, *args, "--out", str(tmp_path / "two.csv")]  # --: torchrun reads no further options
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("variants proposed from") == 1  # rank 0 reports
    one, two = pd.read_csv(tmp_path / "one.csv"), pd.read_csv(tmp_path / "two.csv")
    assert one["mutations"].tolist() == two["mutations"].tolist()
    np.testing.assert_allclose(one["acquisition_value"], two["acquisition_value"], rtol=1e-6)


@pytest.fixture(scope="module")
def singles_run(tmp_path_factory):
    """A MIMO run on a dataset of single substitutions only."""
    from conftest import fit_on_half_the_singles

    root = tmp_path_factory.mktemp("singles")
    fit_on_half_the_singles(root, "mimo", "--routing", "random", "--epochs", "3", "--quiet",
                            parent="MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", seed=1, letters="AGLDEK")
    return root / "run"


def test_a_singles_run_proposes_singles_by_default_and_says_when_asked_for_more(singles_run, cli, tmp_path):
    result = cli("design", "propose", singles_run, "--n", "24", "--out", tmp_path / "plate.csv")
    plate = pd.read_csv(tmp_path / "plate.csv")
    assert (plate["n_mutations"] == 1).all() and not plate["extrapolation"].any()
    assert "best predicted" in result.output and "best measured" in result.output
    assert "trained on at most" not in result.output
    result = cli("design", "propose", singles_run, "--n", "24", "--max-mutations", "2", "--out", tmp_path / "p2.csv")
    assert "trained on at most 1 substitution(s)" in result.output
    plate = pd.read_csv(tmp_path / "p2.csv")
    assert (plate["extrapolation"] == (plate["n_mutations"] > 1)).all()


def test_a_plate_that_cannot_be_filled_says_why(singles_run, cli, tmp_path):
    result = cli("design", "propose", singles_run, "--n", "600", "--out", tmp_path / "p.csv")  # 534 candidates
    assert "only 534 of 600 wells: just 534 unmeasured candidates exist" in result.output
    assert "raise --max-share" not in result.output  # the pool is what is short, not the diversity cap


def test_a_missing_measured_file_names_its_option(singles_run, cli, tmp_path):
    result = cli("design", "propose", singles_run, "--measured", tmp_path / "missing.txt", ok=False)
    assert "--measured" in result.output.strip().splitlines()[-1]


def test_the_runs_page_shows_the_plate_after_propose(singles_run, cli, tmp_path):
    assert "plate (proposal.csv)" not in (singles_run / "report.html").read_text()
    cli("design", "propose", singles_run, "--n", "8")  # writes RUN/proposal.csv
    assert "plate (proposal.csv)" in (singles_run / "report.html").read_text()
