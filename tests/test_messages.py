"""Messages that point at the fix (issue 31 section 4) and the trust cases left from issue 30."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import SHORT_PARENT, refused, run_cli

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def all_singles(parent: str = SHORT_PARENT) -> list[str]:
    return [f"{wt}{i + 1}{aa}" for i, wt in enumerate(parent) for aa in AMINO if aa != wt]


@pytest.fixture(scope="module")
def sites_run(tmp_path_factory) -> Path:
    """A one-hot-sites ridge run on every other single at positions 1-25 (238 rows): positions 26-33 never
    mutated in training."""
    root = tmp_path_factory.mktemp("sites")
    rng = np.random.default_rng(0)
    train = [m for m in all_singles() if int(m[1:-1]) <= 25][::2]
    (root / "lab.csv").write_text("variant,activity\n" + "".join(f"{m},{rng.normal():.3f}\n" for m in train))
    run_cli("fit", "ridge", "--input", root / "lab.csv", "--parent", SHORT_PARENT, "--features", "onehot-sites",
            "--cache", root / "cache", "--out", root / "run")
    return root / "run"


def test_a_new_single_on_a_singles_run_is_not_warned_as_unseen_but_a_new_double_is(sites_run, tmp_path):
    new = [m for m in all_singles() if int(m[1:-1]) <= 25][1::2][:20]
    variants = tmp_path / "new.csv"
    variants.write_text("variant\n" + "\n".join(new) + "\n")
    result = run_cli("predict", "--run", sites_run, "--variants", variants, "--out", tmp_path / "p.csv")
    table = pd.read_csv(tmp_path / "p.csv")
    assert (table["unseen"] > 0).all()  # every new single: always so on a singles-only run
    assert "never measured" not in result.output
    variants.write_text("variant\n" + "\n".join(new) + "\nK2W:T3W\n")
    result = run_cli("predict", "--run", sites_run, "--variants", variants, "--out", tmp_path / "p.csv")
    assert "warning: 1 of 21 variants carry substitutions never measured in training" in result.output


def test_a_variant_without_signal_is_still_warned_about_on_a_singles_run(sites_run, tmp_path):
    variants = tmp_path / "new.csv"
    variants.write_text("variant\nR26A\nR26G\nK2W\n")  # position 26 never mutated: no signal for one-hot sites
    result = run_cli("predict", "--run", sites_run, "--variants", variants, "--out", tmp_path / "p.csv")
    assert "warning: 2 of 3 variants get no signal from the run's features" in result.output


def test_the_scan_best_list_leaves_out_measured_variants(sites_run, tmp_path):
    result = run_cli("design", "scan", sites_run, "--out", tmp_path / "scan.csv", "--figure", tmp_path / "s.svg")
    line = next(t for t in result.output.splitlines() if "best not yet measured:" in t)
    best = line.split("best not yet measured: ")[1].split(" (")[0].split(", ")
    measured = set(pd.read_csv(sites_run / "predictions.csv")["mutations"])
    assert len(best) == 5 and not measured & set(best)
    assert f"({len(measured)} measured singles left out of this list)" in line


def test_the_scan_says_why_unlike_training_is_empty_at_never_mutated_positions(sites_run, tmp_path):
    result = run_cli("design", "scan", sites_run, "--out", tmp_path / "scan.csv", "--figure", tmp_path / "s.svg")
    table = pd.read_csv(tmp_path / "scan.csv")
    empty = int(table["unlike_training"].isna().sum())
    assert empty == int(((table["unseen_sites"] > 0) | table["no_signal"]).sum()) > 0
    assert f"unlike_training is left empty for {empty} of {len(table)} substitutions" in result.output


def test_fit_help_names_the_report_it_cites():
    text = run_cli("fit", "--help").output
    assert "avGFP report's base model" in text and "The report's" not in text


def test_an_unquoted_double_in_a_variants_csv_is_refused_naming_the_line(sites_run, tmp_path):
    variants = tmp_path / "new.csv"
    variants.write_text("variant,note\nK2A,x\nK2A,T3G,1.0\n")
    refused(run_cli("predict", "--run", sites_run, "--variants", variants, ok=False),
            "3 fields but the header names 2 columns", "new.csv:3:")


def test_propose_reads_measured_from_a_named_column_and_never_proposes_them(sites_run, tmp_path):
    """A single-output run (ridge) too: its ranking by the mean is edited in place, not pandas' read-only view."""
    first = run_cli("design", "propose", sites_run, "--n", "8", "--max-mutations", "1", "--out", tmp_path / "a.csv")
    plate = pd.read_csv(tmp_path / "a.csv")["mutations"].tolist()
    assert len(plate) == 8, first.output
    measured = tmp_path / "done.csv"
    measured.write_text("well,hit\n" + "".join(f"A{k},{m}\n" for k, m in enumerate(plate[:3])))
    refused(run_cli("design", "propose", sites_run, "--n", "8", "--measured", measured, "--out", tmp_path / "b.csv",
                    ok=False), "--mutant-col")
    run_cli("design", "propose", sites_run, "--n", "8", "--max-mutations", "1", "--measured", measured,
            "--mutant-col", "hit", "--out", tmp_path / "b.csv")
    assert not set(plate[:3]) & set(pd.read_csv(tmp_path / "b.csv")["mutations"])


