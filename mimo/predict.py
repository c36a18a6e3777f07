"""Predictions for new variants with a fitted run, featurizing whatever the run's cache lacks."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.models.runs.fit import Run, load_run
from mimo.models.runs.shift import MAX_ROWS, ShiftReport, check_rows, left_to_support, with_counts
from mimo.pipeline.runtime import threads
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.tables import MUTANT_COLUMNS, load_fasta, pick_column
from mimo.pipeline.io.variantset import FRAME_COLUMNS
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.pipeline.errors import DataError, input_file, option, read_text
from mimo.pipeline.featurizers import featurizer_from_manifest
from mimo.pipeline.io.variants import (MutationFormat, apply_mutations, expressed_sequence, mutation_string,
                               parse_mutations, sequence_id)


def read_variants(path: str | Path, parent: str, fmt: MutationFormat, mutant_col: str | None = None,
                  given_by: str = option("variants")) -> pd.DataFrame:
    """Mutation strings, one a line, or a CSV/TSV (read by a CSV parser: quoted fields may hold commas) with a
    mutant column (``mutant_col``, else one of the usual names: mutant, mutations, variant, ...)."""
    path = Path(path)
    text = read_text(path, given_by)
    lines = text.splitlines()
    header = lines[0] if lines else ""
    reader = csv.reader(io.StringIO(text), delimiter="\t" if "\t" in header else ",")
    columns = [c.strip() for c in next(reader, [])]
    column = pick_column(columns, mutant_col, MUTANT_COLUMNS, "mutant", path, option("mutant_col"))
    if column is not None:
        index = columns.index(column)
        entries = [(reader.line_num, cells[index] if len(cells) > index else "")
                   for cells in reader if any(cell.strip() for cell in cells)]
    else:
        entries = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not entries:
        raise DataError("no variants in file", path)
    return variants_frame([text for _, text in entries], parent, fmt, path, [number for number, _ in entries])


def variants_frame(texts, parent: str, fmt: MutationFormat, path: str | Path | None = None,
                   lines: list[int] | None = None) -> pd.DataFrame:
    """A dataset frame (unlabelled) of mutation strings against ``parent``; errors name ``path`` and the line."""
    rows: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    for k, text in enumerate(texts):
        mutations = parse_mutations(text, parent, fmt, path, None if lines is None else lines[k])
        aligned = apply_mutations(parent, mutations)
        sequence = expressed_sequence(aligned)
        for key, value in zip(FRAME_COLUMNS, (sequence_id(sequence), text.strip(), len(mutations), aligned,
                                              sequence, np.nan)):
            rows[key].append(value)
    return pd.DataFrame(rows)


def check_same_features(recorded: dict, current: dict, path: Path) -> None:
    """The cache still holds the rows the run was fitted on: same data, same weights (else its rows and the
    model would come from two datasets or two models)."""
    for key, what in (("dataset_checksum", "the dataset"), ("weights_fingerprint", "the weights")):
        if recorded.get(key) and current.get(key) and recorded[key] != current[key]:
            raise DataError(f"the cache was rebuilt with other {what.split()[-1]} since the run was fitted ({key} "
                            f"{recorded[key][:12]} then, {current[key][:12]} now): its rows cannot be mixed with "
                            f"the run's model; refit the run on this cache, or predict from the cache it was fitted "
                            f"on", path)


def check_same_weights(recorded: dict, featurizer) -> None:
    """The weights file the run's features came from is unchanged (checked before any featurizing)."""
    then, now = recorded.get("weights_fingerprint"), getattr(featurizer, "fingerprint", None)
    if then and now != then:
        where = recorded.get("weights") or recorded.get("model")
        raise DataError(f"the weights changed since the run was fitted (fingerprint {then[:12]} then, "
                        f"{(now or 'unreadable')[:12]} now): new variants would be embedded by another model than "
                        f"the run's; restore the file or refit the run", where)


def featurize(frame: pd.DataFrame, source: dict, device: str = "auto", use_cache: bool = True,
              featurizers: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features for ``frame``: from the run's cache where present (``use_cache``), else computed. Returns (X,
    in_cache). ``featurizers``: a dict that keeps the rebuilt featurizers between calls (chunked scoring)."""
    manifest = source["features"]
    if "parts" in manifest:  # joined features (onehot+unirep256): each part from its own cache or featurizer
        parts = [featurize(frame, {**source, "features": part}, device, use_cache, featurizers)
                 for part in manifest["parts"]]
        return np.hstack([X for X, _ in parts]), np.all([cached for _, cached in parts], axis=0)
    X = np.zeros((len(frame), manifest["dim"]), dtype=np.float32)
    in_cache = np.zeros(len(frame), dtype=bool)
    cache = EmbeddingCache(source["cache"], source["dataset"]["name"], manifest["features"])
    current = cache.read_manifest() if use_cache else None
    if current is not None:
        check_same_features(manifest, current, cache.manifest_path)
        in_cache, X = cache.lookup(frame["id"].tolist())  # just these rows, shard by shard
    missing = np.flatnonzero(~in_cache)
    if len(missing):
        featurizer = None if featurizers is None else featurizers.get(manifest["features"])
        if featurizer is None:
            featurizer = featurizer_from_manifest(manifest, source["dataset"].get("parent"), device)
            check_same_weights(manifest, featurizer)
            if featurizers is not None:
                featurizers[manifest["features"]] = featurizer
        threads.adapt()
        for rows_in_missing, embeddings in featurizer.embed(frame.iloc[missing].reset_index(drop=True)):
            X[missing[rows_in_missing]] = embeddings
            threads.adapt()
    return X, in_cache


def scores_featurizers(source: dict, scores: str | Path) -> dict:
    """The run's ``scores:`` parts read from ``scores`` (a file with the same score columns for new variants)."""
    from mimo.pipeline.featurizers.scores import ScoresFeaturizer

    manifest = source["features"]
    parts = [p for p in manifest.get("parts", [manifest]) if p.get("kind") == "scores"]
    if not parts:
        raise DataError(f"{option('scores')}: the run reads no external scores ({manifest['features']}); leave it out",
                        scores)
    path = input_file(scores, option("scores"))
    return {p["features"]: ScoresFeaturizer.from_manifest(p, source["dataset"].get("parent"), path=path)
            for p in parts}


