"""Pictures that read at a glance (drawn with matplotlib: what each says, that nothing is cut at its edges), and
the HTML page to hand a PI: that it parses, fits the page, marks the best runs, shows every warning, needs no
network, and embeds nothing but the regular files the run wrote."""
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from conftest import run_cli
from mimo.models.report.html import REPORT_FILE, run_file
from mimo.models.report.plots import (ScanMarks, loss_curve_figure, predictions_figure, round_ticks, save_figure,
                                      scan_centre, scan_colours, scan_figure, wrap)

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
    fit = ("fit", "mimo", "--routing", "random", "--epochs", "3", "--min-steps", "60", "--dataset", "toy", "--cache", root / "cache",
           "--quiet")
    run_cli(*fit, "--out", root / "run")
    run_cli(*fit, "--cv", "3", "--out", root / "cv")
    run_cli("design", "scan", root / "run")
    run_cli("design", "propose", root / "run", "--n", "8")
    return SimpleNamespace(root=root, run=root / "run", cv=root / "cv", table=table)


def test_every_picture_of_a_run_is_an_svg_with_a_png_beside_it(runs):
    for run, stems in ((runs.run, ("test_predictions", "loss_curve", "scan")), (runs.cv, ("test_predictions",))):
        for stem in stems:
            assert ElementTree.parse(run / f"{stem}.svg").getroot().tag == f"{SVG}svg"
            assert (run / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matplotlib_is_imported_only_by_what_draws():
    code = ("import sys\nfrom mimo.cli import main\nimport mimo.models.runs.directory, mimo.models.report.html\n"
            "try:\n    main(['fit', 'ridge', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('matplotlib' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


def _cut_texts(fig) -> bool:
    """Whether anything drawn on ``fig`` (titles, labels, legends, ticks in view) reaches past its edges."""
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    width, height = fig.get_size_inches()
    return box.x0 < -0.01 or box.y0 < -0.01 or box.x1 > width + 0.01 or box.y1 > height + 0.01


LONG = "profile:esm2_t33_650M_UR50D_proteinmpnn_vanilla_v48_020+scores:tranceptEVE_L+onehot-sites"


def synthetic_scan(n: int = 120, centre: float = 1.0):
    """A scan of ``n`` positions: predictions in [0.2, 1.05], two positions never mutated, one blind cell."""
    rng = np.random.default_rng(0)
    letters = "ACDEFGHIKLMNPQRSTVWY"
    parent = {p: letters[p % 20] for p in range(1, n + 1)}
    values = {(p, a): float(rng.uniform(0.2, 1.05)) for p in parent for a in letters if a != parent[p]}
    measured = {k for k in list(values)[::3]}
    marks = ScanMarks(parent, centre, f"measured wild type {centre:g}", blind={(5, "A")}, measured=measured,
                      unmeasured={7, 8})
    return letters, values, marks


def test_the_scan_reads_at_a_glance():
    letters, values, marks = synthetic_scan()
    fig = scan_figure(sorted(marks.parent), letters, values, marks, title=f"saturation scan: mimo on toy/{LONG}",
                      score="activity")
    bar = next(ax for ax in fig.axes if ax.get_ylabel() == "predicted activity")
    shown = [v for k, v in values.items() if k not in marks.blind]
    assert bar.get_ylim() == pytest.approx((min(shown), max(shown)))  # the predicted range, not a symmetric one
    ticks = [t for t in bar.get_yticks() if min(shown) <= t <= max(shown)]
    assert len(ticks) >= 3 and all(abs(t * 10 - round(t * 10)) < 1e-9 for t in ticks)  # round: tenths here
    blocks = [ax for ax in fig.axes if ax is not bar]
    assert len(blocks) == 2 and all(ax.get_ylabel() == "substitution" for ax in blocks)
    assert blocks[-1].get_xlabel() == "position"
    assert all(t % 10 == 0 for ax in blocks for t in ax.get_xticks())
    outlines = [c for ax in blocks for c in ax.collections if c.get_hatch() is None and len(c.get_paths())]
    assert sum(len(c.get_paths()) for c in outlines) == len(marks.measured)
    assert all(c.get_edgecolor()[0][3] <= 0.5 and c.get_linewidth()[0] <= 0.6 for c in outlines)  # light
    hatched = [c for ax in blocks for c in ax.collections if c.get_hatch()]
    assert sum(len(c.get_paths()) for c in hatched) == 2
    assert not _cut_texts(fig)
    assert "\n" in fig.get_suptitle()  # the long feature name wrapped


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=30), st.floats(-1e3, 1e3))
def test_scan_colours_span_the_predictions_and_are_white_at_the_centre(values, centre):
    from matplotlib import colormaps

    norm, cmap = scan_colours(np.array(values), centre)
    low, high = min(values), max(values)
    if high > low:
        assert (norm.vmin, norm.vmax) == (low, high)
    if norm.vmin < centre < norm.vmax:
        assert np.allclose(cmap(norm(centre))[:3], colormaps["RdBu_r"](0.5)[:3], atol=0.02)
    far = max((norm.vmin, norm.vmax), key=lambda v: abs(v - centre))
    if abs(far - centre) > 1e-9 * max(1.0, abs(centre)):  # the end farthest from the centre: full colour
        end = 0.0 if far < centre else 1.0
        assert np.allclose(cmap(norm(far))[:3], colormaps["RdBu_r"](end)[:3], atol=0.02)


