"""From a fitted run to the next experiment: saturation scan, batch proposal."""
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from mimo.design import _key, acquisition, candidates, diverse_top, positions, wells
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
                          "member_spread": [0.5, 0.0, 0.0]})  # the calibrated sd ranks, never the raw member spread
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
    assert (scan["parent_residue"] != scan["new_residue"]).all() and {"sd", "lower", "upper", "member_spread"} <= set(scan.columns)
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
    assert set(plate["why"]) <= {"exploit", "explore", "diversity"}
    for _, part in plate[plate["why"] != "explore"].groupby(plate["n_mutations"] > 1):
        assert part["acquisition_value"].is_monotonic_decreasing  # each pool best first
    counts = pd.Series([t for m in plate["mutations"] for t in m.split(":")]).value_counts()
    assert counts.max() <= 6  # 25% of 24
    sites = pd.Series([p for m in plate["mutations"] for p in positions(m)]).value_counts()
    assert sites.max() <= 4  # --max-per-position's default
    assert (plate["n_mutations"] == 1).any() and (plate["n_mutations"] == 2).any()  # mixed: up to 2


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
    result = cli("design", "propose", singles_run, "--n", "600", "--max-per-position", "600", "--explore", "600",
                 "--out", tmp_path / "p.csv")  # 534 candidates
    assert "only 534 of 600 wells: just 534 unmeasured candidates exist" in result.output
    assert "raise --max-share" not in result.output  # the pool is what is short, not the diversity cap
    result = cli("design", "propose", singles_run, "--n", "600", "--out", tmp_path / "p.csv")
    assert "raise --max-share, --max-per-position" in result.output  # 33 positions x 4 wells


def test_a_missing_measured_file_names_its_option(singles_run, cli, tmp_path):
    result = cli("design", "propose", singles_run, "--measured", tmp_path / "missing.txt", ok=False)
    assert "--measured" in result.output.strip().splitlines()[-1]


def test_the_runs_page_shows_the_plate_after_propose(singles_run, cli, tmp_path):
    assert "plate (proposal.csv)" not in (singles_run / "report.html").read_text()
    cli("design", "propose", singles_run, "--n", "8")  # writes RUN/proposal.csv
    assert "plate (proposal.csv)" in (singles_run / "report.html").read_text()


# ---------------------------------------------------------------- plates worth ordering (issue 29)

import math  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from mimo.design import check_plate_options, choose_plate, count_candidates  # noqa: E402
from mimo.pipeline.errors import DataError  # noqa: E402

PROTEASE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQKPLSTNWEDAGHIVRCYFMPQETLKAGS"  # 61 residues


@given(st.lists(st.tuples(st.integers(1, 8), st.integers(1, 8), st.sampled_from("ACDE"), st.booleans(),
                          st.floats(-5, 5)), min_size=1, max_size=60),
       st.integers(1, 30), st.integers(1, 4), st.integers(0, 5), st.floats(0.05, 1.0), st.floats(0, 1))
@settings(max_examples=60, deadline=None)
def test_choose_plate_keeps_every_cap(rows, n, per_position, explore, max_share, multi_share):
    texts, seen = [], set()
    for a, b, letter, blind, _ in rows:
        text = f"K{a}{letter}" if a == b else f"K{min(a, b)}{letter}:K{max(a, b)}{letter}"
        if text not in seen:
            seen.add(text)
            texts.append((text, blind))
    table = pd.DataFrame({"mutations": [t for t, _ in texts], "no_signal": [b for _, b in texts],
                          "n_mutations": [t.count(":") + 1 for t, _ in texts]})
    value = np.array([r[4] for r in rows[:len(table)]])
    plate = choose_plate(table, value, n, max_share, per_position, explore, multi_share)
    assert len(plate) <= n and not plate["mutations"].duplicated().any()
    sites = pd.Series([p for m in plate["mutations"] for p in positions(m)]).value_counts()
    explored = plate[plate["why"] == "explore"]
    assert len(explored) <= explore and (explored["no_signal"]).all()
    assert not plate.loc[plate["why"] != "explore", "no_signal"].any()  # no signal: the explore quota only
    assert sites.empty or sites.max() <= max(per_position, 1)
    tokens = pd.Series([t for m in plate["mutations"] for t in m.split(":")]).value_counts()
    assert tokens.empty or tokens.max() <= max(1, math.floor(max_share * n))
    # a plate is only short when nothing left fits: every unpicked row with signal breaks a cap
    if len(plate) < n:
        left = table[~table["mutations"].isin(plate["mutations"]) & ~table["no_signal"]]
        for m in left["mutations"]:
            assert any(sites.get(p, 0) >= per_position for p in positions(m)) or \
                any(tokens.get(t, 0) >= max(1, math.floor(max_share * n)) for t in m.split(":"))


