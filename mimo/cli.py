"""The `mimo` command. Commands are thin: the work is in `pipeline` and `models`."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from pipeline.errors import DataError

DEFAULT_CACHE = "cache"


def reports_data_errors(fn):
    """Turn bad-input errors into a one-line message and exit status 1, without a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


@click.group()
@click.version_option(package_name="mimo-gfp")
def main() -> None:
    """Predict mutation effects from protein language model embeddings.

    `mimo embed build` caches per-sequence embeddings once; `mimo fit ...` trains heads on them in seconds.
    """


# ----------------------------------------------------------------------------------------------- datasets

def dataset_options(fn):
    """Options that pick a dataset: the GFP data (default) or a user's CSV/TSV/FASTA."""
    options = [
        click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
                     help="Directory with the GFP files (default: $MIMO_DATA, then ../shared/data/gfp)."),
        click.option("--input", "input_path", type=click.Path(), default=None,
                     help="A user's dataset instead of GFP: CSV/TSV of variants with a score, or FASTA."),
        click.option("--parent", default=None, help="Parent sequence (FASTA file or sequence) for mutation strings."),
        click.option("--sequence-col", default=None, help="Column of full sequences (default: mutated_sequence)."),
        click.option("--mutant-col", default=None, help="Column of mutation strings like A24C:D56E (default: mutant)."),
        click.option("--score-col", default=None, help="Column of the numeric score (default: DMS_score, score, ...)."),
        click.option("--zero-based", is_flag=True, help="Mutation positions count from 0 (default: from 1)."),
        click.option("--name", default=None, help="Dataset name in the cache (default: gfp, or the input file's stem)."),
        click.option("--seed", default=0, show_default=True, help="Seed of the random splits."),
        click.option("--sample", type=int, default=None,
                     help="Use a seeded random subset of N rows (dataset named <name>-sampleN)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def load_dataset(data_dir, input_path, parent, sequence_col, mutant_col, score_col, zero_based, name, seed,
                 sample=None):
    dataset = _load_full_dataset(data_dir, input_path, parent, sequence_col, mutant_col, score_col, zero_based,
                                 name, seed)
    return dataset if sample is None else dataset.sample(sample, seed)


def _load_full_dataset(data_dir, input_path, parent, sequence_col, mutant_col, score_col, zero_based, name, seed):
    from pipeline.datasets import load_fasta, load_gfp, load_table
    from pipeline.variants import MutationFormat, load_parent

    if input_path is None:
        dataset = load_gfp(data_dir, seed=seed)
        if name:
            dataset.name = name
        return dataset
    parent_seq = load_parent(parent) if parent else None
    path = Path(input_path)
    if path.suffix.lower() in {".fa", ".fasta", ".faa", ".fas"}:
        return load_fasta(path, parent_seq, name)
    fmt = MutationFormat(prefix="", first_index=0 if zero_based else 1)
    return load_table(path, parent_seq, sequence_col, mutant_col, score_col, fmt, name, seed)


@main.group()
def data() -> None:
    """Inspect and download datasets."""


@data.command("show")
@dataset_options
@click.option("--split", default=None, help="Which split (default: all of the dataset's splits).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--figure-dir", type=click.Path(file_okay=False), default="runs/figures", show_default=True,
              help="Where the bar-plot PNG of each split is written.")
@reports_data_errors
def data_show(split, as_json, figure_dir, **dataset_kwargs) -> None:
    """Print the split table (count by split x mutation count; label mean/min/max) and plot it."""
    import pandas as pd

    from pipeline.show import plot_splits, split_summary, summary_table

    dataset = load_dataset(**dataset_kwargs)
    names = [split] if split else list(dataset.splits)
    if split and split not in dataset.splits:
        raise DataError(f"no split {split!r} (known: {', '.join(dataset.splits)})")
    summaries = []
    for name in names:
        summary = split_summary(dataset, name)
        summary["figure"] = str(plot_splits(dataset, name, Path(figure_dir) / f"{dataset.name}-{name}-split.png"))
        summaries.append(summary)
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
        return
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.precision", 3):
        for summary in summaries:
            click.echo(f"{summary['dataset']}: {summary['split']} split")
            click.echo(summary_table(summary).to_string())
            click.echo(f"figure: {summary['figure']}\n")