@settings(max_examples=80, deadline=None)
@given(st.floats(-1e4, 1e4), st.floats(1e-3, 1e4))
def test_round_ticks_are_round_evenly_spaced_and_inside(low, span):
    ticks = round_ticks(low, low + span)
    assert len(ticks) >= 2 and all(low - 1e-9 * span <= t <= low + span + 1e-9 * span for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0], rtol=1e-6)
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=400), st.floats(3, 14))
def test_titles_wrap_to_the_figure_in_three_lines_at_most(text, inches):
    lines = wrap(text, inches).split("\n")
    assert len(lines) <= 3 and all(len(line) <= max(20, int(inches * 72 / 6.5)) for line in lines)


def test_a_joined_feature_name_breaks_after_a_plus_not_inside_a_word():
    assert wrap(f"mimo on toy/{LONG} (random): test predictions", 7.2).split("\n") == [
        "mimo on toy/profile:esm2_t33_650M_UR50D_proteinmpnn_vanilla_v48_020+",
        "scores:tranceptEVE_L+onehot-sites (random): test predictions"]


def test_scan_centre_is_the_predicted_parent_only_without_a_wild_type_measurement():
    def never():
        raise AssertionError("the parent need not be predicted when the wild type is measured")

    measured = pd.DataFrame({"n_mutations": [0, 1, 0], "y": [3.0, -1.0, 4.0]})
    assert scan_centre(measured, never) == (3.5, "measured wild type 3.5 (mean of 2 rows)")
    singles = pd.DataFrame({"n_mutations": [1, 2], "y": [3.0, -1.0]})
    assert scan_centre(singles, lambda: 1.5) == (1.5, "predicted parent 1.5 (no wild-type measurement)")


def test_the_run_scan_is_centred_on_the_measured_wild_type_named_by_the_assay(runs):
    from mimo.models.report.plots import scan_table_figure
    from mimo.models.runs.directory import load_run

    run = load_run(runs.run)
    fig = scan_table_figure(run, pd.read_csv(runs.run / "scan.csv"), lambda: pytest.fail("wild type measured"))
    assert f"white: measured wild type {WILD_TYPE:.3g}" in fig.get_suptitle()
    assert any(ax.get_ylabel() == "predicted fitness" for ax in fig.axes)
    hatched = [c for ax in fig.axes for c in ax.collections if c.get_hatch()]
    assert sum(len(c.get_paths()) for c in hatched) == len(PARENT) - len(run.support.sites) >= 8  # 26-33


def toy_predictions(n: int = 500, seed: int = 0, split: str = "test") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    counts = np.r_[[0, 9, 12], rng.integers(1, 4, n - 3)]
    prediction = y + 0.3 * rng.normal(size=n)
    return pd.DataFrame({"split": split, "n_mutations": counts, "y": y, "prediction": prediction,
                         "lower": prediction - 1, "upper": prediction + 1, "no_signal": np.arange(n) < 3})


METRICS = {"model": "mimo", "dataset": "toy", "features": "onehot-sites", "split": "random",
           "test": {"spearman": 0.5}}


def legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_predicted_vs_measured_names_the_assay_lists_every_count_and_cuts_nothing():
    predictions = toy_predictions()
    fig = predictions_figure({**METRICS, "features": LONG}, predictions, "activity")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "measured activity" and ax.get_ylabel() == "predicted activity (test)"
    legend = legend_texts(fig)
    sizes = predictions["n_mutations"].clip(upper=8).value_counts()
    for count in (1, 2, 3):
        assert f"{count} mut. (n={sizes[count]})" in legend
    assert "wild type (n=1)" in legend and "8+ mut. (n=2)" in legend
    assert "no signal from the features (n=3)" in legend and "95% interval (200 rows)" in legend
    bars = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert [len(c.get_segments()) for c in bars] == [200]
    x0, x1 = ax.get_xlim()
    assert x0 < predictions["y"].min() and predictions["y"].max() < x1  # padded: no point cut in half
    assert "test Spearman 0.500" in ax.get_title()
    assert not _cut_texts(fig) and "\n" in fig.get_suptitle()


@pytest.mark.parametrize("split", ["test", "oof"])
def test_under_cross_validation_the_picture_says_out_of_fold_and_pooled(split):
    metrics = {**METRICS, "cv": {"folds": 5}, "mean_fold_spearman": 0.4}
    fig = predictions_figure(metrics, toy_predictions(split=split))
    assert "out-of-fold predictions" in fig.get_suptitle()
    assert fig.axes[0].get_title().startswith("pooled out-of-fold Spearman 0.500 (mean per fold 0.400)")


def test_the_loss_curve_has_whole_epochs_and_its_legend_beside_the_lines():
    history = [{"epoch": e, "train_loss": 1 / e, "valid_loss": 1 / e + 0.1, "valid_mse": 1 / e + 0.2}
               for e in range(1, 21)]
    fig = loss_curve_figure({**METRICS, "history": history, "best_epoch": 5, "params": {"lr": 1e-3}})
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_legend().get_window_extent().x0 > ax.get_window_extent().x1
    assert len(legend_texts(fig)) == 4 and "best epoch 5" in legend_texts(fig)
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert not _cut_texts(fig)


def test_a_picture_with_an_unknown_suffix_is_refused_naming_the_file(tmp_path):
    from mimo.pipeline.errors import DataError

    with pytest.raises(DataError, match="x.txt"):
        save_figure(loss_curve_figure({**METRICS, "history": [{"epoch": 1, "train_loss": 1, "valid_loss": 1}],
                                       "params": {}}), tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()


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


def edited(run: Path, out: Path, change) -> Path:
    """A copy of ``run`` whose metrics ``change`` edits in place."""
    shutil.copytree(run, out)
    metrics = json.loads((out / "metrics.json").read_text())
    change(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics))
    return out


def with_auto(metrics: dict) -> None:
    """`fit auto`'s record: a leaderboard of three candidates."""
    candidates = [{"features": ["onehot-sites"], "head": "ridge", "params": {}, "valid_spearman": 0.61, "seconds": 1.0},
                  {"features": ["onehot-sites"], "head": "mimo", "params": {"routing": "random"},
                   "valid_spearman": 0.72, "seconds": 3.0},
                  {"features": ["onehot-sites"], "head": "mlp", "params": {}, "valid_spearman": None, "seconds": None,
                   "skipped": "over the budget"}]
    metrics["auto"] = {"chosen": {k: candidates[1][k] for k in ("features", "head", "params")},
                       "candidates": candidates, "selection": "validation rows"}


def page_of(path: Path) -> ElementTree.Element:
    return ElementTree.fromstring(path.read_text().removeprefix("<!DOCTYPE html>"))  # well formed


def cells_of(root: ElementTree.Element, table_class: str | None = None) -> list[list[str]]:
    tables = [t for t in root.iter("table") if table_class is None or t.get("class") == table_class]
    rows = [["".join(td.itertext()) for td in tr.iter("td")] for t in tables for tr in t.iter("tr")]
    return [row for row in rows if row]