def test_plate_options_are_checked_in_the_api_as_on_the_command_line():
    check_plate_options(96, 2)
    for kwargs, fragment in (({"top": -5}, "--top-singles"), ({"max_mutations": 10}, "--max-mutations"),
                             ({"beta": float("nan")}, "--beta"), ({"beta": float("inf")}, "--beta"),
                             ({"n": 0}, "--n"), ({"max_per_position": 0}, "--max-per-position"),
                             ({"explore": -1}, "--explore"), ({"multi_share": 1.5}, "--multi-share")):
        args = {"n": 96, "max_mutations": 2, **kwargs}
        with pytest.raises(DataError, match=fragment):
            check_plate_options(**args)
    assert count_candidates(19 * 238, 200, 6) > 8e10  # the issue's --max-mutations 6 --top-singles 200
    assert count_candidates(10, 4, 2) == 10 + 6


@pytest.fixture(scope="module")
def protease_run(tmp_path_factory):
    """A GP run on singles at positions 1-40 of a 61-residue parent (onehot-sites + a zero-shot score that
    covers positions 1-50 only): positions 41-50 have signal from the score alone, 51-61 none at all."""
    root = tmp_path_factory.mktemp("protease")
    rng = np.random.default_rng(3)
    singles = [f"{wt}{i + 1}{aa}" for i, wt in enumerate(PROTEASE) for aa in "AGLDEKRW" if aa != wt]
    measured = [m for m in singles if int(m[1:-1]) <= 40][::2]
    effect = {m: rng.normal() for m in singles}
    (root / "protease.csv").write_text("mutant,score\n" + "".join(f"{m},{effect[m] + 0.3 * rng.normal():.4f}\n"
                                                                   for m in measured))
    (root / "zs.csv").write_text("mutant,zs\n" + "".join(f"{m},{effect[m]:.4f}\n" for m in singles
                                                         if int(m[1:-1]) <= 50))
    for model in ("onehot-sites", f"scores:{root / 'zs.csv'}"):
        cli("embed", "build", "--model", model, "--input", root / "protease.csv", "--parent", PROTEASE,
            "--cache", root / "cache", "--quiet")
    cli("fit", "gp", "--dataset", "protease", "--features", "onehot-sites+scores-zs", "--steps", "30",
        "--cache", root / "cache", "--out", root / "run", "--quiet")
    return root / "run"


def test_the_protease_plate_is_one_to_order(protease_run, tmp_path):
    result = cli("design", "propose", protease_run, "--max-mutations", "2", "--out", tmp_path / "plate.csv")
    plate = pd.read_csv(tmp_path / "plate.csv")  # the zero-shot file lacks positions 51-61: no stop
    assert len(plate) == 96
    sites = pd.Series([p for m in plate["mutations"] for p in positions(m)]).value_counts()
    assert sites.max() <= 4
    assert (plate["n_mutations"] == 1).sum() >= 24 and (plate["n_mutations"] == 2).sum() >= 24  # mixed
    assert plate["no_signal"].sum() <= 0.1 * len(plate) and plate["no_signal"].sum() > 0  # a few to learn
    assert set(plate.loc[plate["no_signal"], "why"]) == {"explore"}
    doubles = plate.loc[plate["n_mutations"] == 2, "mutations"]
    assert not any(p > 50 for m in doubles for p in positions(m))  # never from no-signal positions
    assert {"prediction", "lower", "upper", "sd", "why", "unlike_training", "extrapolation"} <= set(plate.columns)
    assert "wells per position" in result.output
    scan = cli("design", "scan", protease_run, "--out", tmp_path / "scan.csv", "--figure", tmp_path / "s.svg")
    assert scan.exit_code == 0 and len(pd.read_csv(tmp_path / "scan.csv")) == 19 * len(PROTEASE)