@data.command("fetch")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--genotypes-url", default=None, help="Override the figshare address of the genotype TSV.")
@click.option("--genotypes-sha256", default=None, help="Expected sha256 of the genotype TSV (with --genotypes-url).")
@click.option("--tape-url", default=None, help="Override the address of TAPE's fluorescence archive.")
@reports_data_errors
def data_fetch(directory, genotypes_url, genotypes_sha256, tape_url) -> None:
    """Download the GFP genotypes and TAPE's split into DIRECTORY."""
    from pipeline import fetch

    fetch.fetch_gfp(directory, genotypes_url or fetch.GENOTYPES_URL,
                    genotypes_sha256 if genotypes_url else fetch.GENOTYPES_SHA256,
                    tape_url or fetch.TAPE_URL, log=click.echo)


# ---------------------------------------------------------------------------------------------- embedding

@main.group()
def embed() -> None:
    """Build the embedding cache."""


@embed.command("build")
@dataset_options
@click.option("--model", default="esm2_t33_650M_UR50D", show_default=True,
              help="A fair-esm model name, or 'onehot' / 'onehot-full' (built in, no weights).")
@click.option("--weights", type=click.Path(), default=None, help="A fair-esm checkpoint file (.pt) instead of --model.")
@click.option("--layer", type=int, default=None, help="Representation layer (default: the last; negative counts back).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: GPU when there is one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="Model precision (auto: float16 on GPU, float32 on CPU).")
@click.option("--toks-per-batch", default=4096, show_default=True, help="Token budget of one batch.")
@click.option("--cache", "cache_root", type=click.Path(file_okay=False), default=DEFAULT_CACHE, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_data_errors
def embed_build(model, weights, layer, device, dtype, toks_per_batch, cache_root, quiet, **dataset_kwargs) -> None:
    """Embed every sequence of a dataset once into cache/<dataset>/<features>/ (resumable)."""
    from pipeline.build import build_cache
    from pipeline.esm_embed import EsmFeaturizer, load_esm
    from pipeline.onehot import OneHotFeaturizer

    dataset = load_dataset(**dataset_kwargs)
    if weights is None and model in ("onehot", "onehot-full"):
        mode = "substitutions" if model == "onehot" else "full"
        featurizer = OneHotFeaturizer.for_dataset(dataset.parent, dataset.frame["aligned"], mode)
    else:
        net, alphabet, name = load_esm(None if weights else model, weights)
        featurizer = EsmFeaturizer(net, alphabet, name, layer, device, dtype, toks_per_batch)
    report = build_cache(dataset, featurizer, cache_root, progress=not quiet)
    rate = f" ({report.per_second:,.0f} seq/s)" if report.embedded else ""
    click.echo(f"{report.directory}: {report.total} sequences, {report.skipped} already cached, "
               f"{report.embedded} embedded in {report.seconds:.1f}s{rate}")


# ------------------------------------------------------------------------------------------------ fitting

def fit_options(fn):
    options = [
        click.option("--dataset", default="gfp", show_default=True, help="Dataset name in the cache."),
        click.option("--features", default=None, help="Cached features (default: the only one cached)."),
        click.option("--split", default=None, help="Named split recorded in the cache (default: the first; gfp: tape)."),
        click.option("--split-file", type=click.Path(), default=None,
                     help="CSV/TSV: id or genotype, then train/valid/test; overrides --split."),
        click.option("--cache", "cache_root", type=click.Path(file_okay=False), default=DEFAULT_CACHE, show_default=True),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="Run directory (default: runs/<timestamp>-<model>)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.group()
def fit() -> None:
    """Train a head on cached features."""


@fit.command("ridge")
@fit_options
@click.option("--no-standardize", is_flag=True, help="Fit on raw features instead of standardised ones.")
@reports_data_errors
def fit_ridge_cmd(dataset, features, split, split_file, cache_root, out, no_standardize) -> None:
    """Ridge regression, alpha chosen on the validation split."""
    from models.data import load_split_data
    from models.fit_ridge import fit_ridge
    from models.runs import summary_line

    data = load_split_data(cache_root, dataset, features, split, split_file)
    run_dir, metrics = fit_ridge(data, out, standardize=not no_standardize)
    click.echo(summary_line(metrics))
    click.echo(f"run: {run_dir}")
