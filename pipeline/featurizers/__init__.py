"""The one registry of featurizers: a name (or a checkpoint path) to a featurizer, and a cache's manifest back
to the featurizer that built it.

A featurizer has a ``name`` (the cache folder), a ``kind``, a ``dim``, a ``manifest()`` (what a cache records to
refuse mixing) and ``embed(frame)``, which yields ``(row positions in frame, float32 or uint8 features)``.

Adding a featurizer means adding one entry to ``FEATURIZERS`` (built by name) and, for its ``kind``, one to
``FROM_MANIFEST`` (rebuilt from a cache). Everything else (the CLI, ``mimo.predict``) goes through here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mimo.pipeline.io.conventions import ESM_NAME, MUTPOS
from mimo.pipeline.errors import DataError


@runtime_checkable
class Featurizer(Protocol):
    """What ``build_cache`` and ``mimo predict`` need of a featurizer."""

    name: str
    kind: str
    dim: int

    def manifest(self) -> dict: ...

    def embed(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...


# Options every builder accepts (unused ones are ignored by design: e.g. one-hot has no device).
DEFAULT_OPTIONS = {"device": "auto", "layer": None, "dtype": "auto", "engine": "fast", "toks_per_batch": None,
                   "truncate": False, "profile_offset": 0, "profile_alphabet": None, "profile_columns": "all",
                   "allow_missing": False, "chain": None, "sites": None}


def _onehot(mode: str):
    def build(name: str, dataset, **_) -> Featurizer:
        from mimo.pipeline.featurizers.onehot import OneHotFeaturizer

        if dataset is None:
            raise DataError(f"the {name} featurizer takes its columns from a dataset: pass dataset=...")
        return OneHotFeaturizer.for_dataset(dataset.parent, dataset.frame["aligned"], mode)
    return build


def _aaprops(name: str, dataset, **_) -> Featurizer:
    from mimo.pipeline.featurizers.aaprops import AminoAcidPropertyFeaturizer

    if dataset is None or not dataset.parent:
        raise DataError(f"the {name} featurizer describes substitutions against a parent: pass a dataset with one")
    return AminoAcidPropertyFeaturizer(dataset.parent)


def _unirep(name: str, dataset=None, device: str = "auto", **_) -> Featurizer:
    from mimo.pipeline.featurizers.unirep import UniRepFeaturizer

    if name.endswith(MUTPOS):
        return UniRepFeaturizer(int(name.removeprefix("unirep").removesuffix(MUTPOS)), device, pooling="mutated",
                                parent=_parent(name, dataset))
    return UniRepFeaturizer(int(name.removeprefix("unirep")), device)


def _esm(name: str, dataset=None, weights: str | Path | None = None, device: str = "auto", layer=None,
         dtype: str = "auto", engine: str = "fast", toks_per_batch=None, truncate: bool = False,
         method: str | None = None, mutpos: bool = False, **_) -> Featurizer:
    from mimo.pipeline.featurizers.esm import EsmFeaturizer, checkpoint_fingerprint, load_esm

    net, alphabet, model_name = load_esm(None if weights else name, weights)
    if method is None:
        parent = _parent(f"{model_name}{MUTPOS}", dataset) if mutpos else None
        return EsmFeaturizer(net, alphabet, model_name, layer, device, dtype, toks_per_batch, weights, truncate,
                             engine, pooling="mutated" if mutpos else "mean", parent=parent)
    from mimo.pipeline.featurizers.zeroshot import EsmZeroShot

    resolved = None if weights is None else str(Path(weights).resolve())
    return EsmZeroShot(net, alphabet, model_name, method, _parent(f"{model_name}-{method}", dataset), device,
                       dtype, toks_per_batch, resolved, checkpoint_fingerprint(model_name, resolved))


def _hf(model: str, dataset=None, device: str = "auto", layer=None, dtype: str = "auto", toks_per_batch=None,
        truncate: bool = False, mutpos: bool = False, **_) -> Featurizer:
    from mimo.pipeline.featurizers.hf import HuggingFaceFeaturizer

    parent = _parent(f"{model}{MUTPOS}", dataset) if mutpos else None
    return HuggingFaceFeaturizer(model, device, layer, dtype, toks_per_batch, truncate,
                                 pooling="mutated" if mutpos else "mean", parent=parent)


def _parent(name: str, dataset) -> str:
    if dataset is None or not dataset.parent:
        raise DataError(f"the {name} featurizer scores variants against a parent: pass a dataset with one")
    return dataset.parent


def _profile(spec: str, dataset=None, profile_offset: int = 0, profile_alphabet: str | None = None,
             profile_columns: str = "all", device: str = "auto", dtype: str = "auto", toks_per_batch=None,
             **_) -> Featurizer:
    from mimo.pipeline.featurizers.lm_profile import LmProfileFeaturizer, parse_spec
    from mimo.pipeline.featurizers.profile import ProfileFeaturizer

    lm = parse_spec(spec)  # profile:MODEL[:METHOD]: a profile a language model computes of the parent
    if lm is not None:
        if profile_offset or profile_alphabet:
            raise DataError(f"--profile-offset and --profile-alphabet read a profile file; profile:{spec} is computed "
                            f"by a language model on the parent itself")
        return LmProfileFeaturizer(lm, _parent(f"profile:{spec}", dataset), profile_columns, device, dtype,
                                   toks_per_batch)
    return ProfileFeaturizer(spec, _parent(f"profile:{spec}", dataset), profile_offset, profile_alphabet,
                             columns=profile_columns)


def _scores(spec: str, dataset=None, allow_missing: bool = False, **_) -> Featurizer:
    from mimo.pipeline.featurizers.scores import ScoresFeaturizer, split_spec

    path, columns = split_spec(spec)
    return ScoresFeaturizer(path, None if dataset is None else dataset.parent, columns, allow_missing,
                            dataset=dataset)


def _structure_file(path: str, dataset=None, chain: str | None = None, sites=None, **_) -> Featurizer:
    from mimo.pipeline.featurizers.structure import StructureFeaturizer

    return StructureFeaturizer(path, _parent(f"structure:{path}", dataset), chain, sites or ())


def _structure(name: str, dataset=None, chain: str | None = None, sites=None, **_) -> Featurizer:
    """``structure`` (or ``structure-<stem>``): the structure recorded on the dataset (``--structure FILE``)."""
    recorded = getattr(dataset, "structure", None)
    if not recorded:
        raise DataError(f"the {name} featurizer reads the dataset's structure, and none is recorded: give "
                        f"--structure FILE (PDB or mmCIF)")
    from mimo.pipeline.featurizers.structure import StructureFeaturizer
    from mimo.pipeline.io.profiles import feature_stem

    if name != "structure" and name != f"structure-{feature_stem(recorded['path'])}":
        raise DataError(f"the dataset's structure is {recorded['path']}, whose features are named "
                        f"structure-{feature_stem(recorded['path'])}, not {name}")
    return StructureFeaturizer(recorded["path"], _parent(name, dataset), chain or recorded.get("chain"),
                               sites or recorded.get("sites") or (), recorded.get("sha256"))


# "<prefix>PATH": features read from a file the user brings
FILE_FEATURIZERS: dict[str, Callable[..., Featurizer]] = {"profile:": _profile, "scores:": _scores,
                                                          "structure:": _structure_file}


def _unirep_llr(name: str, dataset=None, device: str = "auto", **_) -> Featurizer:
    from mimo.pipeline.featurizers.zeroshot import UniRepZeroShot

    return UniRepZeroShot(int(name.removeprefix("unirep").removesuffix("-llr")), _parent(name, dataset), device)


# name -> builder; ESM names are fair-esm's (any ``esm1*``/``esm2*`` function of esm.pretrained).
FEATURIZERS: dict[str, Callable[..., Featurizer]] = {
    "onehot": _onehot("substitutions"),
    "onehot-sites": _onehot("sites"),
    "onehot-full": _onehot("full"),
    "aaprops": _aaprops,
    "structure": _structure,
    "unirep64": _unirep,
    "unirep256": _unirep,
    "unirep1900": _unirep,
    "unirep64-mutpos": _unirep,
    "unirep256-mutpos": _unirep,
    "unirep1900-mutpos": _unirep,
    "unirep64-llr": _unirep_llr,
    "unirep256-llr": _unirep_llr,
    "unirep1900-llr": _unirep_llr,
}


def available_featurizers() -> list[str]:
    """Built-in names, then fair-esm's model names."""
    try:
        import esm.pretrained

        esm_names = sorted(n for n in dir(esm.pretrained) if n.startswith(("esm1", "esm2")))
    except ImportError:  # pragma: no cover - fair-esm is a dependency
        esm_names = []
    return list(FEATURIZERS) + esm_names