def test_batch_thompson_sampling_on_the_gp(protease_run, tmp_path):
    from mimo.acquisition import thompson_orders
    from mimo.models.runs.fit import load_run

    from mimo.design import design_featurizers
    from mimo.predict import featurize, variants_frame
    from mimo.pipeline.io.conventions import mutation_format_from

    run = load_run(protease_run)
    texts = [f"{wt}{i + 1}W" for i, wt in enumerate(PROTEASE) if wt != "W"][:50]
    frame = variants_frame(texts, run.parent, mutation_format_from(run.source["dataset"]))
    train_X, _ = featurize(frame, run.source, "cpu", use_cache=False, featurizers=design_featurizers(run))
    mvn = run.model.posterior(train_X[:50])
    mean, var = run.model.posterior_.predict(run.model.model_, np.asarray(train_X[:50], np.float32), True)
    np.testing.assert_allclose(mvn.mean.numpy(), mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.diag(mvn.lazy_covariance_matrix.to_dense().numpy()), var, rtol=1e-5, atol=1e-8)
    orders = thompson_orders(run.model, train_X[:50], 8, seed=1)
    assert len({tuple(orders(k)) for k in range(8)}) > 1  # each well its own draw (a whole order per draw)
    assert np.array_equal(thompson_orders(run.model, train_X[:50], 8, seed=1)(3), orders(3))
    cli("design", "propose", protease_run, "--acquisition", "ts", "--n", "24", "--out", tmp_path / "ts.csv")
    plate = pd.read_csv(tmp_path / "ts.csv")
    assert len(plate) == 24 and pd.Series([p for m in plate["mutations"] for p in positions(m)]).value_counts().max() <= 4


def test_an_acquisition_the_head_cannot_serve_and_a_bad_beta_are_one_line(singles_run, tmp_path):
    from conftest import refused

    refused(cli("design", "propose", singles_run, "--acquisition", "ts", ok=False), "--acquisition ts", "gp")
    for beta in ("nan", "inf"):
        refused(cli("design", "propose", singles_run, "--beta", beta, ok=False), "--beta")
    refused(cli("design", "propose", singles_run, "--max-mutations", "6", "--top-singles", "200", ok=False),
            "--top-singles")
    with pytest.raises(DataError, match="--top-singles"):
        __import__("mimo").propose(singles_run, top=-5)


def test_the_thompson_pool_takes_the_best_by_mean_and_by_ucb_alternately():
    from mimo.acquisition import ts_pool

    mean = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    ucb = np.array([5.0, 4.0, 3.0, 9.0, 8.0])  # 3 and 4 are uncertain
    assert ts_pool(mean, ucb, 3).tolist() == [0, 3, 1]
    assert sorted(ts_pool(mean, ucb, 10).tolist()) == [0, 1, 2, 3, 4]  # each row once


def test_a_run_without_intervals_still_makes_a_mixed_plate(tmp_path):
    """A single-output head (ridge): ranked by the mean; the singles' scores are edited in place (no-signal ones
    never combined), which once failed on a read-only view of the predictions."""
    from conftest import fit_on_half_the_singles

    fit_on_half_the_singles(tmp_path, "ridge", "--quiet")
    cli("design", "propose", tmp_path / "run", "--n", "16", "--max-mutations", "2", "--out", tmp_path / "p.csv")
    plate = pd.read_csv(tmp_path / "p.csv")
    assert len(plate) == 16 and (plate["n_mutations"] == 2).any() and (plate["n_mutations"] == 1).any()
