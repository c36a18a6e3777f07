"""`mimo fit HEAD`: one command per head, its options made from the head's own parameter declarations."""
from __future__ import annotations

import click

from mimo.cli._common import (add_options, attach_structure, CACHE_OPTION, DataError, load_dataset, main,
                              reports_data_errors, structure_options)


INPUT_FEATURES = "onehot-sites+aaprops"  # cheap, and what reaches positions never measured without a PLM

fit_options = add_options([
    click.option("--dataset", default=None, help="Dataset name in the cache (default: gfp; with --input, the "
                 "file's stem)."),
    click.option("--input", "input_file", type=click.Path(), default=None,
                 help="Your CSV/TSV of variants with a score: the features it lacks in the cache are built first "
                 "(then later commands need only --dataset)."),
    click.option("--parent", default=None, help="With --input: the parent sequence (FASTA file or sequence)."),
    click.option("--sequence-col", default=None, help="With --input: the column of full sequences."),
    click.option("--mutant-col", default=None, help="With --input: the column of mutation strings (default: "
                 "mutant, mutations, variant, ...)."),
    click.option("--score-col", default=None, help="With --input: the score column (default: DMS_score, score, "
                 "fitness, activity, ...)."),
    click.option("--zero-based", is_flag=True, help="With --input: mutation positions count from 0."),
    structure_options,
    click.option("--features", default=None, help="Cached features; join several with + (default: the only one "
                 f"cached; with --input, {INPUT_FEATURES})."),
    click.option("--split", default=None, help="Named split recorded in the cache (default: the first; gfp: tape)."),
    click.option("--split-file", type=click.Path(), default=None,
                 help="CSV/TSV: id or genotype, then train/valid/test; overrides --split."),
    CACHE_OPTION,
    click.option("--out", type=click.Path(file_okay=False), default=None,
                 help="Run directory (default: runs/<timestamp>-<head>); an existing non-empty one is refused."),
    click.option("--force", is_flag=True, help="Replace --out if it exists (the old run is removed only once the "
                 "new one is written)."),
    click.option("--cv", default=None, help="Cross-validate instead, ONE Spearman over all out-of-fold predictions "
                 "as ProteinGym computes it: modulo5 or contiguous5 (positions held out: how well will this do at "
                 "positions never measured?), random5 (any k), a fold column of the dataset file (e.g. "
                 "fold_modulo_5), or a number k for a seeded random k-fold."),
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


def _pairs(ctx, param, pairs):
    from mimo.models.estimators.external import parse_params

    try:
        return parse_params(pairs)
    except ValueError as exc:
        raise click.BadParameter(str(exc).removeprefix("--param: ")) from None


def head_options(cls):
    """One click option per declared parameter of ``cls``, with the class's own default, type and range."""
    defaults = cls.param_defaults()
    options = []
    for name, spec in cls._param_specs.items():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        if spec.kind == "pairs":  # NAME=VALUE, repeated
            options.append(click.option(spec.flag or flag, name, multiple=True, metavar="NAME=VALUE",
                                        callback=_pairs, help=spec.help))
            continue
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


def build_missing(input_file, dataset, features, cache_root, quiet, structure=None, chain=None, sites=None,
                  **table_options) -> tuple[str, str]:
    """`mimo fit --input FILE` (or `--dataset NAME --structure FILE`): load the user's table, build each part of
    ``features`` it lacks in the cache (resuming any that is partial), and return (dataset name, features) for the
    fit. A structure given joins its features to them (the default ones, or those named)."""
    from mimo.models.data import feature_names
    from mimo.pipeline.cache.build import build_cache
    from mimo.pipeline.featurizers import get_featurizer

    if input_file is None:
        data = load_dataset(recorded=dataset, cache_root=cache_root)
    else:
        data = load_dataset(input=input_file, name=dataset, **table_options)
    named = attach_structure(data, structure, chain, sites)
    names = feature_names(features or (INPUT_FEATURES if input_file is not None else named))
    if named and named not in names and "structure" not in names:
        names.append(named)
    from mimo.pipeline.cache.store import list_features

    cached, featurizers = set(list_features(cache_root, data.name)), []
    for name in names:  # every featurizer made before anything is built: a bad name writes nothing
        try:
            featurizers.append((name, get_featurizer(name, data)))
        except DataError:
            if name not in cached:
                raise
            featurizers.append((name, None))  # cached under this name (profile-<stem>, ...): used as it is
    built = []
    for name, featurizer in featurizers:
        if featurizer is None:
            built.append(name)
            continue
        report = build_cache(data, featurizer, cache_root, progress=not quiet)
        built.append(featurizer.name)
        if report.embedded:
            click.echo(f"built {report.directory}: {report.embedded} of {report.total} sequences featurized in "
                       f"{report.seconds:.1f}s", err=True)
    if input_file is None and features is None:
        return data.name, None  # the head's own default over what is cached (gp and auto: all of it)
    return data.name, "+".join(built)


def _fit(head: str, params: dict, dataset, input_file, parent, sequence_col, mutant_col, score_col, zero_based,
         structure, chain, sites, features, split, split_file, cache_root, out, force, cv, refit, allow_partial, verbose, quiet) -> None:
    from mimo.models.data import load_cv_data, load_split_data
    from mimo.models.estimators.registry import get_head
    from mimo.models.runs.fit import fit_cv, fit_run
    from mimo.models.report.summary import (auto_lines, run_notes, summary_line, uncertainty_lines,
                                            zero_shot_lines)

    if cv is not None and (split or split_file):
        raise DataError("give --cv or --split/--split-file, not both")
    table_options = {"parent": parent, "sequence_col": sequence_col, "mutant_col": mutant_col,
                     "score_col": score_col, "zero_based": zero_based}
    if input_file is not None or structure is not None:
        if input_file is None and dataset is None:
            raise DataError("--structure goes with --input FILE or --dataset NAME")
        dataset, features = build_missing(input_file, dataset, features, cache_root, quiet, structure, chain, sites,
                                          **table_options)
    elif chain is not None or sites is not None:
        raise DataError(f"--{'chain' if chain is not None else 'sites'} goes with --structure FILE")
    elif any(table_options.values()):
        given = next(k for k, v in table_options.items() if v)
        raise DataError(f"--{given.replace('_', '-')} describes a file: give it with --input FILE")
    dataset = dataset or "gfp"
    if head in ("auto", "gp"):
        from mimo.pipeline.cache.store import list_features

        # every cached featurizer is a candidate, or a kernel of the GP (or those named, joined with +)
        features = features or "+".join(list_features(cache_root, dataset)) or None
    from mimo.pipeline.runtime.progress import StatusLine

    progress = None if quiet or verbose else StatusLine(log=False)  # epochs in place, on a terminal only
    log = click.echo if verbose else progress
    try:
        if cv is not None:
            data = load_cv_data(cache_root, dataset, features, cv, allow_partial)
        else:
            data = load_split_data(cache_root, dataset, features, split, split_file, allow_partial)
        if head == "auto" and cv is not None:  # --budget is the command's: shared among the folds' fits
            from mimo.models.estimators.auto import budget_for

            params["budget"] = budget_for(params["budget"], len(set(data.split.tolist()) - {"none"}))
        if head == "auto" and verbose is False and progress is not None:
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
    for note in run_notes(metrics, run.source) + metrics["warnings"]:
        click.echo(note, err=True)
    click.echo(summary_line(metrics))
    for line in uncertainty_lines(metrics) + zero_shot_lines(metrics):
        click.echo(line)
    for line in auto_lines(metrics):
        click.echo(line)
    if "epochs_run" in metrics:
        click.echo(f"epochs: {metrics['epochs_run']} run, best {metrics['best_epoch']}")
    click.echo(f"run: {run.directory}")


class HeadGroup(click.Group):
    """`mimo fit HEAD`: one command per head of ``mimo.models.estimators.registry.HEADS``, made when asked for, so that
    `mimo fit ridge` never imports the neural heads (and torch)."""

    def list_commands(self, ctx):
        from mimo.models.estimators.registry import HEADS

        return list(HEADS)

    def get_command(self, ctx, name):
        from mimo.models.estimators.registry import HEADS, head_class

        if name not in HEADS:
            return None
        cls = head_class(name)

        def callback(**kwargs):
            params = {key: kwargs.pop(key) for key in cls._param_specs}
            try:  # before the data is loaded: e.g. `fit sklearn --estimator` naming no regressor
                cls(**params)._validate_params()
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            _fit(name, params, **kwargs)

        doc = (cls.__doc__ or name).strip().split("\n\n")[0]
        return click.command(name, help=doc)(fit_options(head_options(cls)(reports_data_errors(callback))))


@main.group(cls=HeadGroup)
def fit() -> None:
    """Train a head on cached features and write a run directory."""
