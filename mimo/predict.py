"""Predictions for new variants with a fitted run, featurizing whatever the run's cache lacks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mimo.models.runs import Run, load_run
from mimo.pipeline import threads
from mimo.pipeline.cache import EmbeddingCache
from mimo.pipeline.tables import load_fasta
from mimo.pipeline.variantset import FRAME_COLUMNS
from mimo.models.support import mutation_format
from mimo.pipeline.errors import DataError, input_file, read_text
from mimo.pipeline.featurizers import featurizer_from_manifest
from mimo.pipeline.variants import (MutationFormat, apply_mutations, expressed_sequence, mutation_string,
                               parse_mutations, sequence_id)


def read_variants(path: str | Path, parent: str, fmt: MutationFormat) -> pd.DataFrame:
    """Mutation strings, one a line, or a CSV/TSV with a ``mutant`` (or ``mutations``/``aaMutations``) column."""
    path = Path(path)
    lines = read_text(path, "--variants").splitlines()
    header = lines[0].strip() if lines else ""
    sep = "\t" if "\t" in header else ","
    columns = [c.strip() for c in header.split(sep)]
    column = next((c for c in ("mutant", "mutations", "aaMutations") if c in columns), None)
    if column is not None:
        index = columns.index(column)
        entries = [(n, line.split(sep)[index] if len(line.split(sep)) > index else "")
                   for n, line in enumerate(lines[1:], start=2) if line.strip()]
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
    if use_cache and cache.read_manifest() is not None:
        in_cache, X = cache.lookup(frame["id"].tolist())  # just these rows, shard by shard
    missing = np.flatnonzero(~in_cache)
    if len(missing):
        featurizer = None if featurizers is None else featurizers.get(manifest["features"])
        if featurizer is None:
            featurizer = featurizer_from_manifest(manifest, source["dataset"].get("parent"), device)
            if featurizers is not None:
                featurizers[manifest["features"]] = featurizer
        threads.adapt()
        for rows_in_missing, embeddings in featurizer.embed(frame.iloc[missing].reset_index(drop=True)):
            X[missing[rows_in_missing]] = embeddings
            threads.adapt()
    return X, in_cache


def predict_variants(run: Run | str | Path, variants: str | Path | None = None, fasta: str | Path | None = None,
                     device: str = "auto") -> pd.DataFrame:
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
        frame = read_variants(variants, run.parent, mutation_format(info))
        substitutions = frame["mutations"]
    else:
        frame = load_fasta(input_file(fasta, "--fasta"), run.parent).frame
        fmt = mutation_format(info)
        substitutions = [mutation_string(a, run.parent, fmt) if run.parent and len(a) == len(run.parent) else ""
                         for a in frame["aligned"]]
    X, in_cache = featurize(frame, run.source, device)
    predicted = run.predict(X, list(substitutions), frame["n_mutations"].tolist())
    out = pd.concat([frame[["id", "mutations", "n_mutations"]].reset_index(drop=True), predicted], axis=1)
    out["in_cache"] = in_cache
    return out
