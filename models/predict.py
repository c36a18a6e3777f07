"""`mimo predict`: score new variants with a fitted run, featurizing whatever the cache lacks."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.cache import EmbeddingCache
from pipeline.datasets import FRAME_COLUMNS, load_fasta
from pipeline.errors import DataError
from pipeline.variants import (MutationFormat, apply_mutations, expressed_sequence, parse_mutations,
                               sequence_id)

from .neural import load_head


def read_run(run_dir: str | Path) -> tuple[dict, dict]:
    """(metrics, source) of a run directory."""
    run_dir = Path(run_dir)
    for name in ("metrics.json", "source.json"):
        if not (run_dir / name).exists():
            raise DataError(f"not a run directory: no {name}", run_dir)
    return json.loads((run_dir / "metrics.json").read_text()), json.loads((run_dir / "source.json").read_text())


def read_variants(path: str | Path, parent: str, fmt: MutationFormat) -> pd.DataFrame:
    """Mutation strings, one a line, or a CSV/TSV with a ``mutant`` (or ``mutations``/``aaMutations``) column."""
    path = Path(path)
    if not path.exists():
        raise DataError("file not found", path)
    lines = path.read_text().splitlines()
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
    rows: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    for number, text in entries:
        mutations = parse_mutations(text, parent, fmt, path, number)
        aligned = apply_mutations(parent, mutations)
        sequence = expressed_sequence(aligned)
        for key, value in zip(FRAME_COLUMNS, (sequence_id(sequence), text.strip(), len(mutations), aligned,
                                              sequence, np.nan)):
            rows[key].append(value)
    return pd.DataFrame(rows)


def rebuild_featurizer(source: dict, device: str = "auto"):
    """The featurizer a run's cache was built with, or a clear error saying why it can't be rebuilt."""
    manifest = source["features"]
    if manifest["kind"] == "onehot":
        from pipeline.onehot import OneHotFeaturizer

        parent = source["dataset"].get("parent")
        if not parent:
            raise DataError("the run's one-hot features need the dataset's parent sequence, which was not recorded")
        return OneHotFeaturizer.from_manifest(manifest, parent)
    if manifest["kind"] == "esm":
        from pipeline.esm_embed import esm_featurizer_from_manifest

        try:
            return esm_featurizer_from_manifest(manifest, device)
        except DataError as exc:
            raise DataError(f"cannot rebuild the run's featurizer {manifest['features']}: {exc}") from None
    if manifest["kind"] == "unirep":
        from pipeline.unirep import UniRepFeaturizer

        return UniRepFeaturizer(int(manifest["model"].removeprefix("unirep")), device)
    raise DataError(f"cannot rebuild features of kind {manifest['kind']!r}")


def featurize(frame: pd.DataFrame, source: dict, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Features for ``frame``: from the run's cache where present, else computed. Returns (X, in_cache)."""
    manifest = source["features"]
    if "parts" in manifest:  # joined features (onehot+unirep256): each part from its own cache or featurizer
        parts = [featurize(frame, {**source, "features": part}, device) for part in manifest["parts"]]
        return np.hstack([X for X, _ in parts]), np.all([cached for _, cached in parts], axis=0)
    X = np.zeros((len(frame), manifest["dim"]), dtype=np.float32)
    in_cache = np.zeros(len(frame), dtype=bool)
    cache = EmbeddingCache(source["cache"], source["dataset"]["name"], manifest["features"])
    if cache.read_manifest() is not None:
        rows = cache.load()
        position = pd.Series(np.arange(len(rows.ids)), index=rows.ids)
        found = frame["id"].isin(position.index).to_numpy()
        X[found] = rows.embeddings[position.loc[frame["id"][found]].to_numpy()]
        in_cache = found
    missing = np.flatnonzero(~in_cache)
    if len(missing):
        featurizer = rebuild_featurizer(source, device)
        for rows_in_missing, embeddings in featurizer.embed(frame.iloc[missing].reset_index(drop=True)):
            X[missing[rows_in_missing]] = embeddings
    return X, in_cache


def load_predictor(run_dir: Path, model_name: str):
    """A function X -> (mean, std or None) for the run's fitted model."""
    if (run_dir / "model.pkl").exists():
        with open(run_dir / "model.pkl", "rb") as handle:
            model = pickle.load(handle)
        return lambda X: (model.predict(X), None)
    if (run_dir / "model.pt").exists():
        head = load_head(run_dir / "model.pt")
        return head.predict_with_std
    raise DataError(f"no fitted model (model.pkl or model.pt) for {model_name}", run_dir)


def predict_file(run_dir: str | Path, variants: str | Path | None = None, fasta: str | Path | None = None,
                 device: str = "auto") -> pd.DataFrame:
    """Predictions for a file of variants (mutation strings against the run's parent) or a FASTA file."""
    run_dir = Path(run_dir)
    metrics, source = read_run(run_dir)
    info = source["dataset"]
    parent = info.get("parent")
    if (variants is None) == (fasta is None):
        raise DataError("give exactly one of --variants FILE or --fasta FILE")
    if variants is not None:
        if not parent:
            raise DataError("the run's dataset has no parent sequence; use --fasta with full sequences")
        fmt = MutationFormat(info.get("mutation_prefix", ""), info.get("mutation_first_index", 1))
        frame = read_variants(variants, parent, fmt)
    else:
        frame = load_fasta(fasta, parent).frame
    X, in_cache = featurize(frame, source, device)
    mean, std = load_predictor(run_dir, metrics["model"])(X)
    out = pd.DataFrame({"id": frame["id"], "mutations": frame["mutations"], "n_mutations": frame["n_mutations"],
                        "prediction": mean})
    if std is not None:
        out["std"] = std
        interval = metrics.get("uncertainty", {}).get("interval")
        if interval is not None:  # the run's valid-calibrated interval, as in its predictions.csv
            half = interval["scale"] * (std + interval["offset"])
            out["lower"], out["upper"] = mean - half, mean + half
    out["in_cache"] = in_cache
    return out
