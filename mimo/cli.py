"""The `mimo` command: a thin layer over the public API (``mimo.*``). Each command parses its options, calls the
API, and prints; the behaviour, defaults and checks live in ``pipeline`` and ``models``.

Options of the heads are made from the estimators' own declarations (``_param_specs`` and the defaults in
``__init__``), so a head's defaults and ranges are written once, in its class.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import click

from pipeline.errors import DataError
from pipeline.featurizers import FEATURIZERS


def cache_default() -> str:
    return os.environ.get("MIMO_CACHE") or "cache"


def ensure_writable(path: str, option: str) -> None:
    """A file can be written at ``path`` (its folder exists and is writable), checked before the work."""
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
            raise click.ClickException(str(exc)) from None
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
@click.version_option(package_name="mimo-gfp")
@click.option("--threads", type=click.IntRange(min=1), default=None, envvar="MIMO_THREADS",
              show_envvar=True, help="CPU threads for the work (default: $OMP_NUM_THREADS when set, else the CPUs "
              "available less those other processes keep busy, rechecked as the work runs).")
def main(threads) -> None:
    """Predict mutation effects from protein language model embeddings.

    `mimo embed build` caches per-sequence embeddings once; `mimo fit ...` trains heads on them in seconds.
    """
    from pipeline.threads import set_threads

    given = click.get_current_context().get_parameter_source("threads") == click.core.ParameterSource.COMMANDLINE
    try:
        set_threads(threads, "--threads" if given else "$MIMO_THREADS")
    except DataError as exc:  # e.g. $OMP_NUM_THREADS=abc
        raise click.ClickException(str(exc)) from None


# ----------------------------------------------------------------------------------------------- datasets

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
])


def load_dataset(**options):
    from pipeline.datasets import load_dataset as load

    return load(**options)


@main.group()
def data() -> None:
    """Inspect and download datasets."""


@data.command("show")
@dataset_options
@click.option("--split", default=None, help="Which split (default: all of the dataset's splits).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--figure-dir", type=click.Path(file_okay=False), default="figures", show_default=True,
              help="Where the bar-plot PNG of each split is written.")
@reports_data_errors
def data_show(split, as_json, figure_dir, **dataset_kwargs) -> None:
    """Print the split table (count by split x mutation count; label mean/min/max) and plot it."""
    import pandas as pd

    from pipeline.show import plot_splits, split_summary, summary_table

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
    from pipeline import fetch
    from pipeline.datasets import data_home

    fetch.fetch_gfp(directory or data_home() / "gfp", genotypes_url or fetch.GENOTYPES_URL,
                    genotypes_sha256 if genotypes_url else fetch.GENOTYPES_SHA256,
                    tape_url or fetch.TAPE_URL, log=click.echo)


# ---------------------------------------------------------------------------------------------- embedding

@main.group()
def embed() -> None:
    """Build the embedding cache."""


DEFAULT_ESM = "esm2_t33_650M_UR50D"


@embed.command("build")
@dataset_options
@click.option("--model", default=None,
              help=f"A featurizer: {', '.join(FEATURIZERS)}, a fair-esm model name, or a Hugging Face encoder (hub id "
              f"such as facebook/esm2_t33_650M_UR50D or Rostlab/prot_t5_xl_uniref50, or a save_pretrained directory; "
              f"pip install 'mimo-gfp[hf]').  [default: {DEFAULT_ESM}]")
@click.option("--weights", type=click.Path(), default=None, help="A fair-esm checkpoint file (.pt) instead of --model.")
@click.option("--layer", type=int, default=None, help="Representation layer (default: the last; negative counts back).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: GPU when there is one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="Model precision (auto: bfloat16 on GPUs and on CPUs with native bf16, "
              "else float32).")
@click.option("--engine", type=click.Choice(["fast", "fair-esm", "compiled"]), default="fast", show_default=True,
              help="fast: our ESM-2 forward (fused attention) over the same weights; fair-esm: its own forward; "
              "compiled: the fast forward under torch.compile, batches padded to a few fixed shapes (the first run "
              "compiles each shape; the code is kept on disk for later runs).")
@click.option("--toks-per-batch", type=click.IntRange(min=1), default=None,
              help="Token budget of one batch (default: 4096 on CPU, 32768 on GPU).")
@click.option("--truncate", is_flag=True,
              help="Embed the first 1,022 residues of longer sequences (with a warning) instead of refusing them.")
@click.option("--flush-every", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Sequences per written part file: at most this much work is lost when a build is killed.")
@CACHE_OPTION
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_data_errors
def embed_build(model, weights, layer, device, dtype, engine, toks_per_batch, truncate, flush_every, cache_root,
                quiet, **dataset_kwargs) -> None:
    """Embed every sequence of a dataset once into cache/<dataset>/<features>/ (resumable).

    Under torchrun (e.g. `torchrun --nproc_per_node=4 $(which mimo) embed build ...`) the work is split
    across the processes, one GPU each, and merged into one cache.
    """
    from pipeline.build import build_cache
    from pipeline.featurizers import get_featurizer
    from pipeline.ranks import Ranks

    if model is not None and weights is not None:
        raise DataError(f"give --model or --weights, not both (--model {model} --weights {weights})")
    dataset = load_dataset(**dataset_kwargs)
    ranks = Ranks.from_environment()
    try:
        featurizer = get_featurizer(weights or model or DEFAULT_ESM, dataset, device=ranks.device(device),
                                    layer=layer, dtype=dtype, engine=engine, toks_per_batch=toks_per_batch,
                                    truncate=truncate)
        report = build_cache(dataset, featurizer, cache_root, flush_every, progress=not quiet, ranks=ranks)
    finally:
        ranks.close()
    if ranks.is_main:
        rate = f" ({report.per_second:,.0f} seq/s)" if report.embedded else ""
        click.echo(f"{report.directory}: {report.total} sequences, {report.skipped} already cached, "
                   f"{report.embedded} embedded in {report.seconds:.1f}s{rate}")


@main.command("score")
@dataset_options
@click.option("--model", default=None, help=f"{', '.join(n.removesuffix('-llr') for n in FEATURIZERS if n.endswith('-llr'))}"
              f", or a fair-esm model name.  [default: {DEFAULT_ESM}]")
@click.option("--weights", type=click.Path(), default=None, help="A fair-esm checkpoint file (.pt) instead of --model.")
@click.option("--method", type=click.Choice(["masked-marginal", "wt-marginal", "mutant-marginal", "llr"]),
              default=None, help="ESM: masked-marginal (default), wt-marginal, mutant-marginal; UniRep: llr.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, ... (auto: GPU when there is one).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), default="auto",
              show_default=True, help="ESM precision (auto: float32, as the scores are differences of log-probabilities).")
@click.option("--toks-per-batch", type=click.IntRange(min=1), default=None,
              help="Token budget of one batch (default: 4096 on CPU, 32768 on GPU).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the scores as CSV.")
@CACHE_OPTION
@click.option("--quiet", is_flag=True, help="No progress display.")
@reports_data_errors
def score_cmd(model, weights, method, device, dtype, toks_per_batch, out, cache_root, quiet, **dataset_kwargs) -> None:
    """Zero-shot scores of every variant (no training), cached like embeddings; Spearman against the labels.

    The scores are cached as features named <model>-<method>: join them to others with + in `mimo fit`.
    """
    from models.metrics import spearman
    from pipeline.zeroshot import zero_shot_scores

    if model is not None and weights is not None:
        raise DataError(f"give --model or --weights, not both (--model {model} --weights {weights})")
    if out:
        ensure_writable(out, "--out")
    dataset = load_dataset(**dataset_kwargs)
    table = zero_shot_scores(dataset, weights or model or DEFAULT_ESM, method, cache_root, progress=not quiet,
                             device=device, dtype=dtype, toks_per_batch=toks_per_batch)
    labelled = table[table["label"].notna()]
    if len(labelled) > 1:
        rho = spearman(labelled["label"].to_numpy(), labelled["score"].to_numpy())
        click.echo(f"{dataset.name}: zero-shot Spearman {'n/a' if rho is None else f'{rho:.3f}'} over "
                   f"{len(labelled)} variants")
        for count, part in labelled.groupby("n_mutations"):
            if len(part) >= 20 and labelled["n_mutations"].nunique() > 1:  # fewer: noise, not a figure
                r = spearman(part["label"].to_numpy(), part["score"].to_numpy())
                click.echo(f"  {count} mutations: {'n/a' if r is None else f'{r:.3f}'} ({len(part)} variants)")
    if out:
        table.to_csv(out, index=False)
        click.echo(f"{len(table)} scores written to {out}")


# ------------------------------------------------------------------------------------------------ fitting

fit_options = add_options([
    click.option("--dataset", default="gfp", show_default=True, help="Dataset name in the cache."),
    click.option("--features", default=None, help="Cached features; join several with + (default: the only one "
                 "cached)."),
    click.option("--split", default=None, help="Named split recorded in the cache (default: the first; gfp: tape)."),
    click.option("--split-file", type=click.Path(), default=None,
                 help="CSV/TSV: id or genotype, then train/valid/test; overrides --split."),
    CACHE_OPTION,
    click.option("--out", type=click.Path(file_okay=False), default=None,
                 help="Run directory (default: runs/<timestamp>-<head>); an existing non-empty one is refused."),
    click.option("--force", is_flag=True, help="Replace --out if it exists (the old run is removed only once the "
                 "new one is written)."),
    click.option("--cv", default=None, help="Cross-validate instead: a fold column of the dataset file (e.g. "
                 "fold_modulo_5) or a number k for a seeded random k-fold; ONE Spearman over all out-of-fold "
                 "predictions, as ProteinGym computes it."),
    click.option("--refit/--no-refit", default=True, show_default=True,
                 help="With --cv: refit on all training folds after choosing on the inner validation fold."),
    click.option("--allow-partial", is_flag=True, help="Fit even if the cache lacks some rows of the dataset "
                 "(an interrupted or running build); the run records it."),
    click.option("--verbose", is_flag=True, help="Print the losses of every epoch."),
    click.option("--quiet", is_flag=True, help="No progress line while training."),
])


def _sizes(ctx, param, text):
    try:
        sizes = tuple(int(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"expected positive integers, got {text!r}")
    return sizes


def head_options(cls):
    """One click option per declared parameter of ``cls``, with the class's own default, type and range."""
    defaults = cls.param_defaults()
    options = []
    for name, spec in cls._param_specs.items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        if spec.kind == "bool":
            options.append(click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=default,
                                        show_default=default is not None, help=spec.help))
            continue
        kwargs = {"default": default, "show_default": default is not None, "help": spec.help}
        if spec.kind == "sizes":
            kwargs.update(default=",".join(map(str, default)), callback=_sizes, type=str)
        elif spec.choices:
            kwargs["type"] = click.Choice(spec.choices)
        elif spec.kind in ("int", "float"):
            range_type = click.IntRange if spec.kind == "int" else click.FloatRange
            kwargs["type"] = range_type(min=spec.low, max=spec.high, **({"min_open": True} if spec.low_open else {}))
        options.append(click.option(flag, name, **kwargs))
    return add_options(options)


