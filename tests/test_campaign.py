"""A design campaign across rounds (mimo.campaign): start, rounds of measured wells, resume, refusals, report."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import refused, run_cli as cli

PARENT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQKPLSTNWEDAGHIVRCYFMPQETLKAGS"
SINGLES = [f"{wt}{i + 1}{aa}" for i, wt in enumerate(PARENT) for aa in "ACDEFGHIKLMNPQRSTVWY" if aa != wt]
EFFECT = dict(zip(SINGLES, np.random.default_rng(0).normal(size=len(SINGLES))))


def truth(text: str) -> float:
    return float(sum(EFFECT[t] for t in text.split(":")))


def measure(plate_path, out, **changes):
    plate = pd.read_csv(plate_path)
    table = pd.DataFrame({"well": plate["well"], "activity": [truth(m) for m in plate["mutations"]]})
    for name, value in changes.items():
        table = value(table)
    table.to_csv(out, index=False)
    return out


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A campaign started from 12 measured singles, and its first round added (plates of 16, up to doubles)."""
    root = tmp_path_factory.mktemp("campaign")
    picked = np.random.default_rng(1).choice(len(SINGLES), 12, replace=False)
    (root / "start.csv").write_text("mutant,activity\n" + "".join(f"{SINGLES[i]},{truth(SINGLES[i]):.4f}\n"
                                                                   for i in picked))
    cli("design", "start", root / "c", "--input", root / "start.csv", "--parent", PARENT, "--n", "16",
        "--max-mutations", "2", "--param", "steps=20")
    cli("design", "round", root / "c", "--measured", measure(root / "c/round-0/plate.csv", root / "r0.csv"))
    return root


def test_a_round_appends_the_wells_refits_and_proposes(campaign):
    record = json.loads((campaign / "c/campaign.json").read_text())
    assert [r["round"] for r in record["rounds"]] == [0, 1] and record["rounds"][1]["rows"] == 12 + 16
    data = pd.read_csv(campaign / "c/round-1/data.csv")
    plate0 = pd.read_csv(campaign / "c/round-0/plate.csv")
    assert set(plate0["mutations"]) <= set(data["mutant"]) and list(data.columns) == ["mutant", "activity"]
    plate1 = pd.read_csv(campaign / "c/round-1/plate.csv")
    assert len(plate1) == 16 and not set(plate1["mutations"]) & set(data["mutant"])  # nothing measured again
    assert (campaign / "c/round-1/run/metrics.json").exists()
    metrics = json.loads((campaign / "c/round-1/run/metrics.json").read_text())
    assert metrics["model"] == "gp" and metrics["params"]["steps"] == 20  # the settings of round 0
    assert record["rounds"][1]["measured"]["wells"] == 16 and len(record["rounds"][1]["data_sha256"]) == 64


def test_the_report_shows_best_hit_rate_and_predicted_vs_measured(campaign, tmp_path):
    result = cli("design", "report", campaign / "c", "--html", tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert "best measured" in page and "hit rate (above best before)" in page and "data:image/svg+xml" in page
    best = max(pd.read_csv(campaign / "c/round-1/data.csv")["activity"])
    assert f"{best:.4g}" in page and "predicted vs measured" in result.output


def test_mimo_report_on_a_campaign_folder_shows_its_rounds(campaign, tmp_path):
    result = cli("report", campaign / "c", "--html", tmp_path / "rounds.html")
    page = (tmp_path / "rounds.html").read_text()
    assert "best measured" in page and "hit rate (above best before)" in page
    assert "best measured" in result.output and "round" in result.output


@pytest.mark.parametrize("change, fragments", [
    (lambda t: pd.concat([t, t.iloc[:1]]), ("listed twice", "bad.csv:18")),
    (lambda t: t.assign(well=["Z9"] + t["well"].tolist()[1:]), ("'Z9' is not on the round's plate", "bad.csv:2")),
    (lambda t: t.assign(activity=[np.nan] + t["activity"].tolist()[1:]), ("not a finite number", "bad.csv:2")),
    (lambda t: t.rename(columns={"activity": "fitness"}), ("no column 'activity'",)),
])
def test_results_that_do_not_match_the_plate_are_refused_and_nothing_is_lost(campaign, tmp_path, change,
                                                                             fragments):
    before = (campaign / "c/campaign.json").read_text()
    bad = measure(campaign / "c/round-1/plate.csv", tmp_path / "bad.csv", change=change)
    refused(cli("design", "round", campaign / "c", "--measured", bad, ok=False), "bad.csv", *fragments)
    assert (campaign / "c/campaign.json").read_text() == before


def test_a_round_run_twice_and_another_plates_results_are_refused(campaign, tmp_path):
    refused(cli("design", "round", campaign / "c", "--measured", campaign / "r0.csv", ok=False),
            "already added in round 1")
    plate0 = pd.read_csv(campaign / "c/round-0/plate.csv")  # right wells, another plate's variants
    pd.DataFrame({"well": plate0["well"], "mutant": plate0["mutations"], "activity": 1.0}).to_csv(
        tmp_path / "old.csv", index=False)
    refused(cli("design", "round", campaign / "c", "--measured", tmp_path / "old.csv", ok=False),
            "results of another plate")


def test_another_dataset_and_a_changed_file_are_refused(campaign, tmp_path):
    (tmp_path / "other.csv").write_text("mutant,activity\nA1G,1\nA2G,2\nA3G,3\n")
    refused(cli("design", "start", campaign / "c", "--input", tmp_path / "other.csv", "--parent", "AAAAAAAA",
                ok=False), "another dataset")
    copy = tmp_path / "copy"
    shutil.copytree(campaign / "c", copy)
    (copy / "round-1/plate.csv").write_text("well,mutations\nA1,K2A\n")
    refused(cli("design", "round", copy, "--measured", campaign / "r0.csv", ok=False), "changed since")
    refused(cli("design", "round", tmp_path, "--measured", campaign / "r0.csv", ok=False), "not a campaign")


def test_a_crashed_round_resumes(campaign, tmp_path, monkeypatch):
    import mimo.campaign as module

    copy = tmp_path / "c"
    shutil.copytree(campaign / "c", copy)
    results = measure(copy / "round-1/plate.csv", tmp_path / "r1.csv")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("mimo.design.propose", crash)  # dies after the fit, before the plate
    with pytest.raises(KeyboardInterrupt):
        module.next_round(copy, results)
    assert len(json.loads((copy / "campaign.json").read_text())["rounds"]) == 2  # not recorded
    fitted = (copy / "round-2/run/metrics.json").stat().st_mtime_ns
    monkeypatch.undo()
    cli("design", "round", copy, "--measured", results)
    assert len(json.loads((copy / "campaign.json").read_text())["rounds"]) == 3
    assert (copy / "round-2/run/metrics.json").stat().st_mtime_ns == fitted  # the fit was not done again


def test_bad_plate_options_are_refused_before_anything_is_written(tmp_path):
    (tmp_path / "s.csv").write_text("mutant,activity\nK2A,1\nT3A,2\nY4A,3\n")
    refused(cli("design", "start", tmp_path / "c", "--input", tmp_path / "s.csv", "--parent", PARENT, "--beta",
                "nan", ok=False), "--beta")
    assert not (tmp_path / "c").exists()
