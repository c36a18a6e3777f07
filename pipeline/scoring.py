"""Zero-shot scores of a dataset's variants: computed once into the cache by a zero-shot featurizer, read back."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .build import build_cache
from .cache import EmbeddingCache
from .errors import DataError
from .featurizers import get_featurizer
from .featurizers.zeroshot import ESM_METHODS, split_method


def zero_shot_scores(dataset, model: str, method: str | None = None, cache_root="cache", progress: bool = False,
                     **options) -> pd.DataFrame:
    """Zero-shot scores of every variant of ``dataset`` (a ``VariantSet``), computed once into the cache (as
    ``<model>-<method>``) and read from there: id, mutations, n_mutations, label, score.

    ``model``: an ESM name or checkpoint (``method`` one of ``ESM_METHODS``, default masked-marginal) or
    ``unirep64``/``unirep256``/``unirep1900`` (``method`` ``llr``). ``options``: device, dtype, toks_per_batch.
    """
    base, given = split_method(str(model))
    method = method or given or ("llr" if base.startswith("unirep") else "masked-marginal")
    if base.startswith("unirep") and method != "llr":
        raise DataError(f"UniRep's zero-shot score is llr, not {method!r}")
    if not base.startswith("unirep") and method not in ESM_METHODS:
        raise DataError(f"ESM zero-shot methods are {', '.join(ESM_METHODS)}, not {method!r}")
    featurizer = get_featurizer(f"{base}-{method}", dataset, **options)
    build_cache(dataset, featurizer, cache_root, progress=progress)
    rows = EmbeddingCache(cache_root, dataset.name, featurizer.name).load()
    return pd.DataFrame({"id": rows.ids, "mutations": rows.mutations, "n_mutations": rows.n_mutations,
                         "label": rows.labels, "score": rows.embeddings[:, 0].astype(np.float64)})
