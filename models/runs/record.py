"""The record of a fitted run, in one place: ``fit_run`` (a train/valid/test split) and ``fit_cv`` (folds) both
build a ``RunRecord``, and every ``metrics.json`` has its shape.

Shape (format 2), whatever the evaluation:

- ``format``, ``model``, ``features``, ``dataset``, ``split`` (the split's or fold scheme's name), ``split_hash``;
- ``evaluation``: ``kind`` (``"split"`` or ``"cv"``), ``held_out`` (the ``split`` label of the held-out rows in
  ``predictions.csv``: ``"test"``, or ``"oof"`` for out-of-fold rows), ``training`` (the labels of the rows the
  saved model was fitted on), ``folds``, ``refit``, ``inner_validation`` (None for a split);
- ``train``, ``valid``: the saved model on the rows it was fitted on and on the rows its choices (alpha, epochs)
  were made on (for cross-validation: the model refitted on every fold, and the model that chose, on the first
  fold);
- ``test``: the held-out figure (a split's test rows, or every out-of-fold row pooled, as ProteinGym scores
  it), with ``by_mutations``; ``per_fold`` (empty for a split) and ``mean_fold_spearman``;
- ``fit_seconds``, ``params``, ``label_range``, ``split_unused_rows`` (rows in no part or no fold), ``support``,
  ``threads``, ``warnings`` (lines the command prints, kept for the report), and what the head adds to describe
  the saved model (``uncertainty``, ``members``, ``history``, ``alpha``, ``auto``, ...).

Runs of format 1 (before this record) are read and brought to this shape in memory (their out-of-fold rows
were labelled ``test``); a later format is refused in one line naming it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mimo.pipeline.errors import DataError

FORMAT = 2
KINDS = {"split": "test", "cv": "oof"}  # evaluation kind -> label of its held-out rows in predictions.csv


@dataclass
class RunRecord:
    """What ``metrics.json`` holds (see the module's shape); ``extra``: the head's own entries."""

    model: str
    features: str
    dataset: str
    split: str
    split_hash: str | None
    kind: str
    train: dict
    valid: dict
    test: dict
    fit_seconds: float
    params: dict
    label_range: list | None
    support: dict
    folds: int | None = None
    refit: bool | None = None
    per_fold: list = field(default_factory=list)
    unused_rows: int = 0
    threads: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")

    @property
    def held_out(self) -> str:
        return KINDS[self.kind]

    def metrics(self) -> dict:
        """The ``metrics.json`` dict."""
        spearmans = [f["spearman"] for f in self.per_fold if f.get("spearman") is not None]
        return {"format": FORMAT, "model": self.model, "features": self.features, "dataset": self.dataset,
                "split": self.split, "split_hash": self.split_hash,
                "evaluation": evaluation(self.kind, self.folds, self.refit),
                "train": self.train, "valid": self.valid, "test": self.test, "per_fold": self.per_fold,
                "mean_fold_spearman": sum(spearmans) / len(spearmans) if spearmans else None,
                "fit_seconds": round(float(self.fit_seconds), 3), "params": self.params,
                "label_range": self.label_range, "split_unused_rows": int(self.unused_rows),
                "support": self.support, "threads": self.threads, "warnings": list(self.warnings),
                **self.extra}


def support_counts(held_out) -> dict:
    """How many held-out rows (a predictions table's) carry substitutions or sites never in training, and get no
    signal from the features (``mimo.models.runs.support``)."""
    return {"test_rows_with_unseen_substitutions": int((held_out["unseen"].fillna(0) > 0).sum()),
            "test_rows_with_unseen_sites": int((held_out["unseen_sites"].fillna(0) > 0).sum()),
            "test_rows_without_signal": int(held_out["no_signal"].astype(bool).sum())}


def evaluation(kind: str, folds: int | None = None, refit: bool | None = None) -> dict:
    return {"kind": kind, "held_out": KINDS[kind], "training": ["train"] if kind == "split" else [KINDS[kind]],
            "folds": folds, "refit": refit, "inner_validation": "the next fold" if kind == "cv" else None}


def upgrade(metrics: dict, path: str | Path) -> dict:
    """``metrics`` of any readable format in this version's shape (format 1: the evaluation block made from
    whether it had a ``cv`` entry; its out-of-fold rows are labelled ``test``). A later format is refused."""
    version = metrics.get("format", 1)
    if not isinstance(version, int) or version > FORMAT or version < 1:
        raise DataError(f"the run's metrics.json has format {version!r}, which this version of mimo (format "
                        f"{FORMAT}) cannot read; fit the run again or update mimo", path)
    if version == FORMAT:
        return metrics
    cv = metrics.get("cv")
    block = evaluation("cv" if cv else "split", cv.get("folds") if cv else None, cv.get("refit") if cv else None)
    if cv:  # format 1 labelled out-of-fold rows "test"
        block.update(held_out="test", training=["test"])
    return {**metrics, "format": FORMAT, "evaluation": block, "per_fold": metrics.get("per_fold", []),
            "warnings": metrics.get("warnings", [])}
