"""Loading a dataset: the GFP data (``gfp``) or a user's table or FASTA (``tables``), as a ``VariantSet``.

This module is the entry point; the type is ``variantset``, splits are ``splits``, where the GFP files come
from is ``fetch``.
"""
from __future__ import annotations

from pathlib import Path

from mimo.pipeline.errors import DataError
from mimo.pipeline.io.fetch import resolve_data_dir
from mimo.pipeline.io.gfp import GFP_GENOTYPES, GFP_PARENT, GFP_VALID_LIST, read_genotype_list, read_genotypes, tape_split
from mimo.pipeline.io.splits import SPLIT_NAMES, seeded_name, sized_random_split
from mimo.pipeline.io.tables import load_fasta, load_table
from mimo.pipeline.io.variants import SARKISYAN_FORMAT, MutationFormat, load_parent, path_exists
from mimo.pipeline.io.variantset import VariantSet

__all__ = ["VariantSet", "attach_structure", "load_dataset", "load_fasta", "load_gfp", "load_table"]


def load_gfp(data: str | Path | None = None, seed: int = 0) -> VariantSet:
    """The avGFP dataset with TAPE's split (``tape``) and the avGFP report's balanced split (``balanced``, drawn with
    seed 0; another ``seed`` adds ``balanced-seed<seed>``)."""
    directory = resolve_data_dir(data)
    frame = read_genotypes(directory / GFP_GENOTYPES)
    valid_path = directory / GFP_VALID_LIST
    tape = tape_split(frame, read_genotype_list(valid_path), valid_path)
    sizes = tuple(int((tape == name).sum()) for name in SPLIT_NAMES)
    splits = {"tape": tape, "balanced": sized_random_split(len(frame), sizes, 0)}
    if seed:
        splits[seeded_name("balanced", seed)] = sized_random_split(len(frame), sizes, seed)
    return VariantSet("gfp", frame, GFP_PARENT, SARKISYAN_FORMAT, splits)


FASTA_SUFFIXES = {".fa", ".fasta", ".faa", ".fas"}


def load_dataset(input: str | Path | None = None, *, data: str | Path | None = None, parent: str | None = None,
                 sequence_col: str | None = None, mutant_col: str | None = None, score_col: str | None = None,
                 zero_based: bool = False, name: str | None = None, seed: int = 0,
                 sample: int | None = None) -> VariantSet:
    """A dataset: the GFP data when ``input`` is None (found as ``resolve_data_dir`` says), else a user's
    CSV/TSV of variants with a score, or a FASTA file of sequences to embed.

    ``parent``: the parent sequence or a FASTA file holding it (needed for mutation strings; found from the
    rows of a ProteinGym file otherwise). ``zero_based``: mutation positions count from 0. ``seed``: a seed
    other than 0 adds a random split drawn with it (``balanced-seed<seed>``, ``random-seed<seed>``).
    ``sample``: a seeded random subset of that many rows.
    """
    if input is None:
        dataset = load_gfp(data, seed=seed)
        if name:
            dataset.name = name
    else:
        parent_seq = load_parent(parent) if parent else None
        path = Path(input)
        if path.suffix.lower() in FASTA_SUFFIXES:
            dataset = load_fasta(path, parent_seq, name)
        else:
            fmt = MutationFormat(prefix="", first_index=0 if zero_based else 1)
            dataset = load_table(path, parent_seq, sequence_col, mutant_col, score_col, fmt, name, seed)
    dataset = dataset if sample is None else dataset.sample(sample, seed)
    dataset.options = _recordable(input=input, data=data, parent=parent, sequence_col=sequence_col,
                                  mutant_col=mutant_col, score_col=score_col, zero_based=zero_based, name=name,
                                  seed=seed, sample=sample)
    return dataset


def _recordable(**options) -> dict:
    """``load_dataset``'s arguments as the cache records them: files as absolute paths, defaults left out."""
    out = {}
    for key, value in options.items():
        if value in (None, False, 0) and key != "name":
            continue
        if key in ("input", "data", "parent") and value is not None and path_exists(Path(str(value))):
            value = str(Path(value).resolve())
        out[key] = value
    return out


def load_recorded(cache_root: str | Path, name: str) -> VariantSet:
    """A dataset loaded again as it was when its cache was built (``dataset.json``'s ``load`` record), so that
    later commands need only its name."""
    from mimo.pipeline.cache.store import EmbeddingCache

    info = EmbeddingCache(cache_root, name, "any").read_dataset_info()
    if "load" not in info:
        raise DataError(f"dataset {name!r} was cached before mimo recorded how datasets are read; give its file "
                        f"again (--input, --parent, ...)", Path(cache_root) / name / "dataset.json")
    options = dict(info["load"])
    if options.get("input") and not Path(options["input"]).exists():
        raise DataError(f"the dataset file recorded for {name!r} is gone; give --input again", options["input"])
    dataset = load_dataset(**options)
    dataset.structure = info.get("structure")
    return dataset


def attach_structure(dataset: VariantSet, path: str | Path, chain: str | None = None, sites=None):
    """Record a structure on ``dataset`` (``--structure FILE``, ``--chain``, ``--sites``): the file is read and
    mapped onto the parent now, so that a bad file is refused before anything is written; the cache's
    ``dataset.json`` then records its path and sha256. Returns the ``Structure`` (its ``summary()`` says how it
    maps)."""
    from mimo.pipeline.io.structure import parse_sites, read_structure

    structure = read_structure(path, dataset.parent or "", chain)
    sites = parse_sites(sites if sites is None or isinstance(sites, str) else ",".join(map(str, sites)),
                        dataset.parent, structure)
    dataset.structure = {"path": str(structure.path), "sha256": structure.sha256, "chain": structure.chain,
                         "sites": list(sites)}
    return structure
