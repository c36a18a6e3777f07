"""mimo: mutation effects from protein language model embeddings, with uncertainty.

The public API, in the order a user needs it::

    import mimo

    dataset = mimo.load_dataset("my_assay.csv", parent="parent.fasta")   # or load_dataset() for GFP
    featurizer = mimo.get_featurizer("onehot", dataset)                   # or "unirep256", "esm2_t33_650M_UR50D",
                                                                          # a fair-esm checkpoint path, or a Hugging
                                                                          # Face id/directory
    mimo.build_cache(dataset, featurizer, "cache")                        # resumable, HDF5 shards under cache/
    data = mimo.load_split_data("cache", dataset.name, "onehot", "random")
    run = mimo.fit_run(mimo.MimoRegressor(routing="random"), data, "runs/my-mimo")
    run.metrics["test"]["spearman"]
    table = mimo.predict_variants(mimo.load_run("runs/my-mimo"), variants="new.txt")

Datasets: ``load_dataset``, ``load_gfp``, ``load_table``, ``load_fasta``, ``VariantSet``, ``data_home``,
``fetch_gfp``.
Featurizers: ``get_featurizer``, ``featurizer_from_manifest``, ``available_featurizers``, ``Featurizer``;
zero-shot scores: ``zero_shot_scores``; Hugging Face: ``convert_fair_esm`` (a fair-esm ESM-2 checkpoint as an
``EsmModel`` directory).
Cache: ``build_cache``, ``EmbeddingCache``, ``list_features``, ``load_split_data``, ``load_cv_data``,
``SplitData``.
Heads (scikit-learn style, keyword-only parameters): ``ValidatedRidge``, ``MlpRegressor``, ``CnnRegressor``,
``GlobalEpistasisRegressor``, ``MimoRegressor``, ``GaussianProcessRegressor``, ``SklearnRegressor`` (any
scikit-learn regressor by name), ``AutoRegressor``; ``HEADS``, ``head_class``, ``get_head``, ``save_model``,
``load_model``. Every head is a scikit-learn estimator (``clone``, ``cross_val_score``, ``GridSearchCV``).
Runs: ``fit_run``, ``fit_cv`` (ProteinGym's protocol; ``cv="modulo5"`` holds positions out), ``load_run``,
``Run``, ``predict_variants``, ``featurize``, ``gather_runs`` (the runs table).
Design: ``saturation_scan``, ``plot_scan``, ``propose`` (a plate).
Threads: ``set_threads`` (the command line's policy: a fixed count, or the CPUs available less those other
processes keep busy; from Python nothing changes threads unless this is called, and heads take ``threads=``,
restored after each fit).
Errors: ``DataError`` (bad input: its message names the file, the line and the problem).

Names are imported when first used, so ``import mimo`` (and the ``mimo`` command) starts fast.
"""
from __future__ import annotations

import importlib

from mimo._version import __version__

_EXPORTS = {
    "mimo.pipeline.io.datasets": ("load_dataset", "load_gfp"),
    "mimo.pipeline.io.variantset": ("VariantSet",),
    "mimo.pipeline.io.tables": ("load_table", "load_fasta"),
    "mimo.pipeline.io.conventions": ("data_home",),
    "mimo.pipeline.io.fetch": ("resolve_data_dir", "fetch_gfp"),
    "mimo.pipeline.featurizers": ("Featurizer", "get_featurizer", "featurizer_from_manifest", "available_featurizers"),
    "mimo.pipeline.cache.build": ("build_cache",),
    "mimo.pipeline.cache.scoring": ("zero_shot_scores",),
    "mimo.pipeline.cache.store": ("EmbeddingCache", "list_features"),
    "mimo.pipeline.errors": ("DataError",),
    "mimo.pipeline.runtime.threads": ("set_threads",),
    "mimo.pipeline.featurizers.hf": ("convert_fair_esm",),
    "mimo.models.data": ("SplitData", "load_split_data", "load_cv_data"),
    "mimo.models.estimators.ridge": ("ValidatedRidge",),
    "mimo.models.estimators.neural.regressors": ("MlpRegressor", "CnnRegressor", "GlobalEpistasisRegressor", "MimoRegressor"),
    "mimo.models.estimators.auto": ("AutoRegressor",),
    "mimo.models.estimators.gp.regressor": ("GaussianProcessRegressor",),
    "mimo.models.estimators.external": ("SklearnRegressor",),
        "mimo.models.estimators.registry": ("HEADS", "head_class", "get_head", "save_model", "load_model"),
    "mimo.models.runs.fit": ("Run", "fit_run", "fit_cv", "load_run"),
    "mimo.models.runs.directory": ("gather_runs",),
    "mimo.predict": ("predict_variants", "featurize"),
    "mimo.design": ("saturation_scan", "propose", "plot_scan"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mimo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
