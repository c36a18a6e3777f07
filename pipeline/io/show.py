"""`mimo data show`: the split table and the avGFP report's Figure 1."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.io.splits import SPLIT_NAMES, is_fold_scheme
from mimo.pipeline.io.variantset import VariantSet


def parts_of(assignment) -> list[str]:
    """train/valid/test, or a fold scheme's folds (``fold 0``...)."""
    if is_fold_scheme(assignment):
        return sorted({str(a) for a in assignment} - {"none", ""}, key=int)
    return list(SPLIT_NAMES)


def split_summary(dataset: VariantSet, split: str) -> dict:
    """Counts by part x mutation count, and label mean/min/max per part (parts: train/valid/test, or folds)."""
    assignment = dataset.splits[split]
    frame = dataset.frame
    out: dict = {"dataset": dataset.name, "split": split, "parts": {}}
    for part in parts_of(assignment):
        m = assignment == part
        labels = frame["label"].to_numpy()[m]
        counts = frame["n_mutations"][m].value_counts().sort_index()
        finite = labels[np.isfinite(labels)]
        out["parts"][part] = {
            "n": int(m.sum()),
            "by_mutations": {str(int(k)): int(v) for k, v in counts.items()},
            "label_mean": float(finite.mean()) if len(finite) else None,
            "label_min": float(finite.min()) if len(finite) else None,
            "label_max": float(finite.max()) if len(finite) else None,
        }
    return out


def summary_table(summary: dict) -> pd.DataFrame:
    """Rows: split parts; columns: count per mutation count, total, label mean/min/max."""
    counts = sorted({int(k) for p in summary["parts"].values() for k in p["by_mutations"]})
    rows = []
    for part, info in summary["parts"].items():
        row = {"split": part}
        row.update({str(k): info["by_mutations"].get(str(k), 0) for k in counts})
        row.update({"total": info["n"], "label_mean": info["label_mean"], "label_min": info["label_min"],
                    "label_max": info["label_max"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


def score_name(dataset: VariantSet) -> str:
    """What the score is called: the column it was read from, else GFP's brightness, else ``label``."""
    return score_name_of(dataset.name, dataset.columns)


def score_name_of(name: str, columns: dict) -> str:
    """``score_name`` from a dataset's name and the columns it was read from (as a run's dataset record holds)."""
    if columns.get("score"):
        return columns["score"]
    return "brightness (log fluorescence)" if name.split("-")[0] == "gfp" else "label"


def _part_name(part: str) -> str:
    return f"fold {part}" if part.isdigit() else part


def plt_colors(n: int) -> list:
    """``n`` ordered colours (viridis), for mutation counts."""
    from matplotlib import colormaps

    return [colormaps["viridis"](0.88 * i / max(n - 1, 1)) for i in range(n)]


MOST_COUNTS = 8  # counts from this on are one group ("8+ mut."), as in a run's predicted-vs-measured picture


def _counts_panel(ax, frame: pd.DataFrame, assignment, parts: list[str]) -> None:
    """Rows per part, stacked by mutation count (one bar per part when every row has the same count)."""
    grouped = np.minimum(frame["n_mutations"].to_numpy(), MOST_COUNTS)
    counts = sorted(int(c) for c in np.unique(grouped))
    bottom = np.zeros(len(parts))
    colors = plt_colors(len(counts)) if len(counts) > 1 else ["tab:green"]
    for count, color in zip(counts, colors):
        heights = np.array([int(((assignment == p) & (grouped == count)).sum()) for p in parts])
        what = "wild type" if count == 0 else f"{count}{'+' if count == MOST_COUNTS else ''} mut."
        ax.bar(range(len(parts)), heights, bottom=bottom, color=color, label=what)
        bottom += heights
    for x, total in enumerate(bottom):
        ax.annotate(f"{int(total):,}", (x, total), ha="center", va="bottom", fontsize=8)
    only = "" if len(counts) > 1 else (" (all single substitutions)" if counts == [1] else f" (all {counts[0]} mut.)")
    ax.set_title(f"rows in each part{only}")
    ax.set_ylabel("rows")
    ax.set_ylim(0, max(bottom.max(), 1) * 1.12)
    if len(counts) > 1:  # the legend top-down as the bars stack
        handles, names = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], names[::-1], title="mutations", fontsize=7, title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))


def _score_panel(ax, labels: np.ndarray, assignment, parts: list[str], name: str) -> None:
    """The score's distribution per part: a violin (median marked) where a part has two values or more."""
    for x, part in enumerate(parts):
        values = labels[(assignment == part) & np.isfinite(labels)]
        if len(np.unique(values)) > 1:
            body = ax.violinplot(values, [x], widths=0.8, showmedians=True)
            for piece in body["bodies"]:
                piece.set_facecolor("tab:blue")
            for lines in ("cmins", "cmaxes", "cbars", "cmedians"):
                body[lines].set_color("#1f3f66")
        elif len(values):
            ax.plot([x] * len(values), values, "o", color="tab:blue")
    ax.set_title("distribution in each part (line: median)")
    ax.set_ylabel(name)


def splits_figure(dataset: VariantSet, split: str):
    """Rows per part of ``split`` (by mutation count) beside the score's distribution per part."""
    from matplotlib.figure import Figure

    assignment = np.asarray(dataset.splits[split]).astype(str)
    parts = parts_of(dataset.splits[split])
    fig = Figure(figsize=(max(10.0, 3.0 + 2.6 * len(parts)), 4.6))
    left, right = fig.subplots(1, 2)
    _counts_panel(left, dataset.frame, assignment, parts)
    name = score_name(dataset)
    _score_panel(right, dataset.frame["label"].to_numpy(np.float64), assignment, parts, name)
    for ax in (left, right):
        ax.set_xticks(range(len(parts)), [_part_name(p) for p in parts])
        ax.set_xlim(-0.6, len(parts) - 0.4)
    fig.suptitle(f"{dataset.name}: {split} split, {len(dataset):,} rows; score: {name}")
    fig.tight_layout()
    return fig


def plot_splits(dataset: VariantSet, split: str, path: str | Path) -> Path:
    """``splits_figure`` as a PNG at ``path`` (the avGFP report's Figures 1 and 2)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    splits_figure(dataset, split).savefig(path, dpi=110)
    return path
