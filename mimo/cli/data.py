"""`mimo data show|fetch`: inspect and download datasets."""
from __future__ import annotations

import json
from pathlib import Path

import click

from mimo.cli._common import DataError, dataset_options, load_dataset, main, reports_data_errors


@main.group()
def data() -> None:
    """Inspect and download datasets."""


@data.command("show")
@dataset_options
@click.option("--split", default=None, help="Which split (default: all of the dataset's splits).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--figure-dir", type=click.Path(file_okay=False), default="figures", show_default=True,
              help="Where the PNG of each split is written (rows by mutation count, the score's distribution).")
@reports_data_errors
def data_show(split, as_json, figure_dir, **dataset_kwargs) -> None:
    """Print the split table (count by split x mutation count; label mean/min/max) and plot it."""
    import pandas as pd

    from mimo.pipeline.io.show import plot_splits, split_summary, summary_table

    dataset = load_dataset(**dataset_kwargs)
    if split and split not in dataset.splits:
        raise DataError(f"--split: no split {split!r} (known: {', '.join(dataset.splits)})")
    summaries = []
    for name in [split] if split else list(dataset.splits):
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
@click.argument("directory", type=click.Path(file_okay=False), required=False)
@click.option("--genotypes-url", default=None, help="Override the figshare address of the genotype TSV.")
@click.option("--genotypes-sha256", default=None, help="Expected sha256 of the genotype TSV (with --genotypes-url).")
@click.option("--tape-url", default=None, help="Override the address of TAPE's fluorescence archive.")
@reports_data_errors
def data_fetch(directory, genotypes_url, genotypes_sha256, tape_url) -> None:
    """Download the GFP genotypes and TAPE's split into DIRECTORY (default: $MIMO_HOME/gfp or ~/.cache/mimo/gfp)."""
    from mimo.pipeline.io import fetch
    from mimo.pipeline.io.conventions import data_home

    fetch.fetch_gfp(directory or data_home() / "gfp", genotypes_url or fetch.GENOTYPES_URL,
                    genotypes_sha256 if genotypes_url else fetch.GENOTYPES_SHA256,
                    tape_url or fetch.TAPE_URL, log=click.echo,
                    valid_sha256=None if tape_url or genotypes_url else fetch.VALID_LIST_SHA256)
