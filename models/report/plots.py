"""A run's pictures, drawn with matplotlib: the loss curve of neural heads, predicted against measured, and the
saturation-scan heatmap. Each is a ``*_figure`` function returning a ``matplotlib.figure.Figure`` (to test, or to
draw on further) and a ``plot_*`` function writing it; the file's suffix picks the format (``.svg``, ``.png``,
``.pdf``).

matplotlib is imported only inside the functions that draw (``mimo fit --help`` never pays for it), and through
``Figure`` with its own Agg canvas, never pyplot: drawing changes no process-wide state (backend, rcParams).
Compact: the many marks of a picture (points, interval bars, heatmap cells and outlines) are rasterized at
``DPI`` inside an SVG, while text and axes stay vector, so a run's three pictures weigh tens of kilobytes.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from mimo.models.report.summary import is_cv
from mimo.models.report.tables import held_out_metrics
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.pipeline.writes import write_atomic

DPI = 100  # PNG resolution, and that of the rasterized marks inside an SVG
PAGE_DPI = 90  # the PNG beside each SVG of a run, embedded in its HTML page (24 runs in under 2 MB)
FONT = 9  # points: axis labels; ticks a point smaller, titles a point larger
FORMATS = ("svg", "png", "pdf")
COUNT_COLORS = ("#440154", "#482878", "#3e4989", "#31678e", "#26828e", "#1e9c89", "#32b67a", "#69cd5b")
SERIES_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
PLOT_POINTS = 4000  # a seeded sample above this: the same picture, a lighter file
INTERVAL_POINTS = 200  # interval bars drawn on a seeded sample: more is a grey wall
MOST_COUNTS = 8  # mutation counts from this on share one colour ("8+ mut.")


# --- what a run's record says (tolerant of either shape of the run record) -----------------------------------

def held_out(predictions: pd.DataFrame) -> pd.DataFrame:
    """The rows a run was measured on: ``split`` "test", or "oof" (out of fold) in runs that label them so."""
    return predictions[predictions["split"].isin(("test", "oof"))]


def trained_params(metrics: dict) -> dict:
    """The parameters of the head that was trained (for `fit auto`: the chosen candidate's)."""
    return metrics.get("auto", {}).get("chosen_params") or metrics.get("params", {})


def score_label(source: dict | None) -> str:
    """What the assay's score is called, from a run's ``source.json`` (its dataset record)."""
    from mimo.pipeline.io.show import score_name_of

    dataset = (source or {}).get("dataset", {})
    return score_name_of(dataset.get("name") or "", dataset.get("columns") or {})


def _run_name(metrics: dict) -> str:
    return f"{metrics['model']} on {metrics['dataset']}/{metrics['features']} ({metrics['split']})"


# --- drawing helpers ------------------------------------------------------------------------------------------

def wrap(text: str, width_inches: float, size: float = FONT + 1, lines: int = 3) -> str:
    """``text`` wrapped to the width of a figure (about 0.65 em a character), at most ``lines`` lines (the last
    shortened with an ellipsis); long words (a joined feature name) are broken at ``+``, ``:`` or ``/`` first."""
    chars = max(20, int(width_inches * 72 / (0.65 * size)))
    marker = "\ue000"  # a break opportunity after + and / (inside feature names), removed once wrapped
    spaced = text.replace("+", f"+{marker} ").replace("/", f"/{marker} ")
    out = textwrap.wrap(spaced, chars, break_long_words=True, break_on_hyphens=False)
    out = [line.replace(f"{marker} ", "").replace(marker, "") for line in (out or [""])]
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][: chars - 3].rstrip() + "..."
    return "\n".join(out)