def predict_variants(run: Run | str | Path, variants: str | Path | None = None, fasta: str | Path | None = None,
                     device: str = "auto", mutant_col: str | None = None,
                     scores: str | Path | None = None) -> pd.DataFrame:
    """Predictions for a file of variants (mutation strings against the run's parent) or a FASTA file:
    id, mutations, n_mutations, prediction (with several members: std, lower, upper), in_cache."""
    run = run if isinstance(run, Run) else load_run(run)
    threads.adapt()
    info = run.source["dataset"]
    if (variants is None) == (fasta is None):
        raise DataError("give exactly one of --variants FILE or --fasta FILE")
    if variants is not None:
        if not run.parent:
            raise DataError("the run's dataset has no parent sequence; use --fasta with full sequences")
        frame = read_variants(variants, run.parent, mutation_format_from(info), mutant_col)
        substitutions = frame["mutations"]
    else:
        frame = load_fasta(input_file(fasta, "--fasta"), run.parent).frame
        fmt = mutation_format_from(info)
        substitutions = [mutation_string(a, run.parent, fmt) if run.parent and len(a) == len(run.parent) else ""
                         for a in frame["aligned"]]
    prepared = None if scores is None else scores_featurizers(run.source, scores)
    X, in_cache = featurize(frame, run.source, device, featurizers=prepared)
    predicted = run.predict(X, list(substitutions), frame["n_mutations"].tolist())
    out = pd.concat([frame[["id", "mutations", "n_mutations"]].reset_index(drop=True), predicted], axis=1)
    out["in_cache"] = in_cache
    return mark_shift(out, run, X, device, prepared)


def training_features(run: Run, device: str = "auto", featurizers: dict | None = None, max_rows: int = MAX_ROWS,
                      seed: int = 0) -> tuple[np.ndarray | None, str | None]:
    """Features of (at most ``max_rows``, drawn with ``seed``) training rows of ``run``: from its cache, else
    computed from their mutation strings, with their mutation counts (``with_counts``). (None, why) when
    neither can be had."""
    table = pd.read_csv(run.directory / "predictions.csv", dtype={"id": str, "mutations": str},
                        keep_default_na=False)
    table = table[table["split"].isin(["train", "test"] if "cv" in run.metrics else ["train"])]
    if len(table) > max_rows:
        table = table.iloc[np.sort(np.random.default_rng(seed).choice(len(table), max_rows, replace=False))]
    if run.parent:
        try:
            frame = variants_frame(table["mutations"].tolist(), run.parent, mutation_format_from(run.source["dataset"]))
        except DataError:
            frame = None
    else:
        frame = None
    if frame is None:  # rows the parser cannot rebuild: the cache alone
        frame = pd.DataFrame({c: [None] * len(table) for c in FRAME_COLUMNS})
    frame["id"] = table["id"].to_numpy()
    try:
        X, _ = featurize(frame, run.source, device, use_cache=True, featurizers=featurizers)
    except (DataError, TypeError, AttributeError, ValueError) as exc:
        return None, f"the run's training rows could not be featurized again ({str(exc).splitlines()[0][:120]})"
    return with_counts(X, table["n_mutations"].to_numpy()), None


def mark_shift(table: pd.DataFrame, run: Run, X: np.ndarray, device: str = "auto",
               featurizers: dict | None = None) -> pd.DataFrame:
    """Add ``unlike_training`` and ``shift_p`` (mimo.models.runs.shift) to a predictions table of the rows ``X``
    (rows it marks at unseen sites or without signal are left to those columns); the check's summary goes to
    ``table.attrs["shift"]`` (``shift_summary``)."""
    train_X, reason = training_features(run, device, featurizers)
    report = ShiftReport(None, None, None, len(X), reason) if train_X is None else \
        check_rows(train_X, with_counts(X, table["n_mutations"]), skip=left_to_support(table))
    at = table.columns.get_loc("in_cache") if "in_cache" in table else len(table.columns)
    for k, (name, values) in enumerate(report.columns().items()):
        table.insert(at + k, name, values)  # before in_cache, which stays last
    table.attrs["shift"] = shift_summary(report)
    return table


def shift_summary(report: ShiftReport, what: str = "variants") -> dict:
    """What the check says about a whole table: rows flagged, AUC, the warning line (None: no warning), or
    why no check was made."""
    return {"flagged": report.flagged if report.unlike is not None else None, "rows": report.n,
            "checked": report.n_checked, "auc": report.auc, "warning": report.warning(what),
            "not_checked": report.reason}
