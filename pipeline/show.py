"""`mimo data show`: the split table and the report's Figure 1."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .splits import SPLIT_NAMES, is_fold_scheme
from .variantset import VariantSet


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


def plot_splits(dataset: VariantSet, split: str, path: str | Path) -> Path:
    """Bar plots of mutation count and label per split part (the report's Figures 1 and 2)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    assignment = dataset.splits[split]
    frame = dataset.frame
    labels = frame["label"].to_numpy()
    finite = labels[np.isfinite(labels)]
    bins = np.linspace(finite.min(), finite.max(), 31) if len(finite) else 10
    parts = parts_of(assignment)
    fig = Figure(figsize=(4.3 * len(parts), 6.5))
    axes = fig.subplots(2, len(parts), squeeze=False)
    for col, part in enumerate(parts):
        m = assignment == part
        counts = frame["n_mutations"][m].value_counts().sort_index()
        axes[0, col].bar(counts.index, counts.values, color="tab:green")
        axes[0, col].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0, col].set_title(f"{'fold ' if part.isdigit() else ''}{part} (n={int(m.sum()):,})")
        axes[0, col].set_xlabel("number of mutations")
        axes[0, col].set_ylabel("count")
        axes[1, col].hist(labels[m][np.isfinite(labels[m])], bins=bins, color="tab:blue")
        axes[1, col].set_xlabel("label (log fluorescence)" if dataset.name == "gfp" else "label")
        axes[1, col].set_ylabel("count")
    fig.suptitle(f"{dataset.name}: mutation count and label by split ({split})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