def test_the_html_page_is_one_well_formed_self_contained_file(runs, tmp_path):
    odd = shutil.copytree(runs.cv, tmp_path / 'cv <b>&"odd"')
    auto = edited(runs.run, tmp_path / "auto", with_auto)
    page = tmp_path / "report.html"
    run_cli("report", runs.run, odd, auto, "--html", page)
    text = page.read_text()
    root = page_of(page)
    assert "http:" not in text and "https:" not in text and "<svg" not in text and "<script" not in text
    assert "<b>" not in text and "cv &lt;b&gt;&amp;&quot;odd&quot;" in text
    images = list(root.iter("img"))
    assert [i.get("alt") for i in images] == ["test_predictions.png", "loss_curve.png", "scan.png",
                                             "test_predictions.png", "test_predictions.png", "loss_curve.png",
                                             "scan.png"]
    for image in images:
        kind, data = image.get("src").split(",", 1)
        assert kind == "data:image/png;base64" and base64.b64decode(data)[:4] == b"\x89PNG"
    headings = ["".join(h.itertext()) for h in root.iter("h3")]
    assert "per fold" in headings and "plate (proposal.csv)" in headings
    assert any(h.startswith("fit auto: candidates") for h in headings)
    assert ["mimo routing=random on onehot-sites", "0.72", "3", "chosen"] in cells_of(root)
    per_fold = text.split("<h3>per fold</h3>", 1)[1].split("</table>", 1)[0]
    assert per_fold.count("<tr>") == 1 + 3 and "validation_fold" in per_fold
    wells = pd.read_csv(runs.run / "proposal.csv")["well"].tolist()
    assert all(f'<td class="text">{w}</td>' in text for w in wells)
    assert "How to read this" in text


def test_the_runs_table_leads_with_key_columns_marks_the_best_and_folds_the_rest(runs, tmp_path):
    better = edited(runs.run, tmp_path / "better", lambda m: m["test"].update(spearman=0.99))
    page = tmp_path / "report.html"
    run_cli("report", runs.run, better, runs.cv, "--html", page)
    root = page_of(page)
    key = next(t for t in root.iter("table") if t.get("class") == "key")
    assert ["".join(th.itertext()) for th in key.iter("th")] == ["run", "head", "features", "scheme", "Spearman",
                                                               "coverage", "width", "warnings"]
    rows = {r[0].split()[0]: r for r in cells_of(root, "key")}
    assert "best" in rows["better"][0] and "best" not in rows["run"][0]
    assert "best" not in rows["cv"][0]  # alone in its scheme: nothing to be best among
    twins = [shutil.copytree(better, tmp_path / f"twin{i}") for i in range(2)]
    run_cli("report", better, *twins, "--html", page)
    marks = [r[0] for r in cells_of(page_of(page), "key")]
    assert marks == ["better \u2605 best (tied with 2)", "twin0", "twin1"]
    assert rows["better"][3] == "random split" and rows["cv"][3] == "random_3 (3-fold CV)"
    folded = next(root.iter("details"))
    assert "test loss" in "".join(th.text or "" for th in folded.iter("th"))


def test_every_warning_sits_beside_its_table_or_plate(runs, tmp_path):
    warned = edited(runs.run, tmp_path / "warned", lambda m: m.update(
        warnings=["the labels look like log values"], notes=[{"kind": "note", "message": "routing fell back"}]))
    plate = pd.read_csv(warned / "proposal.csv")
    plate.loc[:2, "no_signal"] = True
    plate.to_csv(warned / "proposal.csv", index=False)
    page = tmp_path / "report.html"
    run_cli("report", warned, "--html", page)
    text = page.read_text()
    section = text.split('<h2 id="warned">', 1)[1]
    assert '<p class="warning">warning: the labels look like log values</p>' in section.split("<h3>metrics", 1)[0]
    assert '<p class="note">note: routing fell back</p>' in section.split("<h3>metrics", 1)[0]
    before_plate = section.split("<h3>plate (proposal.csv)</h3>", 1)[1].split("<table", 1)[0]
    assert f"warning: {int(plate['no_signal'].sum())} of {len(plate)} wells carry substitutions or positions" in before_plate
    [row] = cells_of(page_of(page), "key")
    assert row[0] == "warned" and int(row[-1]) == section.split("<h3>metrics", 1)[0].count('<p class="warning">') >= 1


def test_24_runs_make_a_page_under_2_mb(runs, tmp_path):
    copies = [shutil.copytree(runs.run, tmp_path / f"run{i:02d}") for i in range(24)]
    page = tmp_path / "report.html"
    run_cli("report", *copies, "--html", page)
    assert page.stat().st_size < 2_000_000
    assert len(list(page_of(page).iter("img"))) == 24 * 3


