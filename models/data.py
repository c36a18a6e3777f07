"""Training data for the heads, read only from the embedding cache."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mimo.pipeline.cache.store import CachedEmbeddings, EmbeddingCache, list_features
from mimo.pipeline.io.conventions import check_name, mutation_format_from
from mimo.pipeline.errors import DataError
from mimo.pipeline.io.splits import (SPLIT_NAMES, contiguous_out_of_order, is_fold_scheme, parse_fold_scheme,
                                  position_folds, random_folds, split_hash)
from mimo.pipeline.io.tables import read_split_file
from mimo.pipeline.io.variants import AMINO_ACIDS, STOP, parse_mutations

ONEHOT_LETTERS = AMINO_ACIDS + STOP  # the one-hot featurizer's letters, in its column order


def is_profile(block: tuple) -> bool:
    """A per-site profile block (``profile-<stem>``, or of kind ``profile...``)."""
    name, kind = str(block[0]), str(block[1])
    return name.startswith("profile") or kind.startswith("profile")


def _named_columns(part: dict) -> tuple | None:
    """A manifest part's column names where a head reads them: one-hot (positions), profiles and scores."""
    kind = part.get("kind", "")
    if not (kind in ("zeroshot", "scores", "onehot", "structure") or is_profile((part["features"], kind))):
        return None
    if kind == "onehot" and not part.get("columns") and part.get("model") == "onehot-full":
        letters = len(ONEHOT_LETTERS)  # every site x letter, in the featurizer's order
        return tuple(f"{j // letters}{ONEHOT_LETTERS[j % letters]}" for j in range(int(part["dim"])))
    return tuple(part["columns"]) if part.get("columns") else None


def feature_blocks(manifest: dict) -> tuple:
    """(name, kind, first column, end column, column names or None) of each featurizer in a (joined) features
    manifest; names are kept where the heads read them (one-hot positions, profiles, zero-shot scores). The GP
    puts a kernel on each block, ``fit auto`` chooses among their subsets."""
    blocks, start = [], 0
    for part in manifest.get("parts") or [manifest]:
        dim = int(part["dim"])
        blocks.append((part["features"], part.get("kind", ""), start, start + dim, _named_columns(part)))
        start += dim
    return tuple(blocks)


def read_blocks(blocks) -> tuple:
    """Feature blocks as 5-tuples (name, kind, first column, end column, column names or None); a block of 4
    (runs saved before the column names were kept) gets None. Anything else is a ValueError."""
    out = []
    for block in blocks:
        if not isinstance(block, (tuple, list)) or len(block) not in (4, 5):
            raise ValueError(f"each block is (name, kind, first column, end column[, column names]), not {block!r}")
        name, kind, start, stop, *columns = block
        names = tuple(columns[0]) if columns and columns[0] is not None else None
        out.append((str(name), str(kind), int(start), int(stop), names))
    return tuple(out)



@dataclass
class SplitData:
    """Cached rows with their split assignment (``train``/``valid``/``test``/``none``)."""

    dataset: str
    features: str
    split_name: str
    rows: CachedEmbeddings
    split: np.ndarray
    source: dict  # cache root, dataset record and features manifest: enough to rebuild the featurizer

    def __repr__(self) -> str:
        parts = ", ".join(f"{name} {int((self.split == name).sum())}" for name in sorted(set(self.split.tolist()))
                          if name != "none")
        return (f"SplitData({self.dataset}/{self.features}, split {self.split_name!r}: {parts}; "
                f"{self.rows.embeddings.shape[1]} columns)")

    @property
    def split_hash(self) -> str:
        """The split's content hash (``mimo.pipeline.io.datasets.split_hash``), as ``dataset.json`` records it."""
        return split_hash(self.rows.ids, self.split)

    @property
    def blocks(self) -> tuple:
        """The feature blocks of the columns (``feature_blocks``): ``fit_run`` and ``fit_cv`` give them to a head
        with an empty ``blocks`` parameter (the GP, ``fit auto``); for ``model.fit(X, y)`` pass them yourself
        (``mimo.GaussianProcessRegressor(blocks=data.blocks)``)."""
        return feature_blocks(self.rows.manifest)

    def mask(self, part: str) -> np.ndarray:
        return self.split == part

    def X(self, part: str) -> np.ndarray:
        return self.rows.embeddings[self.mask(part)]

    def y(self, part: str) -> np.ndarray:
        return self.rows.labels[self.mask(part)]

    def n_mutations(self, part: str) -> np.ndarray:
        return self.rows.n_mutations[self.mask(part)]


