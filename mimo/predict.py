"""Predictions for new variants with a fitted run, featurizing whatever the run's cache lacks."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.models.runs.fit import Run, load_run
from mimo.models.runs.shift import MAX_ROWS, ShiftReport, StreamCheck, left_to_support, with_counts
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.io.tables import MUTANT_COLUMNS, check_fields, load_fasta, pick_column
from mimo.pipeline.io.variantset import FRAME_COLUMNS
from mimo.pipeline.io.conventions import mutation_format_from
from mimo.pipeline.errors import DataError, input_file, option, read_text
from mimo.pipeline.featurizers import featurizer_from_manifest
from mimo.pipeline.io.variants import (MutationFormat, apply_mutations, expressed_sequence, mutation_string,
                               parse_mutations, sequence_id)

CHUNK = 20000  # variants featurized and predicted at a time, at most
CHUNK_BYTES = 64 << 20  # ... and fewer where their features would take more than this (float32)


def read_variant_texts(path: str | Path, mutant_col: str | None = None,
                       given_by: str = option("variants")) -> tuple[list[str], list[int]]:
    """The mutation strings of a file and their line numbers: one a line, or a CSV/TSV (read by a CSV parser:
    quoted fields may hold commas) with a mutant column (``mutant_col``, else one of the usual names: mutant,
    mutations, variant, ...)."""
    path = Path(path)
    text = read_text(path, given_by)
    lines = text.splitlines()
    header = lines[0] if lines else ""
    sep = "\t" if "\t" in header else ","
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    columns = [c.strip() for c in next(reader, [])]
    column = pick_column(columns, mutant_col, MUTANT_COLUMNS, "mutant", path, option("mutant_col"))
    if column is not None:
        check_fields(text, sep, path)  # an unquoted K2A,T3G,1.0 row would keep only K2A
        index = columns.index(column)
        entries = [(reader.line_num, cells[index] if len(cells) > index else "")
                   for cells in reader if any(cell.strip() for cell in cells)]
    else:
        if len(columns) > 1 and any(not any(ch.isdigit() for ch in c) for c in columns):
            # a header (a mutation token always holds a position), but no column of mutation strings among it
            raise DataError(f"no column of mutation strings among {columns[:8]}; name it with "
                            f"{option('mutant_col')}", path, 1)
        entries = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not entries:
        raise DataError("no variants in file", path)
    return [text for _, text in entries], [number for number, _ in entries]


def read_variants(path: str | Path, parent: str, fmt: MutationFormat, mutant_col: str | None = None,
                  given_by: str = option("variants")) -> pd.DataFrame:
    """``read_variant_texts`` as a dataset frame (``variants_frame``)."""
    texts, lines = read_variant_texts(path, mutant_col, given_by)
    return variants_frame(texts, parent, fmt, path, lines)


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
        try:
            for rows_in_missing, embeddings in featurizer.embed(frame.iloc[missing].reset_index(drop=True)):
                X[missing[rows_in_missing]] = embeddings
        except DataError as exc:
            if getattr(featurizer, "kind", None) != "scores":
                raise
            raise DataError(f"{exc.message.split('; ')[0]}: a run on external scores predicts only variants its "
                            f"scores file covers; give {option('scores')} a file with scores for them",
                            exc.path) from None
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


class PredictionStream:
    """Predictions for a file of variants (mutation strings against the run's parent) or a FASTA file, one
    table per ``chunk`` of variants (default ``chunk_rows``) as it is iterated: featurized (whatever the run's cache lacks), predicted
    and checked against the training rows a chunk at a time: the features of one chunk at most are held, so
    memory grows only by the mutation strings themselves (about 100 bytes a variant, against a feature row's
    19 KB for GFP's one-hot features; bench/predict_memory.py).
    Columns: id, mutations, n_mutations, prediction (with an uncertainty: sd, lower, upper, member_spread), unseen,
    unseen_sites, no_signal, unlike_training, shift_p, in_cache.

    The input is read and every mutation string checked when the stream is made (bad input fails before any
    output). Once iterated: ``warnings`` (the lines to show: rows never measured, predictions above the best
    label, rows unlike the training rows) and ``shift`` (``shift_summary``); the check of rows unlike the
    training rows is fitted on the first chunk (``mimo.models.runs.shift.StreamCheck``)."""

    def __init__(self, run: Run | str | Path, variants: str | Path | None = None, fasta: str | Path | None = None,
                 device: str = "auto", mutant_col: str | None = None, scores: str | Path | None = None,
                 chunk: int | None = None):
        self.run = run if isinstance(run, Run) else load_run(run)
        self.device, self.chunk = device, int(chunk_rows(self.run.source) if chunk is None else chunk)
        if self.chunk < 1:
            raise DataError(f"chunk must be >= 1, not {chunk}")
        info = self.run.source["dataset"]
        self.fmt = mutation_format_from(info)
        if (variants is None) == (fasta is None):
            raise DataError(f"give exactly one of {option('variants')} FILE or {option('fasta')} FILE")
        self.texts = self.lines = self.fasta = None
        if variants is not None:
            if not self.run.parent:
                raise DataError(f"the run's dataset has no parent sequence; use {option('fasta')} with full "
                                f"sequences")
            self.path = Path(variants)
            self.texts, self.lines = read_variant_texts(variants, mutant_col)
            for text, line in zip(self.texts, self.lines):  # every string checked before any output
                parse_mutations(text, self.run.parent, self.fmt, self.path, line)
            self.n = len(self.texts)
        else:
            self.fasta = load_fasta(input_file(fasta, option("fasta")), self.run.parent).frame
            self.n = len(self.fasta)
        self.featurizers = {} if scores is None else scores_featurizers(self.run.source, scores)
        self.check: StreamCheck | str | None = None
        self.counts = {"rows": 0, "in_cache": 0, "unseen": 0, "unseen_singles": 0, "no_signal": 0, "above": 0}
        self.top: float | None = None  # the best training label (read once the model is loaded)
        self._singles_only: bool | None = None  # whether the run trained on singles only (read when needed)

    def _frames(self):
        for start in range(0, self.n, self.chunk):
            if self.texts is not None:
                end = min(start + self.chunk, self.n)
                frame = variants_frame(self.texts[start:end], self.run.parent, self.fmt, self.path,
                                       self.lines[start:end])
                yield frame, frame["mutations"].tolist()
            else:
                frame = self.fasta.iloc[start:start + self.chunk].reset_index(drop=True)
                parent = self.run.parent
                yield frame, [mutation_string(a, parent, self.fmt) if parent and len(a) == len(parent) else ""
                              for a in frame["aligned"]]

    def __iter__(self):
        for frame, substitutions in self._frames():
            X, in_cache = featurize(frame, self.run.source, self.device, featurizers=self.featurizers)
            predicted = self.run.predict(X, substitutions, frame["n_mutations"].tolist())
            self.top = self.run.support.label_range[1] if self.top is None else self.top
            if self.check is None:  # against the training rows, once: fitted on this first chunk
                train_X, reason = training_features(self.run, self.device, self.featurizers)
                self.check = reason if train_X is None else StreamCheck(train_X)
            if isinstance(self.check, StreamCheck):
                columns = self.check(with_counts(X, frame["n_mutations"]), left_to_support(predicted))
            else:
                columns = ShiftReport(None, None, None, len(frame), self.check).columns()
            out = pd.concat([frame[["id", "mutations", "n_mutations"]].reset_index(drop=True), predicted], axis=1)
            out = out.assign(**columns, in_cache=in_cache)
            self.counts["rows"] += len(out)
            self.counts["in_cache"] += int(in_cache.sum())
            unseen = out["unseen"].fillna(0).to_numpy() > 0
            self.counts["unseen"] += int(unseen.sum())
            self.counts["unseen_singles"] += int((unseen & (out["n_mutations"].to_numpy() == 1)).sum())
            self.counts["no_signal"] += int(out["no_signal"].sum())
            self.counts["above"] += int((out["prediction"] > self.top).sum())
            yield out

    def training_singles_only(self) -> bool:
        """Whether every training row of the run is a single (then every new single carries a substitution never
        measured, and saying so teaches users to skip warnings)."""
        if self._singles_only is None:
            try:
                counts = self.run.training_rows(["n_mutations"])["n_mutations"]
                self._singles_only = bool(len(counts)) and bool((counts.fillna(-1) == 1).all())
            except (DataError, KeyError, ValueError, OSError):
                self._singles_only = False
        return self._singles_only

    @property
    def shift(self) -> dict:
        if isinstance(self.check, StreamCheck):
            return shift_summary(self.check.report())
        return shift_summary(ShiftReport(None, None, None, self.counts["rows"], self.check))

    @property
    def warnings(self) -> list[str]:
        """What the predictions so far call for, one line each (``warning: ...`` or ``note: ...``)."""
        lines, n = [], self.counts["rows"]
        unseen, blind = self.counts["unseen"], self.counts["no_signal"]
        if unseen and self.training_singles_only():  # a new single then always carries one: not worth a line
            unseen -= self.counts["unseen_singles"]
        blind_detail = ("no_signal: those substitutions add nothing to the prediction, so a single one is predicted "
                        "at the training labels' mean; its interval spans the training labels")
        if unseen:
            detail = (f"; {blind} of them get no signal from the run's features ({blind_detail})" if blind else
                      "; their predictions extrapolate from the features")
            lines.append(f"warning: {unseen} of {n} variants carry substitutions never measured in training "
                         f"(column unseen){detail}")
        elif blind:
            lines.append(f"warning: {blind} of {n} variants get no signal from the run's features: they carry "
                         f"substitutions or positions never measured in training ({blind_detail})")
        if self.counts["above"]:
            lines.append(f"note: {self.counts['above']} of {n} variants are predicted above the best training label "
                         f"({self.top:.3f}): a guess to test, not evidence that they are better than every measured "
                         f"variant")
        shift = self.shift
        if shift.get("warning"):
            lines.append(f"warning: {shift['warning']}")
        elif shift.get("not_checked"):
            lines.append(f"note: not checked whether these variants are drawn like the training rows: "
                         f"{shift['not_checked']} (column unlike_training left empty)")
        elif left_empty_note(shift):
            lines.append(left_empty_note(shift))
        return lines


def chunk_rows(source: dict) -> int:
    """Variants per chunk: ``CHUNK``, or fewer where their features would take more than ``CHUNK_BYTES`` (one-hot
    features of a 238-residue parent: 4,760 columns, 3,524 rows)."""
    manifest = source["features"]
    dim = sum(int(part["dim"]) for part in manifest.get("parts", [manifest]))
    return min(CHUNK, max(256, CHUNK_BYTES // (4 * max(dim, 1))))


def predict_variants(run: Run | str | Path, variants: str | Path | None = None, fasta: str | Path | None = None,
                     device: str = "auto", mutant_col: str | None = None,
                     scores: str | Path | None = None) -> pd.DataFrame:
    """``PredictionStream`` gathered into one table; its warning lines in ``table.attrs["warnings"]`` and the
    check against the training rows in ``table.attrs["shift"]``."""
    stream = PredictionStream(run, variants, fasta, device, mutant_col, scores)
    table = pd.concat(list(stream), ignore_index=True)
    table.attrs["warnings"], table.attrs["shift"] = stream.warnings, stream.shift
    return table


def training_features(run: Run, device: str = "auto", featurizers: dict | None = None, max_rows: int = MAX_ROWS,
                      seed: int = 0) -> tuple[np.ndarray | None, str | None]:
    """Features of (at most ``max_rows``, drawn with ``seed``) training rows of ``run``: from its cache, else
    computed from their mutation strings, with their mutation counts (``with_counts``). (None, why) when
    neither can be had."""
    table = run.training_rows(["id", "mutations", "n_mutations"])
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


def left_empty_note(shift: dict, what: str = "variants") -> str | None:
    """Why ``unlike_training`` is empty on some rows of a checked table (a ``shift_summary``): rows the run's
    features give no signal for or at positions never mutated in training are not compared (None when every row
    was, or when the whole check was not made or warned: those lines already say it)."""
    left = shift["rows"] - shift["checked"]
    if shift.get("warning") or shift.get("not_checked") or shift.get("flagged") is None or left <= 0:
        return None
    return (f"note: unlike_training is left empty for {left} of {shift['rows']} {what}: at positions never mutated "
            f"in training or without signal from the run's features (columns unseen_sites, no_signal), where the "
            f"check has no training rows to compare them with")


def shift_summary(report: ShiftReport, what: str = "variants") -> dict:
    """What the check says about a whole table: rows flagged, AUC, the warning line (None: no warning), or
    why no check was made."""
    return {"flagged": report.flagged if report.unlike is not None else None, "rows": report.n,
            "checked": report.n_checked, "auc": report.auc, "warning": report.warning(what),
            "not_checked": report.reason}
