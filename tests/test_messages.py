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