def choose_features(cache_root: str | Path, dataset: str, features: str | None) -> str:
    """The features to use: the one given (names, not paths), or the only one cached."""
    check_name(dataset, "--dataset")
    available = list_features(cache_root, dataset)
    if features is not None:
        feature_names(features)
        return features
    if len(available) == 1:
        return available[0]
    if not available:
        raise DataError(f"nothing cached for dataset {dataset!r}; run `mimo embed build` first", Path(cache_root))
    raise DataError(f"several features are cached for {dataset!r} ({', '.join(available)}); pick one with --features, "
                    f"or join several with + (--features {'+'.join(available[:2])})",
                    Path(cache_root) / dataset)


def feature_names(features: str) -> list[str]:
    """The parts of ``a+b``: names of features cached for the dataset, never paths, each once."""
    names = str(features).split("+")
    for name in names:
        check_name(name, f"--features {features!r}:")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"--features {features!r}: {', '.join(repeated)} is joined more than once")
    return names


def load_features(cache_root: str | Path, dataset: str, features: str) -> CachedEmbeddings:
    """One cached featurizer, or several joined with ``+`` (``onehot+unirep256``): columns side by side. The
    parts must hold the same rows with the same labels."""
    names = feature_names(features)
    parts = [EmbeddingCache(cache_root, dataset, name).load() for name in names]
    rows = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        if not np.array_equal(part.ids, rows.ids):
            raise DataError(f"features {names[0]!r} and {name!r} do not cover the same sequences; rebuild them "
                            f"from the same dataset", Path(cache_root) / dataset)
        if not np.array_equal(part.labels, rows.labels, equal_nan=True):
            raise DataError(f"features {names[0]!r} and {name!r} hold different labels for the same sequences "
                            f"(built from different versions of the dataset file); rebuild both",
                            Path(cache_root) / dataset)
    if len(parts) == 1:
        return rows
    manifest = {**rows.manifest, "features": features, "kind": "+".join(p.manifest["kind"] for p in parts),
                "dim": sum(p.manifest["dim"] for p in parts), "parts": [p.manifest for p in parts]}
    return CachedEmbeddings(rows.ids, np.hstack([p.embeddings for p in parts]), rows.labels, rows.n_mutations,
                            rows.mutations, manifest)


def check_complete(cache_root: str | Path, dataset: str, features: str, cached_ids: np.ndarray,
                   dataset_ids: np.ndarray, allow_partial: bool, manifest: dict | None = None) -> dict | None:
    """A fit uses every row of its dataset: a cache missing some (an interrupted build, or one still running)
    is refused unless ``allow_partial``; returns what a run records of a partial cache."""
    missing = len(set(dataset_ids.tolist()) - set(cached_ids.tolist()))  # sets: np.setdiff1d on strings took 70 s
    if not missing:
        return None
    if not allow_partial:
        from mimo.pipeline.cache.build import rebuild_options

        names = (rebuild_options(manifest) if manifest is not None
                 else ", ".join(f"--model {n}" for n in features.split("+")))
        raise DataError(f"the {features} cache of dataset {dataset!r} holds {len(dataset_ids) - missing} of its "
                        f"{len(dataset_ids)} rows ({missing} missing: a build was interrupted or is still running); "
                        f"complete it by rerunning `mimo embed build` with the same data options and {names}, or "
                        f"pass --allow-partial to fit on the cached rows", Path(cache_root) / dataset / features)
    return {"cached_rows": len(dataset_ids) - missing, "dataset_rows": len(dataset_ids), "missing_rows": missing}