def is_checkpoint_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return text.endswith(".pt") or "/" in text or Path(text).is_file()


def get_featurizer(name_or_path: str | Path, dataset=None, **options) -> Featurizer:
    """The featurizer called ``name_or_path``: a built-in name (``onehot``, ``onehot-sites``, ``onehot-full``,
    ``unirep64``, ``unirep256``, ``unirep1900``), ``profile:PATH`` (a per-site profile: ProteinMPNN .npz, a
    .npy matrix, a table, an MSA), ``profile:MODEL[:METHOD]`` (the parent's profile computed once by
    unirep64/256/1900, an ESM name or a .pt checkpoint, method wt or masked; ``lm_profile``),
    ``scores:PATH[:COL,...]`` (a file of variant scores), ``structure:PATH`` (a PDB or mmCIF file; options
    ``chain`` and ``sites``), ``structure`` (the structure recorded on the dataset), a fair-esm model name
    (``esm2_t33_650M_UR50D``, weights from the torch hub cache), a fair-esm checkpoint file (``.pt``), or a Hugging Face encoder (ESM-2, ProtT5,
    ProtBert) by hub id (``facebook/esm2_t33_650M_UR50D``) or ``save_pretrained`` directory.

    ``dataset`` (a ``VariantSet``) is needed by the one-hot featurizers, whose columns are the dataset's
    substitutions. ``options``: ``device``, ``layer``, ``dtype``, ``engine``, ``toks_per_batch``, ``truncate``
    (the ESM ones; the others ignore them); ``profile_offset``, ``profile_alphabet``, ``profile_columns``
    (``profile:``),
    ``allow_missing`` (``scores:``); ``chain``, ``sites`` (``structure``: the chain, and parent positions such as
    "41,145" whose distance to the substituted sites becomes a column).
    """
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown featurizer option(s) {sorted(unknown)}; known: {sorted(DEFAULT_OPTIONS)}")
    options = {**DEFAULT_OPTIONS, **options}
    from mimo.pipeline.runtime.ranks import resolve_device

    resolve_device(options["device"])  # a device this machine lacks is refused, whatever the featurizer
    text = str(name_or_path)
    for prefix, build in FILE_FEATURIZERS.items():
        if text.startswith(prefix):
            return build(text.removeprefix(prefix), dataset=dataset, **options)
    if text in FEATURIZERS:
        return FEATURIZERS[text](text, dataset=dataset, **options)
    if text.startswith("structure-") and getattr(dataset, "structure", None):
        return _structure(text, dataset=dataset, **options)
    from mimo.pipeline.featurizers.zeroshot import ESM_METHODS, split_method

    base, method = split_method(text)  # "<ESM name or checkpoint>-masked-marginal": zero-shot scores
    if method is not None and method not in ESM_METHODS:
        method = None
    base = base if method else text
    mutpos = method is None and base.endswith(MUTPOS)  # "<ESM name or checkpoint>-mutpos"
    base = base.removesuffix(MUTPOS) if mutpos else base
    from mimo.pipeline.featurizers.hf import is_hf_model

    if method is None and is_hf_model(base):  # a Hugging Face hub id or save_pretrained directory
        return _hf(base, dataset, mutpos=mutpos, **options)
    if Path(base).is_dir():
        raise DataError("a directory, but not a Hugging Face model directory (save_pretrained writes config.json "
                        "there); a fair-esm checkpoint is a .pt file", base)
    if is_checkpoint_path(base):
        return _esm(Path(base).stem, dataset, weights=base, method=method, mutpos=mutpos, **options)
    if ESM_NAME.match(base):
        return _esm(base, dataset, method=method, mutpos=mutpos, **options)
    raise DataError(f"unknown featurizer {text!r}; known: {', '.join(available_featurizers())}, profile:PATH, "
                    f"profile:MODEL[:METHOD], scores:PATH[:COL,...], structure:PATH, a fair-esm "
                    f"checkpoint file (.pt), or a Hugging Face model (owner/name or a save_pretrained directory); an ESM name or checkpoint followed by -mutpos gives its representation at "
                    f"the mutated positions, by -masked-marginal, -wt-marginal or -mutant-marginal its zero-shot "
                    f"scores")