def _fit(head: str, params: dict, dataset, features, split, split_file, cache_root, out, force, cv, refit,
         allow_partial, verbose, quiet) -> None:
    from models.data import load_cv_data, load_split_data
    from models.registry import get_head
    from models.runs import fit_cv, fit_run, summary_line

    if cv is not None and (split or split_file):
        raise DataError("give --cv or --split/--split-file, not both")
    if head == "auto":
        from models.auto import blocks_of
        from pipeline.cache import list_features

        # every cached featurizer is a candidate (or those named, joined with +)
        features = features or "+".join(list_features(cache_root, dataset)) or None
    from pipeline.progress import StatusLine

    progress = None if quiet or verbose else StatusLine(log=False)  # epochs in place, on a terminal only
    log = click.echo if verbose else progress
    try:
        if cv is not None:
            data = load_cv_data(cache_root, dataset, features, cv, allow_partial)
        else:
            data = load_split_data(cache_root, dataset, features, split, split_file, allow_partial)
        if head == "auto":
            params["blocks"] = blocks_of(data.rows.manifest)
            if verbose is False and progress is not None:
                log = progress
        model = get_head(head, **params)
        if cv is not None:
            run = fit_cv(model, data, out, refit=refit, force=force, log=log)
        else:
            run = fit_run(model, data, out, force=force, log=log)
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise click.ClickException(str(exc)) from None
    finally:
        if progress is not None:
            progress.close()
    metrics = run.metrics
    if metrics.get("split_unused_rows"):
        click.echo(f"note: {metrics['split_unused_rows']} rows of the dataset are in no part of split "
                   f"{metrics['split']} (neither train, valid nor test): they are not used", err=True)
    if "partial_cache" in metrics:
        p = metrics["partial_cache"]
        click.echo(f"warning: fitted on a partial cache ({p['cached_rows']} of {p['dataset_rows']} rows; "
                   f"recorded in metrics.json)", err=True)
    click.echo(summary_line(metrics))
    if "cv" in metrics and "uncertainty" in metrics:
        i = metrics["uncertainty"]["interval"]["test"]
        click.echo(f"95% intervals (each fold calibrated on its inner validation fold): out-of-fold coverage "
                   f"{i['coverage']:.3f}, mean width {i['mean_width']:.2f}")
    if "auto" in metrics:
        from models.auto import describe

        auto = metrics["auto"]
        click.echo(f"auto: {len([c for c in auto['candidates'] if c['valid_spearman'] is not None])} candidates "
                   f"scored on the {auto['selection']} (budget {auto['budget_seconds']:g}s); best first:")
        for entry in auto["candidates"][:10]:
            score = entry["valid_spearman"]
            shown = entry.get("skipped") if score is None else f"{score:.3f}"
            click.echo(f"  {shown:>7}  {describe(entry)}")
        click.echo(f"chosen: {describe(auto['chosen'])}")
    if "epochs_run" in metrics:
        click.echo(f"epochs: {metrics['epochs_run']} run, best {metrics['best_epoch']}")
    if "uncertainty" in metrics and "cv" not in metrics:
        u = metrics["uncertainty"]["test"]
        rho = "n/a" if u["spearman_std_abs_error"] is None else f"{u['spearman_std_abs_error']:.3f}"
        click.echo(f"uncertainty on test: Spearman(std, |error|) {rho}, "
                   f"coverage of mean +/- 2 std {u['coverage_2std']:.3f}")
        i = metrics["uncertainty"]["interval"]
        click.echo(f"{100 * i['level']:.0f}% intervals (lower, upper; calibrated on valid): coverage on valid "
                   f"{i['valid']['coverage']:.3f}, on test {i['test']['coverage']:.3f}; "
                   f"mean width on test {i['test']['mean_width']:.2f}")
    click.echo(f"run: {run.directory}")