def test_scan_on_a_missing_run_names_the_run_not_out(tmp_path):
    refused(run_cli("design", "scan", tmp_path / "nope", ok=False), "no such run directory", "nope")


@pytest.mark.parametrize("command", [("predict", "--variants", "V", "--out"), ("design", "propose", "--out"),
                                     ("report", "--html")])
def test_a_file_name_too_long_is_one_line_before_any_work(sites_run, tmp_path, command):
    variants = tmp_path / "v.txt"
    variants.write_text("K2W\n")
    args = [variants if a == "V" else a for a in command]
    if command[0] == "predict":
        args[1:1] = ["--run", sites_run]
    else:
        args.insert(len(command) - 1 if command[0] == "design" else 1, sites_run)
    long = tmp_path / ("x" * 300 + ".csv")
    refused(run_cli(*args, long, ok=False), "file name of 304 bytes is too long")
    assert [p.name for p in tmp_path.iterdir()] == ["v.txt"]


def test_force_onto_a_link_to_a_run_is_refused_and_the_run_kept(sites_run, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(sites_run, target_is_directory=True)
    before = sorted(p.name for p in sites_run.iterdir())
    refused(run_cli("fit", "ridge", "--dataset", "lab", "--cache", sites_run.parent / "cache", "--features",
                    "onehot-sites", "--out", link, "--force", ok=False), "--out is a symbolic link")
    assert link.is_symlink() and sorted(p.name for p in sites_run.iterdir()) == before
    refused(run_cli("fit", "ridge", "--dataset", "lab", "--cache", sites_run.parent / "cache", "--features",
                    "onehot-sites", "--out", tmp_path / ("r" * 250), ok=False), "too long")


def test_the_max_share_summary_says_when_one_well_is_more_than_asked(sites_run, tmp_path):
    result = run_cli("design", "propose", sites_run, "--n", "8", "--max-share", "0.01", "--out", tmp_path / "p.csv")
    assert "no substitution in more than 1 well (12%; --max-share 0.01 of 8 wells rounds up to one)" in result.output
    result = run_cli("design", "propose", sites_run, "--n", "8", "--max-share", "0.25", "--out", tmp_path / "p.csv")
    assert "no substitution in more than 25% of the batch" in result.output


def test_a_neural_fit_leaves_torch_global_generator_alone():
    import torch

    import mimo

    X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = mimo.MlpRegressor(epochs=2, seed=7).fit(X, X[:, 0]).predict(X)
    assert torch.equal(torch.rand(3), expected)
    np.testing.assert_allclose(mimo.MlpRegressor(epochs=2, seed=7).fit(X, X[:, 0]).predict(X), first)  # still seeded


def test_a_damaged_npz_profile_is_one_line(sites_run, tmp_path):
    damaged = tmp_path / "mpnn.npz"
    damaged.write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    refused(run_cli("embed", "build", "--dataset", "lab", "--cache", sites_run.parent / "cache", "--model",
                    f"profile:{damaged}", "--quiet", ok=False), "mpnn.npz", "cannot read as a NumPy file")


def test_a_long_malformed_mutation_cell_is_clipped_in_the_message(sites_run, tmp_path):
    variants = tmp_path / "v.csv"
    variants.write_text("variant\n" + "K2A:" + "Q" * 100_000 + "\n")
    message = refused(run_cli("predict", "--run", sites_run, "--variants", variants, ok=False), "v.csv:2:",
                      "malformed mutation token", "100,004 characters")
    assert len(message) < 400
