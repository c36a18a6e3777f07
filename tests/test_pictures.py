"""Pictures that read at a glance, and the HTML page to share: what each says, that it parses, that nothing in it
needs the network."""
import base64
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from mimo.models.report.html import REPORT_FILE
from mimo.models.report.plots import plot_test_predictions, scan_centre
from mimo.models.report.svg import line_chart

SVG = "{http://www.w3.org/2000/svg}"
PARENT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"  # 33 residues; positions 26-33 are never mutated below
WILD_TYPE = 1.25


def write_table(path: Path) -> Path:
    """The wild type measured, singles at positions 1-25, doubles among them: scores from a seeded random model."""
    rng = np.random.default_rng(3)
    effect = {(i, a): rng.normal() for i in range(25) for a in "AGLDEKW"}
    singles = [(i, a) for (i, a) in effect if a != PARENT[i]][::2]
    doubles = [(singles[k], singles[k + 7]) for k in range(0, len(singles) - 7, 3)
               if singles[k][0] != singles[k + 7][0]]
    rows = [("WT", WILD_TYPE)]
    rows += [(f"{PARENT[i]}{i + 1}{a}", WILD_TYPE + effect[i, a] + 0.1 * rng.normal()) for i, a in singles]
    rows += [(":".join(f"{PARENT[i]}{i + 1}{a}" for i, a in pair), WILD_TYPE + sum(effect[m] for m in pair))
             for pair in doubles]
    path.write_text("mutant,fitness\n" + "".join(f"{m},{s:.4f}\n" for m, s in rows))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A MIMO run (scanned, with a plate) and a 3-fold cross-validated one, on a small table with a wild type."""
    root = tmp_path_factory.mktemp("pictures")
    table = write_table(root / "toy.csv")
    run_cli("embed", "build", "--model", "onehot-sites", "--input", table, "--parent", PARENT, "--cache",
            root / "cache", "--quiet")
    fit = ("fit", "mimo", "--routing", "random", "--epochs", "3", "--dataset", "toy", "--cache", root / "cache",
           "--quiet")
    run_cli(*fit, "--out", root / "run")
    run_cli(*fit, "--cv", "3", "--out", root / "cv")
    run_cli("design", "scan", root / "run")
    run_cli("design", "propose", root / "run", "--n", "8")
    return SimpleNamespace(root=root, run=root / "run", cv=root / "cv", table=table)


def parse(path: Path) -> ElementTree.Element:
    return ElementTree.parse(path).getroot()


def texts(root: ElementTree.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def by_class(root: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def test_every_picture_of_a_run_parses_as_xml(runs):
    pictures = sorted(runs.run.glob("*.svg")) + sorted(runs.cv.glob("*.svg"))
    assert {p.name for p in pictures} >= {"scan.svg", "test_predictions.svg", "loss_curve.svg"}
    for path in pictures:
        assert parse(path).tag == f"{SVG}svg", path


def test_scan_centres_on_the_measured_wild_type_with_a_colour_bar_hatching_and_outlines(runs):
    from mimo.models.runs.directory import load_run

    root = parse(runs.run / "scan.svg")
    assert f"centre: measured wild type {WILD_TYPE:.3g}" in texts(root)
    bar = by_class(root, "colorbar")
    assert len(bar) == 1 and bar[0].get("fill") == "url(#mimo-colorbar)"
    assert root.find(f".//{SVG}pattern[@id='mimo-hatch']") is not None
    support = load_run(runs.run).support
    hatched = by_class(root, "unmeasured")
    assert {int(round((float(r.get("x")) - 30) / 11)) for r in hatched} >= set(range(25, 33))  # columns 26-33
    assert len(hatched) == len(PARENT) - len(support.sites)
    assert all(r.get("fill") == "url(#mimo-hatch)" for r in hatched)
    assert len(by_class(root, "measured")) == len(support.substitutions) > 0


def test_scan_centre_is_the_predicted_parent_only_without_a_wild_type_measurement():
    def never():
        raise AssertionError("the parent need not be predicted when the wild type is measured")

    measured = pd.DataFrame({"n_mutations": [0, 1, 0], "y": [3.0, -1.0, 4.0]})
    assert scan_centre(measured, never) == (3.5, "measured wild type 3.5 (mean of 2 rows)")
    singles = pd.DataFrame({"n_mutations": [1, 2], "y": [3.0, -1.0]})
    assert scan_centre(singles, lambda: 1.5) == (1.5, "predicted parent 1.5 (no wild-type measurement)")


def toy_predictions(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    counts = np.r_[[0, 9, 12], rng.integers(1, 4, n - 3)]
    prediction = y + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"split": "test", "n_mutations": counts, "y": y, "prediction": prediction,
                         "lower": prediction - 1, "upper": prediction + 1, "no_signal": np.arange(n) < 3})


METRICS = {"model": "mimo", "dataset": "toy", "features": "onehot-sites", "split": "random",
           "test": {"spearman": 0.5}}


def test_predicted_vs_measured_lists_every_count_marks_no_signal_bars_a_sample_and_cuts_no_point(tmp_path):
    predictions = toy_predictions()
    root = parse(plot_test_predictions(METRICS, predictions, tmp_path / "p.svg"))
    legend = texts(by_class(root, "legend")[0])
    sizes = predictions["n_mutations"].clip(upper=8).value_counts()
    for count in (1, 2, 3):
        assert f"{count} mut. (n={sizes[count]})" in legend
    assert "wild type (n=1)" in legend and "8+ mut. (n=2)" in legend and "no signal (n=3)" in legend
    assert [len(g) for g in by_class(root, "flagged")] == [1, 1, 1]
    assert len(by_class(root, "interval")) == 200
    frame = by_class(root, "frame")[0]
    x0, y0 = float(frame.get("x")), float(frame.get("y"))
    x1, y1 = x0 + float(frame.get("width")), y0 + float(frame.get("height"))
    points = by_class(root, "point")
    assert len(points) == len(predictions)
    for p in points:  # padded axes: every point wholly inside the frame
        r = float(p.get("r"))
        assert x0 < float(p.get("cx")) - r and float(p.get("cx")) + r < x1
        assert y0 < float(p.get("cy")) - r and float(p.get("cy")) + r < y1
    assert any("test Spearman 0.500" in t for t in texts(root))


def test_under_cross_validation_the_picture_says_out_of_fold_and_pooled(tmp_path, runs):
    metrics = {**METRICS, "cv": {"folds": 5}, "mean_fold_spearman": 0.4}
    words = " ".join(texts(parse(plot_test_predictions(metrics, toy_predictions(), tmp_path / "p.svg"))))
    assert "out-of-fold predictions" in words and "pooled out-of-fold Spearman 0.500 (mean per fold 0.400)" in words
    assert "test Spearman" not in words
    title = by_class(parse(runs.cv / "test_predictions.svg"), "title")[0]
    assert "out-of-fold" in "".join(title.itertext())


def test_the_loss_curve_legend_is_beside_the_lines_not_over_them(tmp_path):
    x = list(range(1, 21))
    root = parse(line_chart(x, {"train loss": [1 / e for e in x], "valid loss": [1 / e + 0.1 for e in x]},
                            tmp_path / "loss.svg", marker=(5, "best epoch 5")))
    frame = by_class(root, "frame")[0]
    right = float(frame.get("x")) + float(frame.get("width"))
    legend = by_class(root, "legend")[0]
    xs = [float(e.get("x") or e.get("x1") or e.get("cx")) for e in legend]
    assert len(legend) == 6 and min(xs) > right


def test_data_show_names_the_score_and_reads_for_singles_only_data(tmp_path):
    from mimo.pipeline.io.datasets import load_dataset
    from mimo.pipeline.io.show import score_name, splits_figure

    table = tmp_path / "singles.csv"
    table.write_text("mutant,fitness\n" + "".join(f"{PARENT[i]}{i + 1}A,{i / 10}\n" for i in range(1, 30)
                                                  if PARENT[i] != "A"))
    dataset = load_dataset(table, parent=PARENT)
    split = next(iter(dataset.splits))
    counts, scores = splits_figure(dataset, split).axes
    assert scores.get_ylabel() == "fitness" and "fitness" in counts.figure.texts[0].get_text()
    assert "all single substitutions" in counts.get_title()
    assert [t.get_text() for t in counts.get_xticklabels()] == ["train", "valid", "test"]
    assert score_name(SimpleNamespace(columns={}, name="gfp")) == "brightness (log fluorescence)"
    assert score_name(SimpleNamespace(columns={}, name="mine")) == "label"


def with_auto(run: Path, out: Path) -> Path:
    """A copy of ``run`` whose metrics carry `fit auto`'s record (a leaderboard of three candidates)."""
    shutil.copytree(run, out)
    metrics = json.loads((out / "metrics.json").read_text())
    candidates = [{"features": ["onehot-sites"], "head": "ridge", "params": {}, "valid_spearman": 0.61, "seconds": 1.0},
                  {"features": ["onehot-sites"], "head": "mimo", "params": {"routing": "random"},
                   "valid_spearman": 0.72, "seconds": 3.0},
                  {"features": ["onehot-sites"], "head": "mlp", "params": {}, "valid_spearman": None, "seconds": None,
                   "skipped": "over the budget"}]
    metrics["auto"] = {"chosen": {k: candidates[1][k] for k in ("features", "head", "params")},
                       "candidates": candidates, "selection": "validation rows"}
    (out / "metrics.json").write_text(json.dumps(metrics))
    return out