# ------------------------------------------------------------------------------------- from a cache manifest

def _onehot_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.onehot import OneHotFeaturizer

    if not parent:
        raise DataError("one-hot features need the dataset's parent sequence, which was not recorded")
    return OneHotFeaturizer.from_manifest(manifest, parent)


def _esm_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.esm import esm_featurizer_from_manifest

    return esm_featurizer_from_manifest(manifest, device, parent=parent)


def _unirep_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.unirep import UniRepFeaturizer

    return UniRepFeaturizer.from_manifest(manifest, device, parent)


def _hf_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.hf import HuggingFaceFeaturizer

    return HuggingFaceFeaturizer.from_manifest(manifest, device, parent)


def _aaprops_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.aaprops import AminoAcidPropertyFeaturizer

    if not parent:
        raise DataError("amino-acid property features need the dataset's parent sequence, which was not recorded")
    return AminoAcidPropertyFeaturizer.from_manifest(manifest, parent)


def _zeroshot_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.io.variantset import VariantSet

    if not parent:
        raise DataError("zero-shot scores need the dataset's parent sequence, which was not recorded")
    holder = VariantSet("parent", pd.DataFrame(), parent)
    if manifest["method"] == "llr":
        return _unirep_llr(manifest["features"], holder, device)
    weights = manifest.get("weights")
    return _esm(manifest["model"], holder, weights=weights, device=device, dtype=manifest["dtype"],
                method=manifest["method"])