def test_the_page_embeds_only_regular_files_the_run_wrote(runs, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("<svg>TOP-SECRET-1234</svg>\n")
    run = shutil.copytree(runs.run, tmp_path / "crafted")
    for name in ("scan.png", "scan.svg", "test_predictions.png", "test_predictions.svg", "loss_curve.png",
                 "loss_curve.svg", "proposal.csv"):
        (run / name).unlink()
    (run / "scan.svg").symlink_to(secret)  # a link to a secret file
    (run / "x.svg").symlink_to(secret)  # a picture the run never wrote
    os.mkfifo(run / "test_predictions.png")  # a FIFO: reading it would hang
    (run / "loss_curve.png").mkdir()  # a directory named like a picture
    (run / "proposal.csv").symlink_to(secret)
    os.link(secret, run / "loss_curve.svg")  # a hard link to a file elsewhere
    page = tmp_path / "report.html"
    run_cli("report", run, "--html", page)
    text = page.read_text()
    encoded = base64.b64encode(secret.read_bytes()).decode()
    assert "TOP-SECRET" not in text and encoded[:20] not in text and not list(page_of(page).iter("img"))
    for name in ("scan.svg", "test_predictions.png", "loss_curve.png", "loss_curve.svg", "proposal.csv"):
        assert f"note: {name} is not a regular file of this run" in text
    assert "x.svg" not in text  # not a name the run writes: never looked at
    assert run_file(run, "x.svg") is None and run_file(run, "../secret.txt") is None
    assert run_file(run, "metrics.json").startswith(b"{")


def test_markdown_and_csv_cells_cannot_break_the_table_or_run_a_formula(runs, tmp_path):
    from mimo.models.report.tables import csv_safe, to_markdown

    table = pd.DataFrame({"run": ["a|b", "=1+1", "-2+3", "@SUM(A1)", "ok"], "value": [1.0, -2.0, None, 3.0, 4.0]})
    lines = to_markdown(table).splitlines()
    assert [line.replace("\\|", "").count("|") for line in lines[2:]] == [3] * 5
    assert "a\\|b" in lines[2]
    safe = csv_safe(table)
    assert safe["run"].tolist() == ["a|b", "'=1+1", "'-2+3", "'@SUM(A1)", "ok"]
    assert safe["value"].tolist()[:2] == [1.0, -2.0]  # numbers stay numbers
    odd = shutil.copytree(runs.cv, tmp_path / "=1+1|x")
    run_cli("report", odd, "--csv", tmp_path / "r.csv", "--markdown", tmp_path / "r.md")
    assert pd.read_csv(tmp_path / "r.csv")["run"].tolist() == ["'=1+1|x"]
    assert "| =1+1\\|x |" in (tmp_path / "r.md").read_text()


def test_every_run_directory_holds_its_page_named_after_the_run(runs):
    root = page_of(runs.cv / REPORT_FILE)
    assert [h.get("id") for h in root.iter("h2") if h.get("id")] == ["cv"]
    assert "out-of-fold (pooled)" in ElementTree.tostring(root, encoding="unicode")


def test_an_unwritable_html_path_is_one_line_before_any_work(runs, tmp_path):
    result = run_cli("report", runs.run, "--html", tmp_path / "missing" / "r.html", ok=False)
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "--html" in result.output and "|" not in result.output


def test_the_tables_read_a_run_record_with_out_of_fold_rows_named_oof():
    from mimo.models.report.html import metrics_table
    from mimo.models.report.tables import key_table

    oof = {"model": "ridge", "features": "onehot", "dataset": "toy", "split": "fold_modulo_5", "cv": {"folds": 5},
           "oof": {"n": 50, "spearman": 0.41, "mse": 1.2}, "train": {"n": 50, "mse": 0.5},
           "uncertainty": {"interval": {"oof": {"coverage": 0.93, "mean_width": 2.5}}},
           "warnings": ["the labels look like log values"], "params": {}}
    old = {**{k: v for k, v in oof.items() if k not in ("oof", "uncertainty", "warnings")},
           "test": {"n": 50, "spearman": 0.52, "mse": 1.0}}
    runs = [SimpleNamespace(directory=Path(name), metrics=m, source={}) for name, m in (("new", oof), ("old", old))]
    key = key_table(runs)
    assert key[["run", "scheme", "Spearman", "coverage", "width", "warnings", "best"]].fillna(-1).values.tolist() == [
        ["new", "fold_modulo_5 (5-fold CV)", 0.41, 0.93, 2.5, 1, False],
        ["old", "fold_modulo_5 (5-fold CV)", 0.52, -1, -1, 0, True]]
    assert metrics_table(oof)["part"].tolist() == ["train", "out-of-fold (pooled)"]
