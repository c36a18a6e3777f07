"""Zero-shot scores of a dataset's variants: computed once into the cache by a zero-shot featurizer, read back."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mimo.pipeline.cache.build import build_cache
from mimo.pipeline.cache.store import EmbeddingCache
from mimo.pipeline.errors import DataError
from mimo.pipeline.featurizers import get_featurizer
from mimo.pipeline.featurizers.zeroshot import ESM_METHODS, split_method


def zero_shot_scores(dataset, model: str, method: str | None = None, cache_root="cache", progress: bool = False,
                     **options) -> pd.DataFrame:
    """Zero-shot scores of every variant of ``dataset`` (a ``VariantSet``), computed once into the cache (as
    ``<model>-<method>``) and read from there: id, mutations, n_mutations, label, score.

    ``model``: an ESM name or checkpoint (``method`` one of ``ESM_METHODS``, default masked-marginal) or
    ``unirep64``/``unirep256``/``unirep1900`` (``method`` ``llr``), or a file the user brings (``profile:PATH``:
    the profile's log p(mutant) - log p(wild type); ``scores:PATH[:COL]``: the first column), with a ``covered``
    column (False where the file gives a variant no signal). ``options``: device, dtype, toks_per_batch,
    profile_offset, profile_alphabet, allow_missing.
    """
    from mimo.pipeline.featurizers import FILE_FEATURIZERS

    if str(model).startswith(tuple(FILE_FEATURIZERS)):
        if method is not None:
            raise DataError(f"--method applies to language models, not to {model}")
        return cached_scores(dataset, get_featurizer(str(model), dataset, **options), cache_root, progress)
    base, given = split_method(str(model))
    method = method or given or ("llr" if base.startswith("unirep") else "masked-marginal")
    if base.startswith("unirep") and method != "llr":
        raise DataError(f"UniRep's zero-shot score is llr, not {method!r}")
    if not base.startswith("unirep") and method not in ESM_METHODS:
        raise DataError(f"ESM zero-shot methods are {', '.join(ESM_METHODS)}, not {method!r}")
    return cached_scores(dataset, get_featurizer(f"{base}-{method}", dataset, **options), cache_root, progress)


def cached_scores(dataset, featurizer, cache_root, progress: bool = False) -> pd.DataFrame:
    """The featurizer's first column for every variant, built into the cache once and read from there (with
    ``covered`` when the features have that column)."""
    build_cache(dataset, featurizer, cache_root, progress=progress)
    rows = EmbeddingCache(cache_root, dataset.name, featurizer.name).load()
    table = pd.DataFrame({"id": rows.ids, "mutations": rows.mutations, "n_mutations": rows.n_mutations,
                          "label": rows.labels, "score": rows.embeddings[:, 0].astype(np.float64)})
    table.attrs["features"] = featurizer.name  # what the scores are of: `mimo score` names it beside its Spearman
    columns = rows.manifest.get("columns") or []
    if "covered" in columns:
        table["covered"] = rows.embeddings[:, columns.index("covered")] > 0
    return table