class HeadGroup(click.Group):
    """`mimo fit HEAD`: one command per head of ``models.registry.HEADS``, made when asked for, so that
    `mimo fit ridge` never imports the neural heads (and torch)."""

    def list_commands(self, ctx):
        from models.registry import HEADS

        return list(HEADS)

    def get_command(self, ctx, name):
        from models.registry import HEADS, head_class

        if name not in HEADS:
            return None
        cls = head_class(name)

        def callback(**kwargs):
            params = {key: kwargs.pop(key) for key in cls._param_specs}
            _fit(name, params, **kwargs)

        doc = (cls.__doc__ or name).strip().split("\n\n")[0]
        return click.command(name, help=doc)(fit_options(head_options(cls)(reports_data_errors(callback))))


@main.group(cls=HeadGroup)
def fit() -> None:
    """Train a head on cached features and write a run directory."""


# ------------------------------------------------------------------------------------------ runs, predict

@main.command("report")
@click.argument("runs", nargs=-1, type=click.Path(exists=True))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the markdown table to a file.")
@reports_data_errors
def report_cmd(runs, csv_path, md_path) -> None:
    """Gather run directories into one table (default: every run under ./runs)."""
    from models.report import gather_runs, to_markdown
    from models.runs import DEFAULT_ROOT, is_run_dir

    if not runs:
        runs = sorted(str(p) for p in Path(DEFAULT_ROOT).glob("*") if is_run_dir(p))
        if not runs:
            raise DataError(f"no runs under {DEFAULT_ROOT}/; name run directories, or fit one with `mimo fit`")
    skipped = [r for r in runs if not is_run_dir(r)]
    for path in skipped:
        click.echo(f"note: {path} is not a run directory (no metrics.json and source.json); skipped", err=True)
    runs = [r for r in runs if r not in skipped]
    if not runs:
        raise DataError("none of the paths is a run directory")
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
    from mimo.predict import predict_variants

    if out:
        ensure_writable(out, "--out")
    table = predict_variants(run_dir, variants, fasta, device)
    unseen = int((table["unseen"].fillna(0) > 0).sum())
    if unseen:
        blind = int(table["no_signal"].sum())
        detail = (f"; {blind} of them get no signal from the run's features (no_signal: the prediction falls "
                  f"back toward the parent's, the interval spans the training labels)" if blind else
                  "; their predictions extrapolate from the features")
        click.echo(f"warning: {unseen} of {len(table)} variants carry substitutions never measured in training "
                   f"(column unseen){detail}", err=True)
    if out:
        table.to_csv(out, index=False)
        click.echo(f"{len(table)} predictions ({int(table['in_cache'].sum())} from the cache) written to {out}")
    else:
        click.echo(table.to_csv(index=False), nl=False)