def _cached(cache_root, dataset: str, features: str | None, allow_partial: bool):
    """(features name, cached rows, recorded splits table, source record) of a complete cache."""
    features = choose_features(cache_root, dataset, features)
    cache = EmbeddingCache(cache_root, dataset, features.split("+")[0])
    rows = load_features(cache_root, dataset, features)
    table = cache.load_splits()
    partial = check_complete(cache_root, dataset, features, rows.ids, table["id"].to_numpy(), allow_partial,
                             rows.manifest)
    source = {"cache": str(Path(cache_root).resolve()), "dataset": cache.read_dataset_info(),
              "features": rows.manifest}
    if partial is not None:
        source["partial_cache"] = partial
    return features, rows, table, source


def load_split_data(cache_root: str | Path, dataset: str, features: str | None = None, split: str | None = None,
                    split_file: str | Path | None = None, allow_partial: bool = False) -> SplitData:
    """Cached embeddings plus a split: a named one recorded at build time, or a user's split file.

    The cache must hold every row of the dataset (``allow_partial`` to fit on what it holds; the run records it).
    """
    features, rows, table, source = _cached(cache_root, dataset, features, allow_partial)
    named = [c for c in table.columns if c != "id" and not is_fold_scheme(table[c])]
    if not named:
        raise DataError(f"dataset {dataset!r} has no scores (a FASTA file is embedded only): nothing to fit")
    if split is not None and split in table.columns and split not in named:
        raise DataError(f"{split!r} is a cross-validation fold scheme, not a train/valid/test split: use --cv {split}")
    if split_file is not None:
        split = Path(split_file).name
        assignment = read_split_file(split_file, pd.DataFrame({"id": rows.ids, "mutations": rows.mutations}))
    else:
        split = split or named[0]
        if split not in named:
            raise DataError(f"no split {split!r} for dataset {dataset!r} (known: {', '.join(named)}; "
                            f"or --split-file)")
        assignment = pd.Series(table[split].to_numpy(), index=table["id"]).reindex(rows.ids).fillna("none")
        assignment = assignment.to_numpy()
    source["split_unused_rows"] = int((assignment == "none").sum())
    data = SplitData(dataset, features, split, rows, assignment.astype(object), source)
    _note_label_leaks(data, data.mask("train"))
    empty = [p for p in SPLIT_NAMES[:2] if not data.mask(p).any()]
    if empty:
        raise DataError(f"split {split!r} has no {' or '.join(empty)} rows in the cache")
    if np.isnan(data.y("train")).any():
        raise DataError(f"dataset {dataset!r} has rows without labels in its train split; it cannot be fitted")
    labels = data.rows.labels[np.isfinite(data.rows.labels)]
    with np.errstate(over="ignore"):
        if labels.size and not np.isfinite(np.mean(labels.astype(np.float64) ** 2)):
            raise DataError(f"dataset {dataset!r} has labels as large as {np.abs(labels).max():.3g}: their squares "
                            f"overflow floating point, so no error or correlation could be computed; rescale them "
                            f"(e.g. log10)")
    return data


def first_positions(mutations, n_mutations, info: dict) -> list[int | None]:
    """Each row's first substituted position, 1-based on the parent (None: the parent, or no parent)."""
    parent, fmt = info.get("parent"), mutation_format_from(info)
    if not parent:
        return [None] * len(mutations)
    return [parse_mutations(text, parent, fmt)[0].position + 1 if count and count > 0 and text else None
            for text, count in zip(mutations, n_mutations)]