def _profile_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.profile import ProfileFeaturizer

    if not parent:
        raise DataError("profile features need the dataset's parent sequence, which was not recorded")
    return ProfileFeaturizer.from_manifest(manifest, parent)


def _lm_profile_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.lm_profile import LmProfileFeaturizer

    if not parent:
        raise DataError("profile features need the dataset's parent sequence, which was not recorded")
    return LmProfileFeaturizer.from_manifest(manifest, parent, device)


def _scores_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.scores import ScoresFeaturizer

    return ScoresFeaturizer.from_manifest(manifest, parent)


def _structure_from_manifest(manifest: dict, parent: str | None, device: str) -> Featurizer:
    from mimo.pipeline.featurizers.structure import StructureFeaturizer

    if not parent:
        raise DataError("structure features need the dataset's parent sequence, which was not recorded")
    return StructureFeaturizer.from_manifest(manifest, parent)


FROM_MANIFEST: dict[str, Callable[[dict, str | None, str], Featurizer]] = {
    "zeroshot": _zeroshot_from_manifest,
    "onehot": _onehot_from_manifest,
    "aaprops": _aaprops_from_manifest,
    "esm": _esm_from_manifest,
    "unirep": _unirep_from_manifest,
    "huggingface": _hf_from_manifest,
    "profile": _profile_from_manifest,
    "profile-lm": _lm_profile_from_manifest,
    "scores": _scores_from_manifest,
    "structure": _structure_from_manifest,
}


def featurizer_from_manifest(manifest: dict, parent: str | None = None, device: str = "auto") -> Featurizer:
    """The featurizer a cache was built with (same model, layer, precision, columns), or a DataError saying
    why it cannot be rebuilt."""
    builder = FROM_MANIFEST.get(manifest.get("kind"))
    if builder is None:
        raise DataError(f"cannot rebuild features of kind {manifest.get('kind')!r} "
                        f"(known: {', '.join(FROM_MANIFEST)})")
    try:
        return builder(manifest, parent, device)
    except DataError as exc:
        raise DataError(f"cannot rebuild the featurizer {manifest.get('features')}: {exc}") from None
