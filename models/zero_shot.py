"""The zero-shot baseline beside every fit: a profile, zero-shot or scores block is a prediction on its own, made
without the assay's labels. A supervised model that does not beat it on the same rows is not worth its
uncertainty (issue 28), so `fit` and `fit --cv` record (``metrics["zero_shot"]``) and print each such column's
Spearman on the held-out rows beside the model's, and warn when the model does not beat it.

The columns: a profile's ``dlogp`` (log p(mutant) - log p(wild type), summed over the substituted sites:
``mimo.pipeline.featurizers.profile``), a zero-shot block's ``score``, and every column of a scores file but
``covered``. Features are cached as computed (a positive rescaling would not change a Spearman either).
"""
from __future__ import annotations

import numpy as np

from mimo.models.data import is_profile, read_blocks
from mimo.models.metrics import spearman

MARGIN = 0.0  # the model "beats" a zero-shot column when its Spearman is above the column's by more than this


def zero_shot_columns(blocks) -> list[tuple[str, str, int]]:
    """(block name, column name, column index in X) of every zero-shot figure among ``blocks`` ((name, kind,
    first, end, column names) as ``SplitData.blocks`` gives them); a block without column names is left out."""
    out = []
    for name, kind, start, _, columns in read_blocks(blocks):
        if columns is None:
            continue
        if is_profile((name, kind)):
            wanted = [c for c in columns if c == "dlogp"]
        elif kind == "zeroshot":
            wanted = [c for c in columns if c == "score"] or list(columns[:1])
        elif kind == "scores":
            wanted = [c for c in columns if c != "covered"]
        else:
            continue
        out += [(name, column, start + list(columns).index(column)) for column in wanted]
    return out


def zero_shot_baselines(X: np.ndarray, y: np.ndarray, prediction: np.ndarray, blocks) -> dict | None:
    """Each zero-shot column's Spearman with ``y`` on these rows (the held-out ones), beside the model's
    ``prediction``'s; None when ``blocks`` hold no such column. ``beaten``: whether the model's Spearman is above
    the column's (by more than ``MARGIN``); a column that is constant on the rows has Spearman None and is
    beaten."""
    columns = zero_shot_columns(blocks)
    if not columns or len(y) == 0:
        return None
    X, y = np.asarray(X), np.asarray(y, np.float64)
    model = spearman(y, np.asarray(prediction, np.float64))
    figures = []
    for block, column, index in columns:
        rho = spearman(y, X[:, index].astype(np.float64))
        beaten = rho is None or (model is not None and model > rho + MARGIN)
        figures.append({"block": block, "column": column, "spearman": rho, "beaten": bool(beaten)})
    return {"rows": int(len(y)), "model_spearman": model, "columns": figures}