def _proteingym_folds(rows: CachedEmbeddings, table: pd.DataFrame, source: dict, scheme: str, k: int) -> np.ndarray:
    """ProteinGym's fold scheme over the dataset's rows in the order of its file (``mimo.pipeline.io.splits``); a
    note in ``source`` when contiguous blocks are not contiguous in sequence (a file not sorted by position)."""
    if k < 2:
        raise DataError(f"--cv {scheme}{k}: a k-fold needs k >= 2")
    at = {sid: i for i, sid in enumerate(rows.ids)}
    order = [at[sid] for sid in table["id"] if sid in at]  # the file's order, rows the cache holds
    if scheme == "random":
        drawn = random_folds(len(order), k)
    else:
        positions = first_positions(rows.mutations[order], rows.n_mutations[order], source["dataset"])
        if all(p is None for p in positions):
            raise DataError(f"--cv {scheme}{k}: the dataset has no mutation strings against a parent, so its rows "
                            f"have no positions (give --parent when building)")
        try:
            drawn = position_folds(positions, scheme, k)
        except ValueError as exc:
            raise DataError(f"--cv {scheme}{k}: {exc}") from None
        if scheme == "contiguous" and contiguous_out_of_order(positions):
            source["cv_note"] = (f"the dataset file is not sorted by position, so the {k} contiguous folds are "
                                 f"blocks of positions in the order they first appear (ProteinGym's rule), not "
                                 f"blocks of the sequence; sort the file by position for sequence blocks")
    folds = np.full(len(rows.ids), "none", dtype=object)
    for row, fold in zip(order, drawn):
        if fold >= 0 and np.isfinite(rows.labels[row]):
            folds[row] = str(int(fold))
    return folds


def load_cv_data(cache_root: str | Path, dataset: str, features: str | None = None, cv: str = "5",
                 allow_partial: bool = False, seed: int = 0) -> SplitData:
    """Cached rows with cross-validation folds: ProteinGym's schemes made for any dataset (``cv`` as
    ``modulo5``, ``contiguous5``, ``random5``, any k: ``mimo.pipeline.io.splits``), a fold scheme recorded from the
    dataset file (``cv`` names its column, e.g. ``fold_modulo_5``) or, with ``cv`` a number k, a seeded random
    k-fold (``random_k``). The
    ``split`` array holds each row's fold id as text (``"0"``..``"k-1"``; ``none`` for rows outside)."""
    features, rows, table, source = _cached(cache_root, dataset, features, allow_partial)
    schemes = [c for c in table.columns if c != "id" and is_fold_scheme(table[c])]
    scheme = parse_fold_scheme(cv)
    if scheme is not None:
        folds, name = _proteingym_folds(rows, table, source, *scheme), str(cv)
    elif str(cv).isdigit():
        k = int(cv)
        if not 2 <= k <= len(rows.ids):
            raise DataError(f"--cv {cv}: a k-fold needs 2 <= k <= the {len(rows.ids)} rows")
        labelled = np.flatnonzero(np.isfinite(rows.labels))
        order = np.random.default_rng(seed).permutation(labelled)
        folds = np.full(len(rows.ids), "none", dtype=object)
        for fold, part in enumerate(np.array_split(order, k)):
            folds[part] = str(fold)
        name = f"random_{k}" + (f"-seed{seed}" if seed else "")
    else:
        if cv not in schemes:
            raise DataError(f"--cv {cv!r}: no such fold scheme for dataset {dataset!r} (recorded: "
                            f"{', '.join(schemes) or 'none'}; or modulo5, contiguous5, random5 (any k) for "
                            f"ProteinGym's schemes, or a number for a seeded random k-fold)")
        folds = pd.Series(table[cv].to_numpy(), index=table["id"]).reindex(rows.ids).fillna("none").to_numpy()
        name = cv
    folds = folds.astype(object)
    if len({f for f in folds if f != "none"}) < 2:
        raise DataError(f"fold scheme {name!r} has fewer than 2 folds in the cache")
    if np.isnan(rows.labels[folds != "none"]).any():
        raise DataError(f"dataset {dataset!r} has rows without labels; it cannot be cross-validated")
    data = SplitData(dataset, features, name, rows, folds, source)
    _note_label_leaks(data, folds != "none")
    return data


def _note_label_leaks(data: SplitData, train: np.ndarray) -> None:
    """``source["label_leak"]`` (a warning the run prints and records) when a feature column is the label."""
    from mimo.pipeline.cache.store import label_leaks

    leaks = label_leaks(data.rows, train)
    if leaks:
        data.source["label_leak"] = (f"{len(leaks)} feature column(s) correlate with the label above 0.99 on the "
                                     f"training rows ({', '.join(leaks[:3])}{', ...' if len(leaks) > 3 else ''}): "
                                     f"the label itself, or a copy of it, is among the features, so the test "
                                     f"figures are not a model's; rebuild without that column")
