"""What every command group of `mimo` shares: the root group, bad-input handling, the cache and dataset
options. The command groups are the modules beside this one.

The `mimo` command: a thin layer over the public API (``mimo.*``). Each command parses its options, calls the
API, and prints; the behaviour, defaults and checks live in ``pipeline`` and ``models``.

Options of the heads are made from the estimators' own declarations (``_param_specs`` and the defaults in
``__init__``), so a head's defaults and ranges are written once, in its class.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import click

from mimo._version import __version__
from mimo.pipeline.errors import DataError
from mimo.pipeline.writes import check_name_length


def cache_default() -> str:
    return os.environ.get("MIMO_CACHE") or "cache"


def ensure_writable(path: str, option: str) -> None:
    """A file can be written at ``path`` (its folder exists and is writable), checked before the work."""
    check_name_length(path, option)
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise DataError(f"{option}: folder {folder} does not exist", path)
    if not os.access(folder, os.W_OK):
        raise DataError(f"{option}: folder {folder} is not writable", path)


def reports_data_errors(fn):
    """Turn bad-input errors into a one-line message and exit status 1, without a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as exc:
            raise click.ClickException(exc.cli_message()) from None
    return wrapper


def add_options(options):
    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


CACHE_OPTION = click.option("--cache", "cache_root", type=click.Path(file_okay=False), default=cache_default,
                            show_default="$MIMO_CACHE or ./cache", help="Root of the embedding cache.")


@click.group()
@click.version_option(version=__version__, prog_name="mimo")
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar="MIMO_THREADS",
              show_envvar=True, help="CPU threads for the work (default: $OMP_NUM_THREADS when set, else the CPUs "
              "available less those other processes keep busy, rechecked as the work runs).")
def main(threads) -> None:
    """Predict mutation effects from protein language model embeddings.

    `mimo embed build` caches per-sequence embeddings once; `mimo fit ...` trains heads on them in seconds.
    """
    from mimo.pipeline.runtime.threads import set_threads

    given = click.get_current_context().get_parameter_source("threads") == click.core.ParameterSource.COMMANDLINE
    try:
        set_threads(threads, "--threads" if given else "$MIMO_THREADS")
    except DataError as exc:  # e.g. $OMP_NUM_THREADS=abc
        raise click.ClickException(str(exc)) from None


dataset_options = add_options([
    click.option("--data", "data", type=click.Path(file_okay=False), default=None,
                 help="Directory with the GFP files (default: $MIMO_DATA, then $MIMO_HOME/gfp or ~/.cache/mimo/gfp, "
                 "downloaded there on first use)."),
    click.option("--input", "input", type=click.Path(), default=None,
                 help="A user's dataset instead of GFP: CSV/TSV of variants with a score, or FASTA."),
    click.option("--parent", default=None, help="Parent sequence (FASTA file or sequence) for mutation strings."),
    click.option("--sequence-col", default=None, help="Column of full sequences (default: mutated_sequence)."),
    click.option("--mutant-col", default=None, help="Column of mutation strings like A24C:D56E (default: mutant)."),
    click.option("--score-col", default=None, help="Column of the numeric score (default: DMS_score, score, ...)."),
    click.option("--zero-based", is_flag=True, help="Mutation positions count from 0 (default: from 1)."),
    click.option("--name", default=None, help="Dataset name in the cache (default: gfp, or the input file's stem)."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                 help="A seed other than 0 adds a random split drawn with it, named balanced-seedN (GFP) or "
                 "random-seedN; splits already recorded never change."),
    click.option("--sample", type=click.IntRange(min=1), default=None,
                 help="Use a seeded random subset of N rows (dataset named <name>-sampleN)."),
    click.option("--dataset", "recorded", default=None,
                 help="A dataset already in the cache, read again from the file and options recorded when it was "
                 "first built (instead of --input, --parent, ...)."),
])


structure_options = add_options([
    click.option("--structure", type=click.Path(), default=None,
                 help="A PDB or mmCIF file of the parent's fold (experimental or predicted, e.g. AlphaFold), mapped onto "
                 "the parent by sequence alignment and recorded with the dataset; adds the structure-<stem> features "
                 "and, in `fit gp`, Kermut's structure kernel."),
    click.option("--chain", default=None, help="With --structure: the chain (default: the one that aligns best)."),
    click.option("--sites", default=None, help="With --structure: parent positions such as 41,145 (an active site, a "
                 "ligand, an interface) whose distance to the substituted sites becomes a feature."),
])


def attach_structure(dataset, structure, chain, sites) -> str | None:
    """``--structure FILE`` on a dataset: map and record it, say how it maps; the features' name, or None."""
    if structure is None:
        if chain is not None or sites is not None:
            raise DataError(f"--{'chain' if chain is not None else 'sites'} goes with --structure FILE")
        return None
    from mimo.pipeline.io.datasets import attach_structure as attach
    from mimo.pipeline.io.profiles import feature_stem

    mapped = attach(dataset, structure, chain, sites)
    click.echo(f"{structure}: {mapped.summary()}", err=True)
    return f"structure-{feature_stem(mapped.path)}"


def load_dataset(recorded: str | None = None, cache_root: str | None = None, **options):
    """The dataset the options name (or the one recorded in the cache as ``recorded``); says which columns of a
    user's table were read as what."""
    from mimo.pipeline.io.datasets import load_dataset as load
    from mimo.pipeline.io.datasets import load_recorded

    if recorded is not None:
        given = [k for k, v in options.items() if v not in (None, False, 0)]
        if given:
            raise DataError(f"give --dataset {recorded} or the dataset's own options "
                            f"(--{given[0].replace('_', '-')}), not both")
        return load_recorded(cache_root or cache_default(), recorded)
    dataset = load(**options)
    if dataset.columns:
        read = ", ".join(f"{what} from column {name!r}" for what, name in dataset.columns.items())
        click.echo(f"{options.get('input')}: {len(dataset)} variants; {read}", err=True)
    return dataset