def test_the_html_page_is_one_well_formed_self_contained_file(runs, tmp_path):
    odd = shutil.copytree(runs.cv, tmp_path / 'cv <b>&"odd"')
    auto = with_auto(runs.run, tmp_path / "auto")
    page = tmp_path / "report.html"
    run_cli("report", runs.run, odd, auto, "--html", page)
    text = page.read_text()
    root = ElementTree.fromstring(text.removeprefix("<!DOCTYPE html>"))  # well formed
    assert "http:" not in text and "https:" not in text and "<svg" not in text and "<script" not in text
    assert "<b>" not in text and "cv &lt;b&gt;&amp;&quot;odd&quot;" in text
    images = list(root.iter("img"))
    assert len(images) == 3 + 1 + 3  # run: scan, predictions, loss; cv: predictions; auto: as run
    for image in images:
        kind, data = image.get("src").split(",", 1)
        assert kind == "data:image/svg+xml;base64"
        assert ElementTree.fromstring(base64.b64decode(data)).tag == f"{SVG}svg"
    headings = ["".join(h.itertext()) for h in root.iter("h3")]
    assert "per fold" in headings and "plate (proposal.csv)" in headings
    assert any(h.startswith("fit auto: candidates") for h in headings)
    board = [["".join(td.itertext()) for td in tr.iter("td")] for tr in root.iter("tr")]
    assert ["mimo routing=random on onehot-sites", "0.72", "3", "chosen"] in board
    per_fold = text.split("<h3>per fold</h3>", 1)[1].split("</table>", 1)[0]
    assert per_fold.count("<tr>") == 1 + 3 and "validation_fold" in per_fold
    wells = pd.read_csv(runs.run / "proposal.csv")["well"].tolist()
    assert all(f'<td class="text">{w}</td>' in text for w in wells)


def test_every_run_directory_holds_its_page_named_after_the_run(runs):
    root = ElementTree.fromstring((runs.cv / REPORT_FILE).read_text().removeprefix("<!DOCTYPE html>"))
    assert [h.get("id") for h in root.iter("h2") if h.get("id")] == ["cv"]
    assert "out-of-fold (pooled)" in ElementTree.tostring(root, encoding="unicode")


def test_an_unwritable_html_path_is_one_line_before_any_work(runs, tmp_path):
    result = run_cli("report", runs.run, "--html", tmp_path / "missing" / "r.html", ok=False)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "--html" in result.output and "|" not in result.output