# ------------------------------------------------------------------------------------------------ design

@main.group()
def design() -> None:
    """Choose the next experiment from a fitted run."""


def _one_run(argument, option) -> str:
    if (argument is None) == (option is None):
        raise DataError("name the run once: as the argument RUN or with --run")
    return argument or option


@design.command("scan")
@click.argument("run_path", required=False, type=click.Path(file_okay=False))
@click.option("--run", "run_dir", type=click.Path(file_okay=False), help="A run directory of `mimo fit` (or the argument).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="CSV to write (default: RUN/scan.csv).")
@click.option("--figure", type=click.Path(dir_okay=False), default=None,
              help="Heatmap SVG to write (default: RUN/scan.svg).")
@click.option("--device", default="auto", show_default=True, help="Device for any embedding needed.")
@reports_data_errors
def design_scan(run_path, run_dir, out, figure, device) -> None:
    """Score every single substitution of the parent (19 x length): CSV and heatmap."""
    from mimo.design import plot_scan, saturation_scan

    run_dir = _one_run(run_path, run_dir)
    out = out or str(Path(run_dir) / "scan.csv")
    figure = figure or str(Path(run_dir) / "scan.svg")
    for path, option in ((out, "--out"), (figure, "--figure")):
        ensure_writable(path, option)
    table = saturation_scan(run_dir, device)
    table.to_csv(out, index=False)
    plot_scan(run_dir, table, figure)
    best = table.sort_values("prediction", ascending=False).head(5)
    click.echo(f"{len(table)} single substitutions scored ({int(table['no_signal'].sum())} without signal from the "
               f"features); best: {', '.join(best['mutations'])}")
    click.echo(f"written: {out}, {figure}")


@design.command("propose")
@click.argument("run_path", required=False, type=click.Path(file_okay=False))
@click.option("--run", "run_dir", type=click.Path(file_okay=False),
              help="A run directory of `mimo fit` (or give it as the argument RUN).")
@click.option("--n", "n", type=click.IntRange(min=1), default=96, show_default=True, help="Variants to propose.")
@click.option("--max-mutations", type=click.IntRange(min=1, max=6), default=2, show_default=True,
              help="Most substitutions in a proposed variant (combinations of the best singles).")
@click.option("--measured", type=click.Path(), default=None,
              help="More variants already measured (mutation strings): never proposed.")
@click.option("--acquisition", type=click.Choice(["ucb", "greedy", "ei"]), default="ucb", show_default=True,
              help="ucb: mean + beta x std; greedy: mean; ei: expected improvement over the best measured label.")
@click.option("--beta", type=click.FloatRange(min=0), default=2.0, show_default=True, help="UCB's weight on the std.")
@click.option("--max-share", type=click.FloatRange(min=0, min_open=True, max=1), default=0.25, show_default=True,
              help="No substitution in more than this share of the batch.")
@click.option("--top-singles", type=click.IntRange(min=1), default=40, show_default=True,
              help="Combinations are made of this many best singles (by the acquisition).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Plate CSV (default: RUN/proposal.csv).")
@click.option("--device", default="auto", show_default=True, help="Device for any embedding needed.")
@reports_data_errors
def design_propose(run_path, run_dir, n, max_mutations, measured, acquisition, beta, max_share, top_singles, out,
                   device) -> None:
    """Propose a diverse batch of unmeasured variants, ranked by an acquisition using the run's uncertainty.

    Under torchrun (e.g. `torchrun --nproc_per_node=4 -- $(which mimo) design propose RUN ...`; the `--` keeps
    torchrun from reading --n and --run as its own options) the candidates are scored across the processes, one
    GPU each; rank 0 writes the plate.
    """
    from mimo.design import propose
    from pipeline.ranks import Ranks

    run_dir = _one_run(run_path, run_dir)
    out = out or str(Path(run_dir) / "proposal.csv")
    ensure_writable(out, "--out")
    ranks = Ranks.from_environment()
    try:
        batch, record = propose(run_dir, n, max_mutations, measured, acquisition, beta, max_share, device,
                                top_singles, ranks)
    finally:
        ranks.close()
    if not ranks.is_main:
        return
    batch.to_csv(out, index=False)
    click.echo(f"{len(batch)} variants proposed from {record['candidates_scored']:,} candidates "
               f"(acquisition {record['acquisition']}; uncertainty: {record['uncertainty']}; no substitution in "
               f"more than {max_share:.0%} of the batch; {record['measured_excluded']:,} measured variants excluded)")
    if record["without_signal"]:
        click.echo(f"warning: {record['without_signal']} proposed variants carry substitutions or positions the run's "
                   f"features give no signal for (column no_signal): their predictions are the parent's, their "
                   f"rank comes from the spread alone", err=True)
    click.echo(f"written: {out}")