def _figure(width: float, height: float):
    """A Figure on its own Agg canvas, laid out by constrained layout (nothing cut at the edges)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path, dpi: int = DPI) -> Path:
    """``fig`` written atomically at ``path``, in the format its suffix names (svg, png or pdf); a PNG in a
    palette of 256 colours (Pillow's octree: a third of the bytes, the same to the eye)."""
    from mimo.pipeline.errors import DataError

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise DataError(f"a picture is written as {', '.join('.' + f for f in FORMATS)}, not "
                        f"{path.suffix or 'a name without suffix'}", path)
    if kind == "png":
        return write_atomic(path, lambda tmp: _write_png(fig, tmp, dpi))
    metadata = {"Date": None} if kind == "svg" else {}  # an SVG the same for the same run
    return write_atomic(path, lambda tmp: fig.savefig(tmp, format=kind, dpi=dpi, metadata=metadata))


def _write_png(fig, path: Path, dpi: int) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    image = Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    image.save(path, format="PNG", optimize=True)


def save_both(fig, svg: Path) -> list[Path]:
    """``fig`` as ``svg`` (vector, to print) and beside it as PNG at ``PAGE_DPI`` (what the HTML page embeds)."""
    return [save_figure(fig, svg), save_figure(fig, Path(svg).with_suffix(".png"), PAGE_DPI)]


def _style(ax) -> None:
    ax.tick_params(labelsize=FONT - 1)
    ax.xaxis.label.set_size(FONT)
    ax.yaxis.label.set_size(FONT)


# --- the loss curve -------------------------------------------------------------------------------------------

def loss_curve_figure(metrics: dict):
    """Train and validation loss per epoch, best epoch marked (a dotted line); under MIMO also the validation MSE
    of the members averaged (dashed). The legend sits beside the plotted area, never over a line."""
    history = metrics["history"]
    epochs = [h["epoch"] for h in history]
    series = {"train loss": [h["train_loss"] for h in history], "valid loss": [h["valid_loss"] for h in history]}
    if metrics["model"] == "mimo" and all("valid_mse" in h for h in history):
        series["valid MSE (members averaged)"] = [h["valid_mse"] for h in history]
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7.0, 3.8)
    ax = fig.add_subplot()
    for (name, values), color in zip(series.items(), SERIES_COLORS):
        ax.plot(epochs, values, color=color, lw=1.6, ls="--" if name.startswith("valid MSE") else "-", label=name)
    best = metrics.get("best_epoch")
    if best is not None:
        ax.axvline(best, color="grey", ls=":", lw=1.2, label=f"best epoch {best}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss (MSE)")
    ax.legend(fontsize=FONT - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _style(ax)
    lr = trained_params(metrics).get("lr")
    fig.suptitle(wrap(f"{_run_name(metrics)}: Adam, StepLR" + (f", lr={lr:g}" if lr is not None else ""), 7.0),
                 fontsize=FONT + 1)
    return fig


def plot_loss_curve(metrics: dict, path: str | Path) -> Path:
    """``loss_curve_figure`` written at ``path``."""
    return save_figure(loss_curve_figure(metrics), path)


# --- predicted against measured -------------------------------------------------------------------------------

def count_color(group: int, top: int) -> str:
    """Ordered colours for mutation counts 1..``top`` spread over viridis (darker is fewer: 1 and 2 differ even
    when no more are shown); the wild type red, unknown grey."""
    if group <= 0:
        return "#7f7f7f" if group < 0 else "#d62728"
    return COUNT_COLORS[round((group - 1) / max(top - 1, 1) * (len(COUNT_COLORS) - 1))]


def count_group(n: int) -> int:
    """The legend group of a mutation count: itself, ``MOST_COUNTS`` for that many and more, -1 unknown."""
    return -1 if n < 0 else min(int(n), MOST_COUNTS)


def _group_name(group: int, n: int) -> str:
    what = ("unknown" if group < 0 else "wild type" if group == 0 else
            f"{group}{'+' if group == MOST_COUNTS else ''} mut.")
    return f"{what} (n={n:,})"


def _sample(rows: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A seeded sample of ``size`` rows in which every mutation count keeps some rows (at least 30, or all)."""
    if len(rows) <= size:
        return rows
    groups = rows.groupby(rows["n_mutations"].map(count_group), sort=False)
    share = size / len(rows)
    return pd.concat([g.sample(min(len(g), max(30, round(share * len(g)))), random_state=seed) for _, g in groups])


def _figure_words(metrics: dict) -> tuple[str, str]:
    """What the plotted rows are called, and the Spearman named as it was computed."""
    rho = held_out_metrics(metrics).get("spearman")
    value = "n/a" if rho is None else f"{rho:.3f}"
    if is_cv(metrics):
        mean = metrics.get("mean_fold_spearman")
        per_fold = f" (mean per fold {mean:.3f})" if mean is not None else ""
        return "out-of-fold", f"pooled out-of-fold Spearman {value}{per_fold}"
    return "test", f"test Spearman {value}"


def padded(low: float, high: float, share: float = 0.04) -> tuple[float, float]:
    """[low, high] widened by ``share`` of its span on each side (a point at the edge is not cut in half)."""
    if not high > low:
        return low - 0.5, low + 0.5
    pad = share * (high - low)
    return low - pad, high + pad


def _finite(*arrays) -> np.ndarray:
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.zeros(0)
    return values[np.isfinite(values)]


def predictions_figure(metrics: dict, predictions: pd.DataFrame, score: str = "score"):
    """Predicted against measured ``score`` on the held-out rows (under cross-validation: every row, out of fold),
    coloured by mutation count (every count in the legend, with its size), the calibrated 95% intervals of a
    seeded sample of rows as bars (cut at the frame beyond twice the points' span; the legend says how many),
    rows without signal drawn open, y = x dashed; the Spearman named as computed. None without held-out rows."""
    from matplotlib.lines import Line2D

    rows = held_out(predictions)
    if rows.empty:
        return None
    shown = _sample(rows, PLOT_POINTS, 0)
    groups = shown["n_mutations"].map(count_group).to_numpy()
    sizes = rows["n_mutations"].map(count_group).value_counts()
    order = sorted(sizes.index)
    top = max(order)
    x, y = shown["y"].to_numpy(float), shown["prediction"].to_numpy(float)
    flagged = (shown["no_signal"].fillna(False).astype(bool).to_numpy() if "no_signal" in shown
               else np.zeros(len(x), bool))
    low, high = padded(*(lambda v: (v.min(), v.max()) if len(v) else (0.0, 1.0))(_finite(x, y)))
    fig = _figure(7.2, 5.4)
    ax = fig.add_subplot()
    handles = []
    y_low, y_high = low, high
    if {"lower", "upper"} <= set(shown):
        picked = shown.index.isin(shown.sample(min(INTERVAL_POINTS, len(shown)), random_state=1).index)
        lower, upper = shown["lower"].to_numpy(float)[picked], shown["upper"].to_numpy(float)[picked]
        ends = _finite(lower, upper)
        if len(ends):  # the bars widen the vertical range, by at most the points' span on each side
            span = high - low
            y_low, y_high = padded(max(ends.min(), low - span), min(ends.max(), high + span), 0.02)
            y_low, y_high = min(y_low, low), max(y_high, high)
            cut = int(((lower < y_low) | (upper > y_high)).sum())
            colors = [count_color(g, top) for g in groups[picked]]
            ax.vlines(x[picked], lower, upper, colors=colors, alpha=0.3, lw=0.8, rasterized=True)
            handles.append(Line2D([], [], color="#555", lw=0.8, label=f"95% interval ({int(picked.sum())} rows)"
                                  + (f"; {cut} cut at the frame" if cut else "")))
    ax.plot([low, high], [low, high], color="grey", ls="--", lw=0.9)
    for group in sorted(order, key=lambda g: (g == 0, g)):  # the wild type last, on top
        mine = groups == group
        color = count_color(group, top)
        if (mine & ~flagged).any():
            ax.scatter(x[mine & ~flagged], y[mine & ~flagged], s=9, color=color, alpha=0.6, lw=0, rasterized=True)
        if (mine & flagged).any():
            ax.scatter(x[mine & flagged], y[mine & flagged], s=14, facecolors="none", edgecolors=color, lw=0.8,
                       rasterized=True)
    handles = [Line2D([], [], ls="", marker="o", color=count_color(g, top), ms=5, label=_group_name(g, int(sizes[g])))
               for g in order] + handles  # the counts in order, then the bars
    blind = int(rows["no_signal"].fillna(False).astype(bool).sum()) if "no_signal" in rows else 0
    if blind:
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", color="#444", ms=5,
                              label=f"no signal from the features (n={blind:,})"))
    ax.set_xlim(low, high)
    ax.set_ylim(y_low, y_high)
    what, spearman = _figure_words(metrics)
    ax.set_xlabel(f"measured {score}")
    ax.set_ylabel(f"predicted {score} ({what})")
    sample = f"{len(shown):,} of {len(rows):,} rows shown" if len(shown) < len(rows) else f"{len(rows):,} rows"
    ax.set_title(f"{spearman}; {sample}", fontsize=FONT)
    ax.legend(handles=handles, fontsize=FONT - 1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _style(ax)
    fig.suptitle(wrap(f"{_run_name(metrics)}: {what} predictions", 7.2), fontsize=FONT + 1)
    return fig


def plot_test_predictions(metrics: dict, predictions: pd.DataFrame, path: str | Path, score: str = "score"
                          ) -> Path | None:
    """``predictions_figure`` written at ``path`` (None, and nothing written, without held-out rows)."""
    fig = predictions_figure(metrics, predictions, score)
    return None if fig is None else save_figure(fig, path)


def write_run_pictures(directory: str | Path, metrics: dict, source: dict, predictions: pd.DataFrame) -> list[Path]:
    """The pictures every run directory holds, each as SVG and PNG (``save_both``): ``test_predictions``, and
    ``loss_curve`` for a head trained by epochs."""
    directory = Path(directory)
    written = []
    if "history" in metrics:
        written += save_both(loss_curve_figure(metrics), directory / "loss_curve.svg")
    fig = predictions_figure(metrics, predictions, score_label(source))
    return written + (save_both(fig, directory / "test_predictions.svg") if fig is not None else [])


# --- the saturation scan --------------------------------------------------------------------------------------

@dataclass
class ScanMarks:
    """What a heatmap marks beside the colours: ``parent`` residue per position (a dot), ``blind`` cells (grey: no
    signal from the features), ``measured`` cells (outlined lightly: the substitution is in a training row),
    ``unmeasured`` positions (hatched: no training row mutated there), the ``centre`` of the colours and what it
    is, and a ``note`` for the subtitle (e.g. why nothing is outlined)."""

    parent: dict
    centre: float
    centre_label: str
    blind: set = field(default_factory=set)
    measured: set = field(default_factory=set)
    unmeasured: set = field(default_factory=set)
    note: str = ""


def round_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """About ``count`` round values (1, 2, 2.5 or 5 times a power of ten apart) inside [low, high]."""
    from matplotlib.ticker import MaxNLocator

    if not high > low:
        return [low]
    ticks = MaxNLocator(nbins=count, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    span = high - low
    return [float(round(t, 12)) for t in ticks if low - 1e-9 * span <= t <= high + 1e-9 * span]


def scan_colours(values: np.ndarray, centre: float):
    """The heatmap's colour scale: a linear ``Normalize`` over the predicted range [min, max] and the part of
    RdBu_r that range covers when RdBu_r is centred (white) on ``centre`` and saturates at the prediction
    farthest from it. Colours mean the same distance from the centre on either side; no colour is spent on values
    nothing is predicted at."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, Normalize

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (centre - 1.0, centre + 1.0)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    reach = max(abs(low - centre), abs(high - centre))
    ends = [0.5 + 0.5 * (v - centre) / reach for v in (low, high)]
    cmap = ListedColormap(colormaps["RdBu_r"](np.linspace(ends[0], ends[1], 256)), name="mimo-scan")
    return Normalize(low, high), cmap


def scan_figure(positions: list[int], letters: str, values: dict, marks: ScanMarks, title: str = "",
                score: str = "score", per_row: int = 80):
    """A position x substitution grid, wrapped into rows of at most ``per_row`` positions (all of one length):
    ``values[(position, letter)]`` coloured by ``scan_colours`` (white at ``marks.centre``), a colour bar with
    round ticks and the centre marked, parent residues dotted, no-signal cells grey, substitutions measured in
    training outlined lightly, positions never mutated there hatched lightly, and a key for all of it."""
    from matplotlib.collections import PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    rows = max(1, math.ceil(len(positions) / per_row))
    per_row = max(1, math.ceil(len(positions) / rows))
    blocks = [positions[i:i + per_row] for i in range(0, len(positions), per_row)] or [[]]
    shown = np.array([v for k, v in values.items() if k not in marks.blind and marks.parent.get(k[0]) != k[1]],
                     dtype=float)
    if not np.isfinite(shown).any():  # every cell blind: the range of what there is
        shown = np.array(list(values.values()), dtype=float)
    norm, cmap = scan_colours(shown, marks.centre)
    cell = 0.125  # inches
    width = max(7.5, cell * per_row + 2.2)
    fig = _figure(width, 1.3 + len(blocks) * (cell * len(letters) + 0.55))
    axes = fig.subplots(len(blocks), 1, squeeze=False)[:, 0]
    outline, hatch = (0.0, 0.0, 0.0, 0.35), (0.0, 0.0, 0.0, 0.3)
    for ax, block in zip(axes, blocks):
        first = block[0] if block else 1
        image = np.ones((len(letters), per_row, 4))
        boxes, stripes, dots = [], [], []
        for k, position in enumerate(block):
            for j, letter in enumerate(letters):
                key = (position, letter)
                if marks.parent.get(position) == letter:
                    dots.append((position, j))
                elif key in marks.blind or not np.isfinite(values.get(key, np.nan)):
                    image[j, k] = (0.8, 0.8, 0.8, 1.0) if key in values else (1.0, 1.0, 1.0, 1.0)
                else:
                    image[j, k] = cmap(norm(values[key]))
                if key in marks.measured:
                    boxes.append(Rectangle((position - 0.5, j - 0.5), 1, 1))
            if position in marks.unmeasured:
                stripes.append(Rectangle((position - 0.5, -0.5), 1, len(letters)))
        ax.imshow(image, extent=(first - 0.5, first + per_row - 0.5, len(letters) - 0.5, -0.5),
                  interpolation="nearest", aspect="equal")
        ax.add_collection(PatchCollection(boxes, facecolor="none", edgecolor=outline, lw=0.5, rasterized=True))
        ax.add_collection(PatchCollection(stripes, facecolor="none", edgecolor=hatch, lw=0, hatch="////",
                                          rasterized=True))
        if dots:
            ax.plot([p for p, _ in dots], [j for _, j in dots], "o", color="black", ms=2.2, rasterized=True)
        ax.set_yticks(range(len(letters)), list(letters), fontsize=5.5)
        ticks = [p for p in block if p % 10 == 0] or block[:1]
        ax.set_xticks(ticks, [str(p) for p in ticks], fontsize=FONT - 2)
        ax.set_xlim(first - 0.5, first + per_row - 0.5)
        ax.set_ylabel("substitution", fontsize=FONT - 1)
        ax.tick_params(length=2, pad=1)
        for spine in ax.spines.values():
            spine.set_linewidth(0.5)
    axes[-1].set_xlabel("position", fontsize=FONT)
    from matplotlib.cm import ScalarMappable

    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=list(axes), shrink=min(1.0, 3.0 / len(blocks) ** 0.5),
                       aspect=25, pad=0.01)
    bar.set_ticks(round_ticks(norm.vmin, norm.vmax))
    bar.ax.tick_params(labelsize=FONT - 2)
    bar.set_label(f"predicted {score}", fontsize=FONT - 1)
    if norm.vmin <= marks.centre <= norm.vmax:
        bar.ax.axhline(marks.centre, color="black", lw=0.8)
    key = [Line2D([], [], ls="", marker="o", color="black", ms=3, label="parent residue"),
           Patch(facecolor="white", edgecolor=outline, lw=0.6, label="substitution in a training row"),
           Patch(facecolor="white", edgecolor=hatch, hatch="////", lw=0, label="position never mutated in training"),
           Patch(facecolor=(0.8, 0.8, 0.8), label="no signal from the features")]
    fig.legend(handles=key, loc="outside lower left", ncols=4, fontsize=FONT - 1, frameon=False,
               handlelength=1.2, columnspacing=1.2)
    subtitle = f"white: {marks.centre_label}; red above, blue below{marks.note}"
    fig.suptitle(wrap(title, width) + "\n" + wrap(subtitle, width, FONT - 1, 2), fontsize=FONT + 1, x=0.01, ha="left")
    return fig


def measured_wild_type(predictions: pd.DataFrame) -> tuple[float, int] | None:
    """The mean score of the rows with no mutation (the parent measured), and how many; None without such rows."""
    rows = predictions.loc[predictions["n_mutations"] == 0, "y"].astype(float)
    rows = rows[np.isfinite(rows)]
    return (float(rows.mean()), len(rows)) if len(rows) else None


def scan_centre(predictions: pd.DataFrame, predicted_parent: Callable[[], float]) -> tuple[float, str]:
    """Where a scan's colours are centred, and what that is: the measured wild type when the data has one (red
    and blue then mean above and below it), else the run's prediction for the parent."""
    measured = measured_wild_type(predictions)
    if measured is not None:
        value, n = measured
        return value, f"measured wild type {value:.3g}" + (f" (mean of {n} rows)" if n > 1 else "")
    value = predicted_parent()
    return value, f"predicted parent {value:.3g} (no wild-type measurement)"


def scan_marks(run, predictions: pd.DataFrame, table: pd.DataFrame, predicted_parent: Callable[[], float]) -> ScanMarks:
    """The heatmap's marks for a run's scan ``table``: parent residues, no-signal cells, and (where the run's
    training rows can be read) substitutions measured in training and positions never mutated there."""
    first = mutation_format_from(run.source["dataset"]).first_index
    centre, label = scan_centre(predictions, predicted_parent)
    marks = ScanMarks({i + first: a for i, a in enumerate(run.parent)}, centre, label,
                      blind={(int(p), a) for p, a, b in zip(table["position"], table["new_residue"], table["no_signal"])
                             if b})
    support = run.support
    if support.readable:
        marks.measured = {(p + first, a) for p, a in support.substitutions}
        marks.unmeasured = set(range(first, len(run.parent) + first)) - {p + first for p in support.sites}
    else:
        marks.note = "; the training rows' substitutions cannot be read, so none is outlined or hatched"
    return marks


def scan_table_figure(run, table: pd.DataFrame, predicted_parent: Callable[[], float]):
    """A run's saturation scan (``mimo.design.saturation_scan``) as ``scan_figure``."""
    from mimo.pipeline.io.variants import AMINO_ACIDS

    predictions = pd.read_csv(Path(run.directory) / "predictions.csv", usecols=["n_mutations", "y"])
    marks = scan_marks(run, predictions, table, predicted_parent)
    values = {(int(p), a): float(v) for p, a, v in zip(table["position"], table["new_residue"], table["prediction"])}
    title = f"saturation scan: {_run_name(run.metrics)}, {len(table):,} single substitutions"
    return scan_figure(sorted(marks.parent), AMINO_ACIDS, values, marks, title, score_label(run.source))


def plot_scan_table(run, table: pd.DataFrame, path: str | Path, predicted_parent: Callable[[], float]) -> Path:
    """``scan_table_figure`` written at ``path``; an SVG written into the run directory also as PNG beside it
    (``save_both``: what the run's HTML page embeds)."""
    fig = scan_table_figure(run, table, predicted_parent)
    path = Path(path)
    if path.suffix.lower() == ".svg" and path.resolve().parent == Path(run.directory).resolve():
        return save_both(fig, path)[0]
    return save_figure(fig, path)
